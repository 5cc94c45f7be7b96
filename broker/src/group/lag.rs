//! Consumer lag: how far a group's committed offset is behind a partition's end, in
//! records and in time (the age of the oldest record the group has not consumed).

use bytes::Bytes;
use runnel_protocol::{RecordBatch, TimestampType};

use crate::error::{Error, Result};
use crate::storage::PartitionLog;

/// Lag of one partition for a committed offset (`None`: nothing committed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    pub start_offset: i64,
    pub end_offset: i64,
    /// Records from the committed offset (or the log start, if retention passed it) to
    /// the end; -1 when nothing is committed.
    pub records: i64,
    /// `now` minus the timestamp of the first unconsumed record; 0 when caught up, -1
    /// when unknown (nothing committed).
    pub ms: i64,
}

pub fn lag(log: &PartitionLog, committed: Option<i64>, now_ms: i64) -> Result<Lag> {
    let start = log.start_offset() as i64;
    // Lag is measured to what consumers can read: the high watermark.
    let end = log.high_watermark() as i64;
    let Some(committed) = committed else {
        return Ok(Lag {
            start_offset: start,
            end_offset: end,
            records: -1,
            ms: -1,
        });
    };
    let next = committed.clamp(start, end);
    let ms = if next >= end {
        0
    } else {
        match timestamp_at(log, next as u64)? {
            Some(ts) => (now_ms - ts).max(0),
            None => -1,
        }
    };
    Ok(Lag {
        start_offset: start,
        end_offset: end,
        records: (end - next).max(0),
        ms,
    })
}

/// The timestamp of the record at `offset` (the batch's append time for LogAppendTime).
pub fn timestamp_at(log: &PartitionLog, offset: u64) -> Result<Option<i64>> {
    let Some(region) = log.read(offset, 1)?.region else {
        return Ok(None);
    };
    let buf = region.read_to_vec().map_err(Error::io("read log", log.dir()))?;
    for batch in RecordBatch::split_all(Bytes::from(buf))? {
        let h = *batch.header();
        if (h.next_offset() as u64) <= offset {
            continue;
        }
        if h.timestamp_type() == TimestampType::LogAppendTime {
            return Ok(Some(h.max_timestamp));
        }
        if let Some(r) = batch.records()?.into_iter().find(|r| r.offset as u64 >= offset) {
            return Ok(Some(r.timestamp));
        }
    }
    Ok(None)
}

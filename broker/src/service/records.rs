//! A partition's offsets: where it starts and ends, the offset for a time (ListOffsets),
//! and moving its start forward (DeleteRecords).

use std::sync::Arc;

use runnel_protocol::ErrorCode;

use super::{blocking, Broker, Failure, Outcome};
use crate::error::Error;

/// Which offset ListOffsets asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset (Kafka's -2).
    Earliest,
    /// The log end offset (-1).
    Latest,
    /// The record with the largest timestamp (-3, KIP-734).
    MaxTimestamp,
    /// The first record at or after this time (ms since the epoch).
    Time(i64),
}

impl OffsetSpec {
    /// Kafka's (and the native protocol's) timestamp field: -2, -1, -3 or a time; any
    /// other negative value is an error.
    pub fn from_timestamp(ts: i64) -> Outcome<OffsetSpec> {
        match ts {
            -2 => Ok(OffsetSpec::Earliest),
            -1 => Ok(OffsetSpec::Latest),
            -3 => Ok(OffsetSpec::MaxTimestamp),
            t if t >= 0 => Ok(OffsetSpec::Time(t)),
            t => Err(Failure::new(
                ErrorCode::InvalidRequest,
                format!("timestamp {t}: -1 (latest), -2 (earliest), -3 (max timestamp) or a time"),
            )),
        }
    }
}

/// An offset found: the offset and, for lookups by time, the record's timestamp (-1
/// otherwise). `offset` -1: no record at or after the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub offset: i64,
    pub timestamp: i64,
}

/// ListOffsets for one partition.
pub async fn list_offset(broker: &Arc<Broker>, topic: &str, partition: u32, spec: OffsetSpec) -> Outcome<Found> {
    const NONE: Found = Found {
        offset: -1,
        timestamp: -1,
    };
    let log = super::cluster::led_partition(broker, topic, partition)?;
    let at = match spec {
        OffsetSpec::Earliest => {
            return Ok(Found {
                offset: log.start_offset() as i64,
                ..NONE
            })
        }
        OffsetSpec::Latest => {
            // What consumers can read up to (Kafka's read_uncommitted answer).
            return Ok(Found {
                offset: log.high_watermark() as i64,
                ..NONE
            });
        }
        OffsetSpec::MaxTimestamp => match log.max_timestamp() {
            max if max < 0 => return Ok(NONE),
            max => max,
        },
        OffsetSpec::Time(ts) => ts,
    };
    // Reads a batch from disk (page cache, usually): off the runtime.
    let found = blocking(move || log.offset_for_timestamp(at)).await?;
    Ok(found.map_or(NONE, |(offset, timestamp)| Found {
        offset: offset as i64,
        timestamp,
    }))
}

/// The offset of DeleteRecords that means the partition's end (everything goes).
pub const TO_END: i64 = -1;

/// DeleteRecords: each `(topic, [(partition, offset)])` partition's log start moves to
/// `offset` ([`TO_END`]: its end); the new log start offset (Kafka's low watermark), or
/// why not, per partition in order.
pub async fn delete_records(broker: &Arc<Broker>, topics: Vec<(String, Vec<(u32, i64)>)>) -> Vec<Vec<Outcome<i64>>> {
    let count: Vec<usize> = topics.iter().map(|t| t.1.len()).collect();
    // Each partition's log, if this broker leads it, looked up before the blocking call.
    let topics: Vec<Vec<(Outcome<Arc<crate::storage::PartitionLog>>, i64)>> = topics
        .into_iter()
        .map(|(name, partitions)| {
            partitions
                .into_iter()
                .map(|(partition, offset)| (super::cluster::led_partition(broker, &name, partition), offset))
                .collect()
        })
        .collect();
    // One blocking call for the whole request: each partition writes its new start durably.
    let done = blocking(move || {
        Ok(topics
            .into_iter()
            .map(|partitions| {
                partitions
                    .into_iter()
                    .map(|(log, offset)| {
                        let log = log?;
                        let moved = match offset {
                            TO_END => log.delete_records_before(log.end_offset()),
                            o if o < 0 => Err(Error::OffsetOutOfRange {
                                offset: 0,
                                start: log.start_offset(),
                                end: log.end_offset(),
                            }),
                            o => log.delete_records_before(o as u64),
                        };
                        moved.map(|start| start as i64).map_err(Failure::from)
                    })
                    .collect()
            })
            .collect())
    })
    .await;
    match done {
        Ok(topics) => topics,
        Err(e) => count
            .into_iter()
            .map(|n| (0..n).map(|_| Err(Failure::from(&e))).collect())
            .collect(),
    }
}

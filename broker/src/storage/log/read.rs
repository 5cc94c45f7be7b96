//! Reads (hot path): lock-free file regions of whole batches for `sendfile`, and the
//! offset for a timestamp.

use super::*;

impl PartitionLog {
    /// Whole batches starting with the one that holds `offset`, up to about `max_bytes`
    /// (at least one batch, however large), as one file region for `sendfile`.
    /// `offset == end_offset` returns no region; outside `[start, end]` is an error.
    pub fn read(&self, offset: u64, max_bytes: u64) -> Result<ReadResult> {
        self.read_upto(offset, max_bytes, u64::MAX)
    }

    /// As [`read`](PartitionLog::read), serving nothing at or past `upto` (a consumer's
    /// read stops at the high watermark); the result's end offset is the bound applied.
    /// An offset between `upto` and the log end is no error: it returns no region.
    pub fn read_upto(&self, offset: u64, max_bytes: u64, upto: u64) -> Result<ReadResult> {
        // The end offset first: everything below it is published (segment sizes are
        // published before it), and nothing at or past it is served, so a reader never
        // gets data beyond the end offset this read reports.
        let log_end = self.end_offset();
        let end = upto.min(log_end);
        let segments = self.segments.load();
        let start = self.start_offset();
        let mut out = ReadResult {
            region: None,
            start_offset: start,
            end_offset: end,
            records: 0,
        };
        if offset < start || offset > log_end {
            return Err(Error::OffsetOutOfRange {
                offset,
                start,
                end: log_end,
            });
        }
        if offset >= end {
            return Ok(out);
        }
        let first = segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1);
        for seg in &segments[first..] {
            let mut size = seg.size();
            if offset >= seg.next_offset() {
                continue;
            }
            if seg.next_offset() > end {
                // An append landed after `end` was read: stop at the batch starting there.
                if let Some((pos, _)) = seg.find_batch(end, size)? {
                    size = pos;
                }
            }
            if let Some((pos, h)) = seg.find_batch(offset, size)? {
                let end_pos = seg.batch_end_within(pos, h.total_bytes() as u64, max_bytes, size)?;
                let next = seg.offset_after(pos, end_pos)?.unwrap_or(h.next_offset() as u64);
                out.records = next.saturating_sub(h.base_offset as u64);
                out.region = Some(FileRegion {
                    file: seg.file().clone(),
                    position: pos,
                    len: end_pos - pos,
                });
                return Ok(out);
            }
        }
        Ok(out)
    }

    /// The largest record timestamp in the log, -1 when it is empty.
    pub fn max_timestamp(&self) -> i64 {
        self.segments
            .load()
            .iter()
            .map(|s| s.max_timestamp())
            .max()
            .unwrap_or(-1)
    }

    /// The first record with timestamp `>= timestamp_ms`: `(offset, timestamp)`, or None
    /// if every record is older (Kafka's ListOffsets by timestamp).
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<(u64, i64)>> {
        let segments = self.segments.load();
        for seg in segments.iter().filter(|s| s.max_timestamp() >= timestamp_ms) {
            let size = seg.size();
            let from = seg.time_index.lookup(timestamp_ms, seg.next_offset());
            let Some((mut pos, _)) = seg.find_batch(from, size)? else {
                continue;
            };
            while let Some(h) = seg.read_header(pos, size)? {
                if h.max_timestamp >= timestamp_ms {
                    let region = FileRegion {
                        file: seg.file().clone(),
                        position: pos,
                        len: h.total_bytes() as u64,
                    };
                    let bytes = region.read_to_vec().map_err(Error::io("read", seg.log_path()))?;
                    let batch = RecordBatch::new(Bytes::from(bytes))?;
                    for r in batch.records()? {
                        if r.timestamp >= timestamp_ms {
                            return Ok(Some((r.offset as u64, r.timestamp)));
                        }
                    }
                }
                pos += h.total_bytes() as u64;
            }
        }
        Ok(None)
    }
}

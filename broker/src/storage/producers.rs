//! Idempotent producers' state in one partition: the last batches each producer id
//! appended, kept under the log's writer lock.
//!
//! A batch from an idempotent producer (producer id ≥ 0) carries its epoch and the
//! sequence number of its first record. The log appends it only if it follows that
//! producer's previous batch (sequence = last + 1, wrapping after `i32::MAX`, or 0 with a
//! newer epoch); a batch equal to one of the last [`RECENT_BATCHES`] (a retry whose first
//! answer was lost) is not appended again and gets its original offsets; anything else is
//! OUT_OF_ORDER_SEQUENCE_NUMBER, and an older epoch INVALID_PRODUCER_EPOCH — Kafka's rules.
//! A producer the log has no state for (new, or forgotten) starts at any sequence.
//!
//! Restarts: the state is rebuilt from the batch headers of the active segment when the
//! log opens. Producers silent since before the last roll are forgotten, as Kafka forgets
//! them after `producer.id.expiration.ms`; their next batch starts afresh.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::FileExt;

use runnel_protocol::batch::{BatchHeader, HEADER_BYTES};

use crate::error::{Error, Result};
use crate::storage::segment::Segment;

/// Batches remembered per producer for duplicate detection (Kafka's
/// `max.in.flight.requests.per.connection` limit for idempotence is 5).
pub const RECENT_BATCHES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Appended {
    first_seq: i32,
    last_seq: i32,
    base_offset: u64,
    last_offset: u64,
}

#[derive(Debug, Default)]
struct Producer {
    epoch: i16,
    recent: VecDeque<Appended>,
}

/// What to do with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Append it (and `record` it after).
    Append,
    /// Already appended at these offsets: answer with them, append nothing.
    Duplicate { base_offset: u64, last_offset: u64 },
}

#[derive(Debug, Default)]
pub struct ProducerTable {
    producers: HashMap<i64, Producer>,
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

/// The sequence of a batch's last record.
fn last_seq(h: &BatchHeader) -> i32 {
    let last = h.base_sequence as i64 + h.last_offset_delta as i64;
    if last > i32::MAX as i64 {
        (last - i32::MAX as i64 - 1) as i32
    } else {
        last as i32
    }
}

impl ProducerTable {
    /// Whether `h` may be appended, given the batches before it (`pending`: earlier
    /// batches of the same append, not yet recorded).
    pub fn check(&self, h: &BatchHeader, pending: &[(BatchHeader, u64)]) -> Result<Check> {
        if h.producer_id < 0 {
            return Ok(Check::Append);
        }
        // The latest known (epoch, last sequence) of this producer, pending batches first.
        let latest = pending
            .iter()
            .rev()
            .find(|(p, _)| p.producer_id == h.producer_id)
            .map(|(p, _)| (p.producer_epoch, last_seq(p)));
        let state = self.producers.get(&h.producer_id);
        let latest = latest.or_else(|| state.and_then(|s| s.recent.back().map(|a| (s.epoch, a.last_seq))));
        let Some((epoch, last)) = latest else {
            return Ok(Check::Append);
        };
        if h.producer_epoch < epoch {
            return Err(Error::InvalidProducerEpoch {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                current: epoch,
            });
        }
        if h.producer_epoch > epoch {
            return if h.base_sequence == 0 {
                Ok(Check::Append)
            } else {
                Err(Error::OutOfOrderSequence {
                    producer_id: h.producer_id,
                    sequence: h.base_sequence,
                    expected: format!("0 (a new epoch {})", h.producer_epoch),
                })
            };
        }
        if let Some(dup) = state.filter(|s| s.epoch == h.producer_epoch).and_then(|s| {
            s.recent
                .iter()
                .find(|a| a.first_seq == h.base_sequence && a.last_seq == last_seq(h))
        }) {
            return Ok(Check::Duplicate {
                base_offset: dup.base_offset,
                last_offset: dup.last_offset,
            });
        }
        if h.base_sequence == next_seq(last) {
            Ok(Check::Append)
        } else {
            Err(Error::OutOfOrderSequence {
                producer_id: h.producer_id,
                sequence: h.base_sequence,
                expected: format!("{} (the last was {last})", next_seq(last)),
            })
        }
    }

    /// Notes an appended batch at `base_offset`.
    pub fn record(&mut self, h: &BatchHeader, base_offset: u64) {
        if h.producer_id < 0 {
            return;
        }
        let p = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != p.epoch {
            p.epoch = h.producer_epoch;
            p.recent.clear();
        }
        if p.recent.len() == RECENT_BATCHES {
            p.recent.pop_front();
        }
        p.recent.push_back(Appended {
            first_seq: h.base_sequence,
            last_seq: last_seq(h),
            base_offset,
            last_offset: base_offset + h.last_offset_delta as u64,
        });
    }

    /// The state the batches of `segment` (valid up to its published size) leave behind.
    pub(crate) fn rebuild(segment: &Segment) -> Result<ProducerTable> {
        let mut table = ProducerTable::default();
        let mut header = [0u8; HEADER_BYTES];
        let mut pos = 0u64;
        let end = segment.size();
        while pos + HEADER_BYTES as u64 <= end {
            segment
                .file()
                .read_exact_at(&mut header, pos)
                .map_err(Error::io("read batch header", segment.log_path()))?;
            let h = BatchHeader::parse(&header)?;
            if h.producer_id >= 0 {
                table.record(&h, h.base_offset as u64);
            }
            pos += h.total_bytes() as u64;
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pid: i64, epoch: i16, seq: i32, records: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: records,
        }
    }

    fn append(t: &mut ProducerTable, h: BatchHeader, at: u64) -> Result<Check> {
        let c = t.check(&h, &[])?;
        if c == Check::Append {
            t.record(&h, at);
        }
        Ok(c)
    }

    #[test]
    fn sequences_follow_duplicates_get_their_offsets_and_gaps_are_refused() {
        let mut t = ProducerTable::default();
        assert_eq!(append(&mut t, batch(7, 0, 0, 3), 100).unwrap(), Check::Append);
        assert_eq!(append(&mut t, batch(7, 0, 3, 2), 103).unwrap(), Check::Append);
        // A retry of either: the original offsets, nothing appended.
        assert_eq!(
            append(&mut t, batch(7, 0, 0, 3), 999).unwrap(),
            Check::Duplicate {
                base_offset: 100,
                last_offset: 102
            }
        );
        assert_eq!(
            append(&mut t, batch(7, 0, 3, 2), 999).unwrap(),
            Check::Duplicate {
                base_offset: 103,
                last_offset: 104
            }
        );
        // A gap, and a batch overlapping without matching: out of order.
        assert!(matches!(
            append(&mut t, batch(7, 0, 6, 1), 105),
            Err(Error::OutOfOrderSequence { .. })
        ));
        assert!(matches!(
            append(&mut t, batch(7, 0, 1, 1), 105),
            Err(Error::OutOfOrderSequence { .. })
        ));
        // Non-idempotent batches are never checked; another producer has its own sequence.
        assert_eq!(append(&mut t, batch(-1, -1, -1, 5), 105).unwrap(), Check::Append);
        assert_eq!(append(&mut t, batch(8, 0, 40, 1), 110).unwrap(), Check::Append);
    }

    #[test]
    fn epochs_fence_and_restart_sequences() {
        let mut t = ProducerTable::default();
        append(&mut t, batch(7, 2, 0, 1), 0).unwrap();
        assert!(matches!(
            append(&mut t, batch(7, 1, 1, 1), 1),
            Err(Error::InvalidProducerEpoch { .. })
        ));
        assert!(matches!(
            append(&mut t, batch(7, 3, 5, 1), 1),
            Err(Error::OutOfOrderSequence { .. })
        ));
        assert_eq!(append(&mut t, batch(7, 3, 0, 1), 1).unwrap(), Check::Append);
        // The old epoch's batches are forgotten: its retry is fenced, not a duplicate.
        assert!(matches!(
            append(&mut t, batch(7, 2, 0, 1), 9),
            Err(Error::InvalidProducerEpoch { .. })
        ));
    }

    #[test]
    fn sequences_wrap_and_only_the_last_five_batches_are_remembered() {
        let mut t = ProducerTable::default();
        append(&mut t, batch(1, 0, i32::MAX - 1, 2), 0).unwrap();
        assert_eq!(
            append(&mut t, batch(1, 0, 0, 1), 2).unwrap(),
            Check::Append,
            "wraps after MAX"
        );
        for i in 1..=5 {
            append(&mut t, batch(1, 0, i, 1), 2 + i as u64).unwrap();
        }
        // The batch at sequence 0 is the sixth from the end: no longer known, out of order.
        assert!(matches!(
            append(&mut t, batch(1, 0, 0, 1), 50),
            Err(Error::OutOfOrderSequence { .. })
        ));
        assert!(matches!(
            append(&mut t, batch(1, 0, 1, 1), 50),
            Ok(Check::Duplicate { .. })
        ));
    }

    #[test]
    fn pending_batches_of_the_same_append_count() {
        let t = ProducerTable::default();
        let first = batch(3, 0, 0, 2);
        assert_eq!(t.check(&batch(3, 0, 2, 1), &[(first, 0)]).unwrap(), Check::Append);
        assert!(t.check(&batch(3, 0, 5, 1), &[(first, 0)]).is_err());
    }
}

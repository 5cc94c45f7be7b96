//! Idempotent producers' state in one partition: the last batches each producer id
//! appended, kept under the log's writer lock.
//!
//! A batch from an idempotent producer (producer id ≥ 0) carries its epoch and the
//! sequence number of its first record. The log appends it only if it follows that
//! producer's previous batch (sequence = last + 1, wrapping after `i32::MAX`, or 0 with a
//! newer epoch); a batch equal to one of the last [`RECENT_BATCHES`] (a retry whose first
//! answer was lost) is not appended again and gets its original offsets; anything else is
//! OUT_OF_ORDER_SEQUENCE_NUMBER, and an older epoch INVALID_PRODUCER_EPOCH — Kafka's rules.
//! A producer the log has no state for (new, or expired) starts at any sequence.
//!
//! # Snapshots and restarts
//!
//! When the log rolls, the table as it stands before the new segment's base offset is
//! written to `NNNNNNNNNNNNNNNNNNNN.producers` beside the segment (Kafka's `.snapshot`
//! files). After a restart the table is rebuilt on the first idempotent append: from the
//! newest snapshot that lies at a segment base inside the log, then the batch headers of
//! every segment from there to the end. A snapshot that fails its CRC-32C is skipped for
//! an older one, and with none the headers of the whole log are read, so a snapshot only
//! saves time and is never needed for the right answer. Snapshots are not synced: a
//! crash can tear one, which the CRC catches. Ones past the end of the log (recovery or
//! truncation cut the batches they describe) are deleted at open and at truncation, ones
//! below the log start with the segments, and only the newest [`SNAPSHOTS_KEPT`] stay.
//!
//! At each roll, producers whose last batch lies below the log start are dropped before
//! the snapshot is written: once retention has deleted a producer's batches it is
//! forgotten (its next batch starts afresh), as Kafka forgets it, and the table stays
//! bounded by the producers the log still holds batches of.
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use runnel_protocol::batch::{BatchHeader, HEADER_BYTES};
use runnel_protocol::crc::crc32c;
use tracing::warn;

use crate::error::{Error, Result};
use crate::storage::io;
use crate::storage::segment::{self, Segment};

/// Batches remembered per producer for duplicate detection (Kafka's
/// `max.in.flight.requests.per.connection` limit for idempotence is 5).
pub const RECENT_BATCHES: usize = 5;

/// File suffix of producer-state snapshots.
pub(crate) const SNAPSHOT_SUFFIX: &str = "producers";
/// Snapshots kept: the newest two, so a crash that loses the newest segment (and leaves
/// its snapshot past the end of the log) still finds one.
pub(crate) const SNAPSHOTS_KEPT: usize = 2;
const SNAPSHOT_MAGIC: &[u8; 4] = b"RPS1";
/// Bytes per remembered batch in a snapshot: two sequences and two offsets.
const APPENDED_BYTES: usize = 4 + 4 + 8 + 8;

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
    pub fn check(&self, h: &BatchHeader, pending: &[BatchHeader]) -> Result<Check> {
        if h.producer_id < 0 {
            return Ok(Check::Append);
        }
        // The latest known (epoch, last sequence) of this producer, pending batches first.
        let latest = pending
            .iter()
            .rev()
            .find(|p| p.producer_id == h.producer_id)
            .map(|p| (p.producer_epoch, last_seq(p)));
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

    /// Replays the batch headers of `segment` (valid up to its published size).
    fn replay(&mut self, segment: &Segment) -> Result<()> {
        let mut header = [0u8; HEADER_BYTES];
        let mut pos = 0u64;
        let end = segment.size();
        while pos + HEADER_BYTES as u64 <= end {
            io::read_at(segment.file(), segment.log_path(), &mut header, pos)
                .map_err(Error::io("read batch header", segment.log_path()))?;
            let h = BatchHeader::parse(&header)?;
            if h.producer_id >= 0 {
                self.record(&h, h.base_offset as u64);
            }
            pos += h.total_bytes() as u64;
        }
        Ok(())
    }

    /// The state the batches of `segments` (a log's whole segment list) leave behind: the
    /// newest usable snapshot in `dir`, then the segments from its offset on.
    pub(crate) fn rebuild(dir: &Path, segments: &[Arc<Segment>]) -> Result<ProducerTable> {
        let mut from = 0;
        let mut table = ProducerTable::default();
        for offset in snapshot_offsets(dir)?.into_iter().rev() {
            let Some(i) = segments.iter().position(|s| s.base_offset() == offset) else {
                continue;
            };
            let path = snapshot_path(dir, offset);
            match std::fs::read(&path).ok().and_then(|b| ProducerTable::decode(&b)) {
                Some(t) => {
                    (table, from) = (t, i);
                    break;
                }
                None => warn!(file = %path.display(), "skipping an unreadable producer-state snapshot"),
            }
        }
        for seg in &segments[from..] {
            table.replay(seg)?;
        }
        Ok(table)
    }

    /// Forgets producers whose last batch lies below `log_start` (retention deleted it).
    pub(crate) fn expire_below(&mut self, log_start: u64) {
        self.producers
            .retain(|_, p| p.recent.back().is_some_and(|a| a.last_offset >= log_start));
    }

    /// Writes the table as the snapshot at `offset` (the base of the segment just started).
    pub(crate) fn write_snapshot(&self, dir: &Path, offset: u64) -> Result<()> {
        let path = snapshot_path(dir, offset);
        let tmp = path.with_extension(format!("{SNAPSHOT_SUFFIX}.tmp"));
        let bytes = self.encode();
        io::create(&tmp)
            .and_then(|f| io::write_at(&f, &tmp, &bytes, 0))
            .and_then(|()| io::rename(&tmp, &path))
            .map_err(|e| {
                let _ = io::remove_file(&tmp);
                Error::io("write producer-state snapshot", &path)(e)
            })
    }

    /// `magic, count: u32, count × (producer id: i64, epoch: i16, n: u8, n × (first
    /// sequence: i32, last sequence: i32, base offset: u64, last offset: u64)), CRC-32C of
    /// everything before it: u32`, big-endian.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.producers.len() * (11 + RECENT_BATCHES * APPENDED_BYTES) + 4);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        for (id, p) in &self.producers {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&p.epoch.to_be_bytes());
            out.push(p.recent.len() as u8);
            for a in &p.recent {
                out.extend_from_slice(&a.first_seq.to_be_bytes());
                out.extend_from_slice(&a.last_seq.to_be_bytes());
                out.extend_from_slice(&a.base_offset.to_be_bytes());
                out.extend_from_slice(&a.last_offset.to_be_bytes());
            }
        }
        let crc = crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// The table a snapshot holds; `None` for anything torn, corrupt or foreign.
    pub(crate) fn decode(bytes: &[u8]) -> Option<ProducerTable> {
        let (body, crc) = bytes.split_last_chunk::<4>()?;
        if crc32c(body) != u32::from_be_bytes(*crc) {
            return None;
        }
        let mut r = Reader(body.strip_prefix(SNAPSHOT_MAGIC)?);
        let count = u32::from_be_bytes(r.take()?);
        let mut table = ProducerTable::default();
        for _ in 0..count {
            let id = i64::from_be_bytes(r.take()?);
            let epoch = i16::from_be_bytes(r.take()?);
            let [n] = r.take()?;
            if n as usize > RECENT_BATCHES {
                return None;
            }
            let mut recent = VecDeque::with_capacity(n as usize);
            for _ in 0..n {
                recent.push_back(Appended {
                    first_seq: i32::from_be_bytes(r.take()?),
                    last_seq: i32::from_be_bytes(r.take()?),
                    base_offset: u64::from_be_bytes(r.take()?),
                    last_offset: u64::from_be_bytes(r.take()?),
                });
            }
            table.producers.insert(id, Producer { epoch, recent });
        }
        r.0.is_empty().then_some(table)
    }
}

/// Reads fixed-size big-endian fields off the front of a slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
}

fn snapshot_path(dir: &Path, offset: u64) -> PathBuf {
    dir.join(segment::file_name(offset, SNAPSHOT_SUFFIX))
}

/// Offsets of the snapshots in `dir`, ascending. Temporaries left by a crash are removed.
pub(crate) fn snapshot_offsets(dir: &Path) -> Result<Vec<u64>> {
    let mut offsets = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let entry = entry.map_err(Error::io("list", dir))?;
        let name = entry.file_name();
        let Some((stem, suffix)) = name.to_str().and_then(|n| n.split_once('.')) else {
            continue;
        };
        let Ok(offset) = stem.parse::<u64>() else {
            continue;
        };
        if suffix == SNAPSHOT_SUFFIX {
            offsets.push(offset);
        } else if suffix.strip_prefix(SNAPSHOT_SUFFIX) == Some(".tmp") {
            segment::remove_if_exists(&entry.path())?;
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

/// Removes the snapshots in `dir` whose offset `stale` picks.
pub(crate) fn remove_snapshots(dir: &Path, stale: impl Fn(u64) -> bool) -> Result<()> {
    for offset in snapshot_offsets(dir)?.into_iter().filter(|&o| stale(o)) {
        segment::remove_if_exists(&snapshot_path(dir, offset))?;
    }
    Ok(())
}

/// Removes all but the newest [`SNAPSHOTS_KEPT`] snapshots in `dir`.
pub(crate) fn prune_snapshots(dir: &Path) -> Result<()> {
    let offsets = snapshot_offsets(dir)?;
    let keep_from = offsets.len().saturating_sub(SNAPSHOTS_KEPT);
    for &offset in &offsets[..keep_from] {
        segment::remove_if_exists(&snapshot_path(dir, offset))?;
    }
    Ok(())
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
        assert_eq!(t.check(&batch(3, 0, 2, 1), &[first]).unwrap(), Check::Append);
        assert!(t.check(&batch(3, 0, 5, 1), &[first]).is_err());
    }

    #[test]
    fn snapshots_round_trip_and_reject_damage_and_expiry_forgets_deleted_producers() {
        let mut t = ProducerTable::default();
        for i in 0..7 {
            t.record(&batch(1, 3, i * 2, 2), 100 + i as u64 * 2);
        }
        t.record(&batch(2, 0, 0, 1), 10);
        t.record(&batch(i64::MAX, i16::MAX, i32::MAX, 1), 120);
        let bytes = t.encode();
        let back = ProducerTable::decode(&bytes).expect("a whole snapshot decodes");
        assert_eq!(back.producers.len(), 3);
        for (id, p) in &t.producers {
            let q = &back.producers[id];
            assert_eq!((q.epoch, &q.recent), (p.epoch, &p.recent), "producer {id}");
        }
        // Producer 2's last batch (offset 10) is below a log start of 11: forgotten.
        let mut trimmed = ProducerTable::decode(&bytes).unwrap();
        trimmed.expire_below(11);
        assert!(!trimmed.producers.contains_key(&2));
        assert_eq!(trimmed.producers.len(), 2);
        assert_eq!(append(&mut trimmed, batch(2, 0, 7, 1), 130).unwrap(), Check::Append);
        // Any torn or flipped byte is caught.
        for cut in 0..bytes.len() {
            assert!(ProducerTable::decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(ProducerTable::decode(&bad).is_none(), "flip at {at}");
        }
    }
}

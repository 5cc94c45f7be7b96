//! The sparse time index of a segment: `NNNNNNNNNNNNNNNNNNNN.timeindex`.
//!
//! Format (version 1): a sequence of 12-byte entries, big-endian,
//!
//! ```text
//! 0  8  timestamp        i64  largest batch max-timestamp before the indexed batch
//! 8  4  relative offset  u32  base offset of the indexed batch - segment base offset
//! ```
//!
//! Meaning of an entry `(T, O)`: every batch of the segment that starts before offset `O`
//! has a max timestamp of at most `T`. So to find the first record with timestamp `>= t`,
//! start scanning at the `O` of the last entry with `T < t`. Entries are written alongside
//! offset-index entries, only when `T` grows, so both fields strictly increase. No
//! checksum, for the same reason as the offset index: it is rebuilt from the log.

use std::path::Path;

use super::index_file::IndexFile;
use crate::error::Result;

pub const ENTRY_BYTES: usize = 12;

pub(crate) struct TimeIndex {
    base_offset: u64,
    file: IndexFile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub offset: u64,
}

impl TimeIndex {
    pub fn open(path: &Path, base_offset: u64, capacity_bytes: u64) -> Result<TimeIndex> {
        Ok(TimeIndex {
            base_offset,
            file: IndexFile::open(path, ENTRY_BYTES, capacity_bytes)?,
        })
    }

    pub fn file(&self) -> &IndexFile {
        &self.file
    }

    pub fn len(&self) -> usize {
        self.file.len()
    }

    pub fn entry(&self, i: usize) -> TimeEntry {
        let e: [u8; ENTRY_BYTES] = self.file.entry(i);
        TimeEntry {
            timestamp: i64::from_be_bytes(e[..8].try_into().expect("8 bytes")),
            offset: self.base_offset + u32::from_be_bytes(e[8..].try_into().expect("4 bytes")) as u64,
        }
    }

    pub fn last(&self) -> Option<TimeEntry> {
        self.len().checked_sub(1).map(|i| self.entry(i))
    }

    /// Adds `(timestamp, offset)` if the timestamp grew; the writer calls it at every
    /// offset-index point. False only if an entry was due and the disk had no room.
    pub fn maybe_push(&self, timestamp: i64, offset: u64) -> bool {
        if timestamp < 0
            || self
                .last()
                .is_some_and(|l| l.timestamp >= timestamp || l.offset >= offset)
        {
            return true;
        }
        let rel = u32::try_from(offset - self.base_offset).expect("relative offset fits u32");
        let mut e = [0u8; ENTRY_BYTES];
        e[..8].copy_from_slice(&timestamp.to_be_bytes());
        e[8..].copy_from_slice(&rel.to_be_bytes());
        self.file.push(&e)
    }

    /// The offset to start scanning from for the first record with timestamp `>= target`,
    /// considering only entries below `offset_limit`.
    pub fn lookup(&self, target: i64, offset_limit: u64) -> u64 {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let e = self.entry(mid);
            if e.timestamp < target && e.offset < offset_limit {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1).map_or(self.base_offset, |i| self.entry(i).offset)
    }

    /// Drops entries for batches at or past `offset` (log truncation).
    pub fn truncate_to_offset(&self, offset: u64) {
        let keep = (0..self.len())
            .rev()
            .find(|&i| self.entry(i).offset < offset)
            .map_or(0, |i| i + 1);
        self.file.truncate_entries(keep);
    }

    pub fn is_consistent(&self, next_offset: Option<u64>) -> bool {
        let mut prev: Option<TimeEntry> = None;
        for i in 0..self.len() {
            let e = self.entry(i);
            if next_offset.is_some_and(|n| e.offset >= n) || e.timestamp < 0 {
                return false;
            }
            if let Some(p) = prev {
                if e.timestamp <= p.timestamp || e.offset <= p.offset {
                    return false;
                }
            }
            prev = Some(e);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_starts_after_older_batches() {
        let dir = tempfile::tempdir().unwrap();
        let idx = TimeIndex::open(&dir.path().join("0.timeindex"), 0, 1200).unwrap();
        idx.file().extend().unwrap();
        idx.maybe_push(100, 10);
        idx.maybe_push(100, 20); // timestamp did not grow: skipped
        idx.maybe_push(300, 30);
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.lookup(50, u64::MAX), 0);
        assert_eq!(idx.lookup(100, u64::MAX), 0);
        assert_eq!(idx.lookup(101, u64::MAX), 10);
        assert_eq!(idx.lookup(301, u64::MAX), 30);
        assert_eq!(idx.lookup(301, 30), 10);
        assert!(idx.is_consistent(Some(31)));
        assert!(!idx.is_consistent(Some(30)));
    }
}

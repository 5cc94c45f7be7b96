//! The sparse offset index of a segment: `NNNNNNNNNNNNNNNNNNNN.index`.
//!
//! Format (version 1, as Kafka's): a sequence of 8-byte entries, big-endian,
//!
//! ```text
//! 0  4  relative offset  u32  batch base offset - segment base offset
//! 4  4  position         u32  byte position of that batch in the .log file
//! ```
//!
//! An entry is added before a batch once at least `index.interval.bytes` have been
//! appended since the previous entry, so lookups scan at most about that many bytes of
//! batch headers. Entries are strictly increasing in both fields. There is no checksum:
//! the index is derived data, checked against the log on open (see `recovery`) and
//! rebuilt from the log whenever it disagrees, so a torn index costs a rebuild, not data.
//!
//! Thread-safety: as [`IndexFile`]: one writer, any number of concurrent readers.

use std::path::Path;

use super::index_file::IndexFile;
use crate::error::Result;

pub const ENTRY_BYTES: usize = 8;

pub(crate) struct OffsetIndex {
    base_offset: u64,
    file: IndexFile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub offset: u64,
    pub position: u32,
}

impl OffsetIndex {
    pub fn open(path: &Path, base_offset: u64, capacity_bytes: u64) -> Result<OffsetIndex> {
        Ok(OffsetIndex {
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

    pub fn entry(&self, i: usize) -> OffsetEntry {
        let e: [u8; ENTRY_BYTES] = self.file.entry(i);
        OffsetEntry {
            offset: self.base_offset + u32::from_be_bytes([e[0], e[1], e[2], e[3]]) as u64,
            position: u32::from_be_bytes([e[4], e[5], e[6], e[7]]),
        }
    }

    pub fn last(&self) -> Option<OffsetEntry> {
        self.len().checked_sub(1).map(|i| self.entry(i))
    }

    /// Adds an entry; false if the disk had no room for it (see [`IndexFile::push`]).
    pub fn push(&self, offset: u64, position: u32) -> bool {
        debug_assert!(self.last().is_none_or(|l| l.offset < offset && l.position < position));
        let rel = u32::try_from(offset - self.base_offset).expect("relative offset fits u32");
        let mut e = [0u8; ENTRY_BYTES];
        e[..4].copy_from_slice(&rel.to_be_bytes());
        e[4..].copy_from_slice(&position.to_be_bytes());
        self.file.push(&e)
    }

    /// The last entry with `offset <= target` and `position < position_limit` (or the
    /// segment start), and the position of the entry after it if published and below the
    /// limit: the batch holding `target` starts before that position. `position_limit`
    /// keeps readers inside the bytes they know are written.
    pub fn lookup_with_next(&self, target: u64, position_limit: u64) -> (OffsetEntry, Option<u64>) {
        let n = self.search_index(|e| e.offset <= target && (e.position as u64) < position_limit);
        let entry = match n.checked_sub(1) {
            Some(i) => self.entry(i),
            None => OffsetEntry {
                offset: self.base_offset,
                position: 0,
            },
        };
        let next = (n < self.len())
            .then(|| self.entry(n).position as u64)
            .filter(|&p| p < position_limit);
        (entry, next)
    }

    /// The last entry with `position <= position`, or the segment start.
    pub fn lookup_position(&self, position: u64) -> OffsetEntry {
        self.search(|e| e.position as u64 <= position)
    }

    /// Binary search for the last entry satisfying a predicate that holds for a prefix.
    fn search(&self, ok: impl Fn(&OffsetEntry) -> bool) -> OffsetEntry {
        match self.search_index(ok).checked_sub(1) {
            Some(i) => self.entry(i),
            None => OffsetEntry {
                offset: self.base_offset,
                position: 0,
            },
        }
    }

    /// The number of leading entries satisfying `ok` (which holds for a prefix).
    fn search_index(&self, ok: impl Fn(&OffsetEntry) -> bool) -> usize {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if ok(&self.entry(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Drops entries at or past `position` (log truncation).
    pub fn truncate_to_position(&self, position: u64) {
        let keep = (0..self.len())
            .rev()
            .find(|&i| (self.entry(i).position as u64) < position)
            .map_or(0, |i| i + 1);
        self.file.truncate_entries(keep);
    }

    /// Whether the entries can be trusted for a log of `log_bytes` whose next offset is
    /// `next_offset`: strictly increasing, inside the log, and after the segment base.
    pub fn is_consistent(&self, log_bytes: u64, next_offset: Option<u64>) -> bool {
        let mut prev: Option<OffsetEntry> = None;
        for i in 0..self.len() {
            let e = self.entry(i);
            if e.position as u64 >= log_bytes || e.offset <= self.base_offset && i > 0 {
                return false;
            }
            if next_offset.is_some_and(|n| e.offset >= n) {
                return false;
            }
            if let Some(p) = prev {
                if e.offset <= p.offset || e.position <= p.position {
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
    fn lookup_finds_floor_entry() {
        let dir = tempfile::tempdir().unwrap();
        let idx = OffsetIndex::open(&dir.path().join("0.index"), 100, 1024).unwrap();
        idx.file().extend().unwrap();
        assert_eq!(
            idx.lookup_with_next(150, u64::MAX).0,
            OffsetEntry {
                offset: 100,
                position: 0
            }
        );
        for i in 1..=10u64 {
            idx.push(100 + i * 10, (i * 1000) as u32);
        }
        assert_eq!(idx.lookup_with_next(100, u64::MAX).0.position, 0);
        assert_eq!(
            idx.lookup_with_next(125, u64::MAX).0,
            OffsetEntry {
                offset: 120,
                position: 2000
            }
        );
        assert_eq!(idx.lookup_with_next(10_000, u64::MAX).0.offset, 200);
        assert_eq!(idx.lookup_with_next(10_000, 5000).0.offset, 140);
        assert_eq!(idx.lookup_position(3500).position, 3000);
        assert!(idx.is_consistent(10_001, Some(201)));
        assert!(!idx.is_consistent(9_000, None));
        idx.truncate_to_position(5000);
        assert_eq!(idx.len(), 4);
    }

    #[test]
    fn trimmed_index_reopens_with_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        {
            let idx = OffsetIndex::open(&path, 0, 4096).unwrap();
            idx.file().extend().unwrap();
            idx.push(5, 100);
            idx.push(9, 200);
            idx.file().trim().unwrap();
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 16);
        let idx = OffsetIndex::open(&path, 0, 4096).unwrap();
        assert_eq!(idx.len(), 2);
        assert_eq!(
            idx.last(),
            Some(OffsetEntry {
                offset: 9,
                position: 200
            })
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 16, "opening does not extend");
        idx.file().extend().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);
    }
}

//! A partition's leader-epoch history (Kafka's `leader-epoch-checkpoint`, KIP-101): for
//! each leader epoch whose batches the log holds, the offset of its first batch. A
//! replica that follows again asks its new leader where its own latest epoch ends there
//! (OffsetForLeaderEpoch) and cuts its log at that divergence point, rather than at its
//! high watermark, which may be behind what the leader committed or ahead of what the
//! leader holds.
//!
//! The file is text, one `epoch start_offset` line per epoch, replaced atomically (a
//! synced temporary renamed over it, the directory synced). An entry is written before
//! the first batch of its epoch, so recovery can reject a batch stamped with an epoch the
//! history does not have (the epoch field is outside the batch CRC) and entries past the
//! recovered end are dropped.

use std::path::Path;

use super::io;
use crate::error::{Error, Result};

pub(crate) const EPOCH_FILE: &str = "leader-epoch-checkpoint";

/// `(epoch, start offset)`, epochs and offsets strictly increasing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochHistory {
    entries: Vec<(i32, u64)>,
}

impl EpochHistory {
    /// The history stored in `dir` (empty when there is none; a damaged file yields the
    /// entries before the damage).
    pub fn load(dir: &Path) -> EpochHistory {
        let Ok(text) = std::fs::read_to_string(dir.join(EPOCH_FILE)) else {
            return EpochHistory::default();
        };
        let mut h = EpochHistory::default();
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let (Some(Ok(e)), Some(Ok(o))) = (it.next().map(str::parse::<i32>), it.next().map(str::parse::<u64>))
            else {
                break;
            };
            if h.entries.last().is_some_and(|&(le, lo)| e <= le || o < lo) {
                break;
            }
            h.entries.push((e, o));
        }
        h
    }

    pub fn entries(&self) -> &[(i32, u64)] {
        &self.entries
    }

    /// The latest epoch the log holds batches of (or was assigned), -1 if none.
    pub fn latest_epoch(&self) -> i32 {
        self.entries.last().map_or(-1, |e| e.0)
    }

    /// Records that epoch `epoch` starts at `offset`, durably, if it is newer than the
    /// latest. Returns whether it changed anything.
    pub fn assign(&mut self, dir: &Path, epoch: i32, offset: u64) -> Result<bool> {
        if epoch <= self.latest_epoch() {
            return Ok(false);
        }
        // An epoch that starts where the previous one did never had batches.
        while self.entries.last().is_some_and(|&(_, o)| o >= offset) {
            self.entries.pop();
        }
        self.entries.push((epoch, offset));
        self.write(dir)?;
        Ok(true)
    }

    /// Drops every epoch that starts at or after `end` (the log was cut there).
    pub fn truncate_from_end(&mut self, dir: &Path, end: u64) -> Result<()> {
        let before = self.entries.len();
        self.entries.retain(|&(_, o)| o < end);
        if self.entries.len() != before {
            self.write(dir)?;
        }
        Ok(())
    }

    /// Kafka's OffsetForLeaderEpoch answer for `epoch` on a log ending at `log_end`: the
    /// largest epoch at or below it that this log has, and the offset where that epoch
    /// ends here (the next epoch's start, or the log end for the latest). `None` when the
    /// log has no epoch at or below it (the asker must cut everything it has after this
    /// log's start).
    pub fn end_offset_for(&self, epoch: i32, log_end: u64) -> Option<(i32, u64)> {
        let i = self.entries.partition_point(|&(e, _)| e <= epoch);
        if i == 0 {
            return None;
        }
        let found = self.entries[i - 1].0;
        let end = self.entries.get(i).map_or(log_end, |&(_, o)| o);
        Some((found, end))
    }

    fn write(&self, dir: &Path) -> Result<()> {
        let mut text = String::new();
        for (e, o) in &self.entries {
            text.push_str(&format!("{e} {o}\n"));
        }
        let tmp = dir.join(format!("{EPOCH_FILE}.tmp"));
        let path = dir.join(EPOCH_FILE);
        (|| -> std::io::Result<()> {
            let f = io::create(&tmp)?;
            io::write_at(&f, &tmp, text.as_bytes(), 0)?;
            io::sync_data(&f, &tmp)?;
            io::rename(&tmp, &path)
        })()
        .map_err(|e| {
            let _ = io::remove_file(&tmp);
            Error::io("write leader-epoch checkpoint", &path)(e)
        })?;
        io::sync_dir(dir).map_err(Error::io("fsync dir", dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assigns_answers_and_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = EpochHistory::load(dir.path());
        assert_eq!(h.latest_epoch(), -1);
        assert!(h.assign(dir.path(), 0, 0).unwrap());
        assert!(!h.assign(dir.path(), 0, 5).unwrap());
        h.assign(dir.path(), 2, 10).unwrap();
        h.assign(dir.path(), 5, 30).unwrap();
        assert_eq!(EpochHistory::load(dir.path()), h);
        assert_eq!(h.end_offset_for(0, 40), Some((0, 10)));
        assert_eq!(h.end_offset_for(1, 40), Some((0, 10)));
        assert_eq!(h.end_offset_for(3, 40), Some((2, 30)));
        assert_eq!(h.end_offset_for(9, 40), Some((5, 40)));
        assert_eq!(h.end_offset_for(-1, 40), None);
        h.truncate_from_end(dir.path(), 30).unwrap();
        assert_eq!(h.entries(), &[(0, 0), (2, 10)]);
        assert_eq!(EpochHistory::load(dir.path()).entries(), &[(0, 0), (2, 10)]);
        // An epoch with no batches is replaced by the next that starts at the same place.
        h.assign(dir.path(), 3, 30).unwrap();
        h.assign(dir.path(), 4, 30).unwrap();
        assert_eq!(h.entries(), &[(0, 0), (2, 10), (4, 30)]);
    }
}

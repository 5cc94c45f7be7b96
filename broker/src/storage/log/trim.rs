//! Cutting the log: truncation (recovery, replicas), retention and DeleteRecords at the
//! front, and shutting a log whose topic is deleted.

use super::*;

impl PartitionLog {
    /// Cuts the log so that its end offset is at most `offset` (at a batch boundary: a
    /// batch that holds `offset` goes entirely). Returns the new end offset. Readers racing
    /// a truncation may get a region that ends early.
    pub fn truncate_to(self: &Arc<Self>, offset: u64) -> Result<u64> {
        let mut w = lock(&self.writer);
        self.check_open()?;
        let end = self.end_offset();
        if offset >= end {
            return Ok(end);
        }
        let start = self.start_offset();
        if offset < start {
            return Err(Error::OffsetOutOfRange { offset, start, end });
        }
        // No sync pass runs while the log is cut: one that read the old end offset would
        // otherwise mark re-appended offsets durable when it finishes.
        self.quiesce_sync();
        let result = self.truncate_quiesced(&mut w, offset);
        let new_end = self.end_offset();
        {
            let mut s = lock(&self.sync);
            s.queued = false;
            self.durable_offset.fetch_min(new_end, Ordering::AcqRel);
            // Appends waiting for offsets that are gone will not become durable.
            let (gone, kept): (Vec<_>, Vec<_>) = s.waiters.drain(..).partition(|w| w.end_offset > new_end);
            s.waiters = kept;
            for w in gone {
                let _ = w.tx.send(Err(Error::OffsetOutOfRange {
                    offset: w.end_offset - 1,
                    start,
                    end: new_end,
                }));
            }
            if !s.waiters.is_empty() || !s.sealed.is_empty() || s.dir_dirty {
                self.schedule_sync(&mut s);
            }
        }
        drop(w);
        self.appended.notify_waiters();
        let removed = result?;
        for r in &removed {
            r.delete_files()?;
        }
        info!(log = %self.dir.display(), from = end, to = new_end, "truncated log");
        Ok(new_end)
    }

    /// The cut itself, with sync passes held off. Returns the segments to delete.
    pub(super) fn truncate_quiesced(&self, w: &mut Writer, offset: u64) -> Result<Vec<Arc<Segment>>> {
        let segments = self.segments.load_full();
        let i = segments.partition_point(|s| s.base_offset() <= offset) - 1;
        let seg = segments[i].clone();
        let (pos, new_end) = match seg.find_batch(offset, seg.size())? {
            Some((pos, h)) => (pos, h.base_offset as u64),
            None => (seg.size(), seg.next_offset()),
        };
        seg.truncate_to(pos, new_end)?;
        // The cut must be durable before the checkpoint vouches for it again, or a crash
        // could bring truncated batches back as a valid tail.
        seg.sync_log()?;
        let max_epoch = w.epochs.latest_epoch().max(INITIAL_LEADER_EPOCH);
        let cursor = recovery::load_tail(&seg, &self.config.load(), max_epoch)?;
        seg.make_active()?;
        w.cursor = cursor;
        // The cut batches' producer state goes with them; rebuilt from what is left.
        w.producers = None;
        producers::remove_snapshots(&self.dir, |o| o > new_end)?;
        w.epochs.truncate_from_end(&self.dir, new_end)?;
        let removed: Vec<Arc<Segment>> = segments[i + 1..].to_vec();
        {
            let mut s = lock(&self.sync);
            self.segments.store(Arc::new(segments[..=i].to_vec()));
            s.sealed.retain(|x| !removed.iter().any(|r| Arc::ptr_eq(x, r)));
            s.dir_dirty = true;
        }
        if recovery::read_checkpoint(&self.dir) > seg.base_offset() {
            recovery::write_checkpoint(&self.dir, seg.base_offset())?;
        }
        self.end_offset.store(new_end, Ordering::Release);
        Ok(removed)
    }

    /// Deletes whole segments from the front that are past `retention.ms` (by their
    /// largest timestamp) or beyond `retention.bytes`, never the active one. Returns the
    /// base offsets of the deleted segments.
    pub fn apply_retention(&self, now_ms: i64) -> Result<Vec<u64>> {
        let cfg = self.config.load();
        if cfg.retention_ms < 0 && cfg.retention_bytes < 0 {
            return Ok(Vec::new());
        }
        let _writer = lock(&self.writer);
        let segments = self.segments.load_full();
        let mut total: u64 = segments.iter().map(|s| s.size()).sum();
        let mut k = 0;
        while k + 1 < segments.len() {
            let seg = &segments[k];
            let largest_ts = match seg.max_timestamp() {
                ts if ts >= 0 => ts,
                _ => file_mtime_ms(seg.file()),
            };
            let by_time = cfg.retention_ms >= 0 && now_ms.saturating_sub(largest_ts) > cfg.retention_ms;
            let by_size = cfg.retention_bytes >= 0 && total - seg.size() >= cfg.retention_bytes as u64;
            if !(by_time || by_size) {
                break;
            }
            total -= seg.size();
            k += 1;
        }
        let deleted = self.delete_front(&segments, k)?;
        if k > 0 {
            info!(
                log = %self.dir.display(),
                segments = k,
                log_start_offset = segments[k].base_offset(),
                "retention deleted segments"
            );
        }
        Ok(deleted)
    }

    /// Kafka's DeleteRecords: the log starts at `offset` from now on (reads below it are
    /// out of range), durably — the new start is written to `log-start-offset` before it
    /// counts — and whole segments below it are deleted. An offset at or below the current
    /// start changes nothing; one past the end is an error. Returns the log start.
    pub fn delete_records_before(&self, offset: u64) -> Result<u64> {
        let w = lock(&self.writer);
        self.check_open()?;
        let (start, end) = (self.start_offset(), self.end_offset());
        if offset > end {
            return Err(Error::OffsetOutOfRange { offset, start, end });
        }
        if offset <= start {
            return Ok(start);
        }
        recovery::write_offset_file(&self.dir, recovery::LOG_START_FILE, offset)?;
        self.start_offset.store(offset, Ordering::Release);
        let segments = self.segments.load_full();
        let mut k = 0;
        while k + 1 < segments.len() && segments[k + 1].base_offset() <= offset {
            k += 1;
        }
        self.delete_front(&segments, k)?;
        drop(w);
        info!(log = %self.dir.display(), log_start_offset = offset, "records deleted before the new log start");
        Ok(offset)
    }

    /// Deletes whole segments from the front whose records all lie below `offset`, never
    /// the active one: the owner of the log has superseded them (the offsets log after a
    /// snapshot). Returns the base offsets of the deleted segments.
    pub fn delete_segments_before(&self, offset: u64) -> Result<Vec<u64>> {
        let w = lock(&self.writer);
        let segments = self.segments.load_full();
        let mut k = 0;
        while k + 1 < segments.len() && segments[k + 1].base_offset() <= offset {
            k += 1;
        }
        let deleted = self.delete_front(&segments, k)?;
        drop(w);
        Ok(deleted)
    }

    /// Drops `segments[..k]` (a snapshot of the list, taken under the writer lock the
    /// caller holds) and moves the log start to `segments[k]`.
    pub(super) fn delete_front(&self, segments: &[Arc<Segment>], k: usize) -> Result<Vec<u64>> {
        if k == 0 {
            return Ok(Vec::new());
        }
        {
            let mut s = lock(&self.sync);
            self.segments.store(Arc::new(segments[k..].to_vec()));
            s.dir_dirty = true;
        }
        let start = segments[k].base_offset().max(self.start_offset());
        self.start_offset.store(start, Ordering::Release);
        let mut deleted = Vec::with_capacity(k);
        for seg in &segments[..k] {
            seg.delete_files()?;
            deleted.push(seg.base_offset());
        }
        producers::remove_snapshots(&self.dir, |o| o < start)?;
        Ok(deleted)
    }

    /// Stops appends and syncs of a log whose topic is being deleted (its files go).
    pub(crate) fn shut_for_delete(&self) {
        let _w = lock(&self.writer);
        self.closed.store(true, Ordering::Release);
        self.quiesce_sync();
        for w in lock(&self.sync).waiters.drain(..) {
            let _ = w.tx.send(Err(Error::ShuttingDown));
        }
    }

    /// Waits out a sync pass in progress and keeps new ones from starting: after this the
    /// flusher does not touch the log's files (for good once `closed` is set; until
    /// `truncate_to` clears `queued` again otherwise).
    pub(super) fn quiesce_sync(&self) {
        loop {
            {
                let mut s = lock(&self.sync);
                if !s.queued {
                    s.queued = true;
                    return;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

pub(super) fn file_mtime_ms(file: &File) -> i64 {
    file.metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

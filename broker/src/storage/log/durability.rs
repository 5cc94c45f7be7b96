//! Durability: sync passes on the flusher threads (group commit — one `fdatasync`
//! covers every append before it), interval flushes, and closing a log cleanly.

use super::*;

impl PartitionLog {
    /// Runs sync passes until no waiter is left. Flusher threads only.
    pub(crate) fn run_sync_passes(self: &Arc<Self>) {
        loop {
            let (target, sealed, dir_dirty, active) = {
                let mut s = lock(&self.sync);
                (
                    self.end_offset(),
                    std::mem::take(&mut s.sealed),
                    std::mem::take(&mut s.dir_dirty),
                    self.active(),
                )
            };
            let appends = self.appends_since_sync.swap(0, Ordering::Relaxed);
            let started = std::time::Instant::now();
            let result = self.sync_once(target, &sealed, dir_dirty, &active);
            let stats = &self.flusher.stats;
            stats.fsyncs.inc();
            stats.fsync_seconds.observe(started.elapsed().as_secs_f64());
            if appends > 0 {
                stats.appends_per_fsync.observe(appends as f64);
            }
            let mut s = lock(&self.sync);
            match result {
                Ok(()) => {
                    self.durable_offset.fetch_max(target, Ordering::AcqRel);
                    self.last_sync_ms.store(now_ms(), Ordering::Relaxed);
                    let durable = self.durable_offset();
                    let (done, waiting): (Vec<_>, Vec<_>) = s.waiters.drain(..).partition(|w| w.end_offset <= durable);
                    s.waiters = waiting;
                    for w in done {
                        let _ = w.tx.send(Ok(()));
                    }
                    if s.waiters.is_empty() && s.sealed.is_empty() && !s.dir_dirty {
                        s.queued = false;
                        return;
                    }
                }
                Err(e) => {
                    // After a failed fsync the page cache may have dropped the dirty pages
                    // it could not write; nothing written since the last good sync can be
                    // trusted, so the log stops taking writes (Kafka takes the dir offline).
                    error!(log = %self.dir.display(), error = %e, "sync failed; log is now offline");
                    let _ = self.offline.set(e.to_string());
                    for w in s.waiters.drain(..) {
                        let _ = w.tx.send(Err(Error::LogOffline {
                            path: self.dir.clone(),
                            reason: e.to_string(),
                        }));
                    }
                    s.queued = false;
                    return;
                }
            }
        }
    }

    pub(super) fn sync_once(
        &self,
        target: u64,
        sealed: &[Arc<Segment>],
        dir_dirty: bool,
        active: &Segment,
    ) -> Result<()> {
        for seg in sealed {
            seg.sync_all()?;
        }
        if target > self.durable_offset() {
            active.sync_log()?;
        }
        if dir_dirty {
            sync_dir(&self.dir)?;
        }
        if !sealed.is_empty() {
            // Every segment before the active one is now synced. (Truncation, which can
            // lower the checkpoint, holds sync passes off while it runs.) Raising the
            // checkpoint only shortens a later recovery scan; if it cannot be written (a
            // full disk) the old one stays valid, so the data sync above still stands and
            // the log stays online.
            if let Err(e) = recovery::write_checkpoint(&self.dir, active.base_offset()) {
                warn!(log = %self.dir.display(), error = %e, "recovery checkpoint not advanced");
            }
        }
        Ok(())
    }

    /// Schedules a background sync if the `interval` policy is due. Called by the
    /// maintenance thread.
    pub fn maybe_sync_interval(self: &Arc<Self>, now_ms: i64) {
        let cfg = self.config.load();
        if cfg.flush_policy != FlushPolicy::Interval || self.durable_offset() >= self.end_offset() {
            return;
        }
        if now_ms - self.last_sync_ms.load(Ordering::Relaxed) >= cfg.flush_ms as i64 {
            let mut s = lock(&self.sync);
            self.schedule_sync(&mut s);
        }
    }

    /// Syncs everything written so far and waits for it (blocking).
    pub fn flush(self: &Arc<Self>) -> Result<()> {
        self.check_online()?;
        self.wait_durable(self.end_offset()).wait_blocking()
    }

    /// Clean close: syncs everything, trims the active indexes, writes the checkpoint.
    /// Later appends fail with `ShuttingDown`. Blocking.
    pub fn close(&self) -> Result<()> {
        let _w = lock(&self.writer);
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.appended.notify_waiters();
        self.check_online()?;
        self.quiesce_sync();
        let sealed = std::mem::take(&mut lock(&self.sync).sealed);
        let active = self.active();
        let end = self.end_offset();
        for seg in &sealed {
            seg.sync_all()?;
        }
        active.trim_indexes()?;
        active.sync_all()?;
        sync_dir(&self.dir)?;
        recovery::write_checkpoint(&self.dir, active.base_offset())?;
        self.durable_offset.fetch_max(end, Ordering::AcqRel);
        let mut s = lock(&self.sync);
        for w in s.waiters.drain(..) {
            let _ = w.tx.send(Ok(()));
        }
        Ok(())
    }
}

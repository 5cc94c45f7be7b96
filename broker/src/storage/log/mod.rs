//! A partition's log: an ordered list of segments, the last one active. This file holds
//! the log, its opening and the append (hot path); `read` the reads (hot path),
//! `durability` the sync passes and closing, `trim` truncation, retention and
//! DeleteRecords.
//!
//! # Concurrency
//!
//! - **Appends, rolls, truncation, retention** are serialised by `writer` (a std mutex):
//!   the single writer of the partition. It is held across the page-cache `write(2)` of
//!   an append (that *is* the single writer) but never across `fdatasync`, which runs on
//!   the [`Flusher`] threads.
//! - **Reads** take no lock: they load the segment list (`ArcSwap`) and the published
//!   sizes and offsets (atomics), and bound every file access by them.
//! - **Durability** (`sync`, a std mutex held only to queue or complete waiters) tracks
//!   who waits for which offset to be on disk and which sealed segments still need a sync.
//!
//! # Visibility
//!
//! A batch is visible to readers as soon as its `write(2)` returns, before it is synced:
//! a killed process loses nothing that is in the page cache, and Kafka serves unsynced
//! data the same way. An `always` producer is acknowledged only once it is synced.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use runnel_protocol::batch::{self, BatchHeader};
use runnel_protocol::RecordBatch;
use tokio::sync::{oneshot, Notify};
use tracing::{error, info, warn};

use super::config::{FlushPolicy, LogConfig, TimestampType};
use super::epochs::EpochHistory;
use super::flusher::Flusher;
use super::io;
use super::producers::{self, Check, ProducerTable};
use super::recovery;
use super::segment::{FileRegion, IndexCursor, Segment};
use crate::error::{Error, Result};

mod durability;
mod read;
mod replica;
mod trim;

pub use replica::Role;

/// The leader epoch a log opens with, stamped into every appended batch's
/// `partitionLeaderEpoch` as Kafka's leader does: a broker alone leads every partition in
/// epoch 0. In a cluster the replication layer sets each log's role and epoch from the
/// metadata (see `replica`).
pub const INITIAL_LEADER_EPOCH: i32 = 0;

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: u64,
    pub last_offset: u64,
    /// The broker's timestamp when the topic uses LogAppendTime.
    pub log_append_time_ms: Option<i64>,
}

/// What a read found: at most one region of whole batches, and the log's bounds.
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub region: Option<FileRegion>,
    pub start_offset: u64,
    pub end_offset: u64,
    /// Records in `region` (counted by offsets: the first batch's base to the offset
    /// after the last batch; 0 without a region).
    pub records: u64,
}

/// Resolves when an append is durable under the log's flush policy and, in a cluster,
/// held by every in-sync replica (the high watermark passed it).
#[must_use = "an append is not acknowledged until this resolves"]
pub struct DurableWait {
    synced: Option<oneshot::Receiver<Result<()>>>,
    replicated: Option<oneshot::Receiver<Result<()>>>,
}

impl DurableWait {
    /// Already durable (nothing was written).
    pub fn ready() -> DurableWait {
        DurableWait {
            synced: None,
            replicated: None,
        }
    }

    /// Resolves to `error` (the write failed before it could be waited for).
    pub fn failed(error: Error) -> DurableWait {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(Err(error));
        DurableWait::from_receiver(rx)
    }

    /// Resolves with what is sent on the channel.
    pub fn from_receiver(rx: oneshot::Receiver<Result<()>>) -> DurableWait {
        DurableWait {
            synced: Some(rx),
            replicated: None,
        }
    }

    /// Nothing to wait for.
    pub fn is_ready(&self) -> bool {
        self.synced.is_none() && self.replicated.is_none()
    }

    pub async fn wait(self) -> Result<()> {
        for rx in [self.synced, self.replicated].into_iter().flatten() {
            rx.await.unwrap_or(Err(Error::ShuttingDown))?;
        }
        Ok(())
    }

    /// For threads outside an async runtime.
    pub fn wait_blocking(self) -> Result<()> {
        for rx in [self.synced, self.replicated].into_iter().flatten() {
            rx.blocking_recv().unwrap_or(Err(Error::ShuttingDown))?;
        }
        Ok(())
    }
}

struct Writer {
    cursor: IndexCursor,
    /// Idempotent producers' last batches; rebuilt (from a snapshot and the segments
    /// after it) on the first append that needs it, so logs without idempotent producers
    /// never pay for it. `None` again after a truncation.
    producers: Option<ProducerTable>,
    /// Scratch for `check_sequences` (kept, so an idempotent append allocates nothing).
    pending: Vec<BatchHeader>,
    /// Which leader epochs the log holds and where each starts.
    epochs: EpochHistory,
}

struct Waiter {
    end_offset: u64,
    tx: oneshot::Sender<Result<()>>,
}

#[derive(Default)]
struct SyncState {
    waiters: Vec<Waiter>,
    /// In the flusher's queue or being synced by one of its threads.
    queued: bool,
    /// Segments sealed by a roll that still need a full sync.
    sealed: Vec<Arc<Segment>>,
    /// A segment file was created or removed since the last directory sync.
    dir_dirty: bool,
}

pub struct PartitionLog {
    dir: PathBuf,
    config: ArcSwap<LogConfig>,
    segments: ArcSwap<Vec<Arc<Segment>>>,
    writer: Mutex<Writer>,
    start_offset: AtomicU64,
    end_offset: AtomicU64,
    durable_offset: AtomicU64,
    last_sync_ms: AtomicI64,
    sync: Mutex<SyncState>,
    offline: OnceLock<String>,
    /// Set under the writer lock by `close` or `shut_for_delete`; no append or sync after.
    closed: AtomicBool,
    flusher: Arc<Flusher>,
    /// Appends since the last sync pass began (for appends per fsync).
    appends_since_sync: AtomicU64,
    /// Woken after every append (and truncation, and close): long-poll fetches wait here
    /// instead of polling.
    appended: Notify,
    /// Leader or follower, and the epoch a leader stamps: see `replica`.
    role: replica::RoleState,
}

/// The log's locks ignore poison (`crate::sync`): every published change is a single
/// atomic store, so a panic while holding one leaves nothing half-done.
use crate::sync::lock;

impl PartitionLog {
    /// Opens (or creates) the log in `dir`. `clean` says the broker shut down cleanly, so
    /// only the cheap tail checks run; otherwise segments past the recovery checkpoint are
    /// scanned and their torn or corrupt tail cut.
    pub fn open(dir: &Path, config: LogConfig, flusher: Arc<Flusher>, clean: bool) -> Result<Arc<PartitionLog>> {
        // Its name in the parent is durable before anything is written in it.
        io::create_dir_durable(dir).map_err(Error::io("create log dir", dir))?;
        let mut epochs = EpochHistory::load(dir);
        let opened = recovery::open_segments(dir, &config, clean, epochs.latest_epoch().max(INITIAL_LEADER_EPOCH))?;
        flusher
            .stats
            .recovery_truncated_bytes
            .fetch_add(opened.truncated_bytes, Ordering::Relaxed);
        let end = opened.segments.last().expect("one segment").next_offset();
        // DeleteRecords may have moved the start past the first segment's base.
        let start = recovery::read_offset_file(dir, recovery::LOG_START_FILE)
            .unwrap_or(0)
            .clamp(opened.segments[0].base_offset(), end);
        // Producer state of batches that recovery cut (or that never reached the disk)
        // must not come back when the log grows past them again.
        producers::remove_snapshots(dir, |o| o > end)?;
        epochs.truncate_from_end(dir, end)?;
        let role = replica::RoleState::open(dir, end);
        Ok(Arc::new(PartitionLog {
            dir: dir.to_owned(),
            config: ArcSwap::from_pointee(config),
            segments: ArcSwap::from_pointee(opened.segments),
            writer: Mutex::new(Writer {
                cursor: opened.cursor,
                producers: None,
                pending: Vec::new(),
                epochs,
            }),
            start_offset: AtomicU64::new(start),
            end_offset: AtomicU64::new(end),
            durable_offset: AtomicU64::new(if clean { end } else { 0 }),
            last_sync_ms: AtomicI64::new(now_ms()),
            sync: Mutex::new(SyncState::default()),
            offline: OnceLock::new(),
            closed: AtomicBool::new(false),
            flusher,
            appended: Notify::new(),
            appends_since_sync: AtomicU64::new(0),
            role,
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn config(&self) -> Arc<LogConfig> {
        self.config.load_full()
    }
    pub fn set_config(&self, config: LogConfig) {
        self.config.store(Arc::new(config));
    }
    /// The first offset still in the log.
    pub fn start_offset(&self) -> u64 {
        self.start_offset.load(Ordering::Acquire)
    }
    /// The offset the next append gets.
    pub fn end_offset(&self) -> u64 {
        self.end_offset.load(Ordering::Acquire)
    }
    /// Offsets below this are known to be on disk.
    /// Notified after every append, truncation and close. Create the `notified()` future
    /// *before* checking the end offset, so an append between the check and the wait is
    /// not missed (`notify_waiters` wakes every future created before it).
    pub fn appended(&self) -> &Notify {
        &self.appended
    }

    pub fn durable_offset(&self) -> u64 {
        self.durable_offset.load(Ordering::Acquire)
    }
    pub fn size_bytes(&self) -> u64 {
        self.segments.load().iter().map(|s| s.size()).sum()
    }
    pub fn segment_base_offsets(&self) -> Vec<u64> {
        self.segments.load().iter().map(|s| s.base_offset()).collect()
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        self.check_online()
    }

    fn check_online(&self) -> Result<()> {
        match self.offline.get() {
            Some(reason) => Err(Error::LogOffline {
                path: self.dir.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    // ---------------------------------------------------------------- append (hot path)

    /// Appends one or more concatenated batches, exactly as a producer sent them. Each is
    /// checked (framing, magic 2, CRC-32C, dense offsets, size limit) before anything is
    /// written; then base offsets are stamped in place and all batches go to the active
    /// segment in one `write(2)`. Durability is not awaited: see [`append_durable`].
    ///
    /// [`append_durable`]: PartitionLog::append_durable
    ///
    /// A topic with a `compression.type` codec stores batches in that codec: one that
    /// arrives in another is checked, then recompressed into a new buffer that is
    /// appended instead — off the zero-copy path (Kafka does the same).
    pub fn append(self: &Arc<Self>, batches: &mut [u8]) -> Result<AppendInfo> {
        let cfg = self.config.load();
        if let Some(codec) = cfg.compression_type.codec() {
            if headers(batches).any(|h| h.compression().ok() != Some(codec)) {
                validate_all(batches, &cfg, None)?;
                let mut converted = Vec::with_capacity(batches.len());
                let mut at = 0;
                while at < batches.len() {
                    let h = BatchHeader::parse(&batches[at..]).expect("validated");
                    batch::recompress(&batches[at..at + h.total_bytes()], codec, &mut converted)?;
                    at += h.total_bytes();
                }
                return self.append(&mut converted);
            }
        }
        // Pass 1, outside the writer lock so concurrent producers checksum in parallel.
        let log_append_time = (cfg.message_timestamp_type == TimestampType::LogAppendTime).then(now_ms);
        let (records, max_timestamp) = validate_all(batches, &cfg, log_append_time)?;

        let mut w = lock(&self.writer);
        self.check_open()?;
        let epoch = self.role.leader_epoch_for_append(&self.dir)?;
        let idempotent = headers(batches).any(|h| h.producer_id >= 0);
        if idempotent {
            if let Some(dup) = self.check_sequences(&mut w, batches)? {
                return Ok(dup);
            }
        }
        let base = self.end_offset.load(Ordering::Relaxed);
        if epoch > w.epochs.latest_epoch() {
            // Durable before the first batch of the epoch, so recovery knows the epoch.
            w.epochs.assign(&self.dir, epoch, base)?;
        }
        // Pass 2: stamp offsets and the leader epoch. The CRC covers neither, so nothing is
        // re-encoded.
        let mut offset = base;
        let mut at = 0;
        while at < batches.len() {
            let h = BatchHeader::parse(&batches[at..]).expect("validated");
            batch::set_base_offset(&mut batches[at..], offset as i64);
            batch::set_partition_leader_epoch(&mut batches[at..], epoch);
            offset += h.last_offset_delta as u64 + 1;
            at += h.total_bytes();
        }
        debug_assert_eq!(offset, base + records);
        self.write_stamped(w, &cfg, batches, base, offset, max_timestamp)?;
        Ok(AppendInfo {
            base_offset: base,
            last_offset: offset - 1,
            log_append_time_ms: log_append_time,
        })
    }

    /// Appends (Kafka's acks=all), and returns a wait that resolves once the append is
    /// durable under the topic's flush policy (at once for `interval` and `os`) and the
    /// high watermark has passed it (at once while the leader is its only in-sync
    /// replica). Refused with NOT_ENOUGH_REPLICAS, before anything is written, while
    /// the ISR is smaller than `min.insync.replicas`.
    pub fn append_durable(self: &Arc<Self>, batches: &mut [u8]) -> Result<(AppendInfo, DurableWait)> {
        self.role.check_min_isr(&self.config.load())?;
        let info = self.append(batches)?;
        Ok((info, self.wait_acknowledged(info.last_offset + 1)))
    }

    /// A wait that resolves once every offset below `end_offset` may be acknowledged to
    /// an acks=all writer: durable under the flush policy and below the high watermark.
    pub fn wait_acknowledged(self: &Arc<Self>, end_offset: u64) -> DurableWait {
        let mut wait = match self.config.load().flush_policy {
            FlushPolicy::Always => self.wait_durable(end_offset),
            FlushPolicy::Interval | FlushPolicy::Os => DurableWait::ready(),
        };
        wait.replicated = self.wait_replicated(end_offset);
        wait
    }

    /// A wait that resolves once every offset below `end_offset` is synced.
    pub fn wait_durable(self: &Arc<Self>, end_offset: u64) -> DurableWait {
        if self.durable_offset() >= end_offset {
            return DurableWait::ready();
        }
        let (tx, rx) = oneshot::channel();
        let mut s = lock(&self.sync);
        if self.durable_offset() >= end_offset {
            return DurableWait::ready();
        }
        if self.closed.load(Ordering::Acquire) {
            let _ = tx.send(Err(Error::ShuttingDown));
            return DurableWait::from_receiver(rx);
        }
        s.waiters.push(Waiter { end_offset, tx });
        self.schedule_sync(&mut s);
        DurableWait::from_receiver(rx)
    }

    fn schedule_sync(self: &Arc<Self>, s: &mut SyncState) {
        if s.queued {
            return;
        }
        s.queued = true;
        if !self.flusher.enqueue(self.clone()) {
            s.queued = false;
            for w in s.waiters.drain(..) {
                let _ = w.tx.send(Err(Error::ShuttingDown));
            }
        }
    }

    /// Writes batches already stamped with offsets `base..next` to the active segment
    /// (rolling first when due) in one `write(2)`, adds their index entries and producer
    /// state, and publishes the new end; then releases the writer lock and wakes readers.
    /// Shared by the leader's append and the follower's.
    fn write_stamped(
        self: &Arc<Self>,
        mut w: std::sync::MutexGuard<'_, Writer>,
        cfg: &LogConfig,
        batches: &[u8],
        base: u64,
        next: u64,
        max_timestamp: i64,
    ) -> Result<()> {
        let mut active = self.active();
        if self.should_roll(&active, cfg, batches.len() as u64, next - 1, max_timestamp) {
            active = self.roll(&mut w, cfg, base)?;
        }
        let position = active.size();
        if let Err(e) = active.write_at_end(batches) {
            // A short write (disk full) leaves bytes past the published size; cut them so
            // the next append and recovery start from a batch boundary.
            let _ = io::set_len(active.file(), active.log_path(), position);
            return Err(e);
        }
        // Index entries and producer state (`record` skips batches without a producer
        // id), then publish.
        let mut at = 0;
        while at < batches.len() {
            let h = BatchHeader::parse(&batches[at..]).expect("validated");
            w.cursor
                .on_batch(&active, cfg.index_interval_bytes, &h, position + at as u64);
            if let Some(p) = w.producers.as_mut() {
                p.record(&h, h.base_offset as u64);
            }
            at += h.total_bytes();
        }
        let seg_max_ts = active.max_timestamp().max(max_timestamp);
        active.publish(position + batches.len() as u64, next, seg_max_ts);
        self.end_offset.store(next, Ordering::Release);
        drop(w);
        self.appends_since_sync.fetch_add(1, Ordering::Relaxed);
        self.appended.notify_waiters();
        Ok(())
    }

    /// Idempotent producers' batches must follow their previous ones (see
    /// [`ProducerTable`]). `Some`: the append is a retried duplicate, already in the log
    /// at these offsets.
    fn check_sequences(&self, w: &mut Writer, batches: &[u8]) -> Result<Option<AppendInfo>> {
        if w.producers.is_none() {
            w.producers = Some(ProducerTable::rebuild(&self.dir, &self.segments.load())?);
        }
        let table = w.producers.as_ref().expect("built above");
        let pending = &mut w.pending;
        pending.clear();
        let mut duplicate = None;
        for h in headers(batches) {
            match table.check(&h, pending)? {
                Check::Append => pending.push(h),
                Check::Duplicate {
                    base_offset,
                    last_offset,
                } => duplicate = Some((h, base_offset, last_offset)),
            }
        }
        match duplicate {
            None => Ok(None),
            Some((_, base_offset, last_offset)) if pending.is_empty() => Ok(Some(AppendInfo {
                base_offset,
                last_offset,
                log_append_time_ms: None,
            })),
            // A retried batch next to new ones: not something a producer sends.
            Some((h, _, _)) => Err(Error::OutOfOrderSequence {
                producer_id: h.producer_id,
                sequence: h.base_sequence,
                expected: "no duplicate batch among new ones in one append".into(),
            }),
        }
    }

    fn active(&self) -> Arc<Segment> {
        self.segments.load().last().expect("a log always has a segment").clone()
    }

    fn should_roll(&self, active: &Segment, cfg: &LogConfig, bytes: u64, last_offset: u64, max_timestamp: i64) -> bool {
        if active.is_empty() {
            return false;
        }
        let first_ts = active.first_batch_timestamp();
        active.size() + bytes > cfg.segment_bytes
            || (first_ts >= 0 && max_timestamp.saturating_sub(first_ts) > cfg.segment_ms)
            || active.offset_index.file().is_full()
            || active.time_index.file().is_full()
            || last_offset - active.base_offset() > u32::MAX as u64
    }

    /// Seals the active segment now, if it holds anything (Kafka's `roll`).
    pub fn force_roll(self: &Arc<Self>) -> Result<()> {
        let mut w = lock(&self.writer);
        self.check_open()?;
        if !self.active().is_empty() {
            let cfg = self.config.load();
            self.roll(&mut w, &cfg, self.end_offset())?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at `next_offset`. Writer only.
    fn roll(self: &Arc<Self>, w: &mut Writer, cfg: &LogConfig, next_offset: u64) -> Result<Arc<Segment>> {
        let old = self.active();
        // New segment first: if it cannot be made (disk full), the old one stays active
        // with its indexes intact and the append fails cleanly.
        let new = Arc::new(Segment::create(&self.dir, next_offset, cfg)?);
        old.trim_indexes()?;
        let mut s = lock(&self.sync);
        let mut list = Vec::clone(&self.segments.load());
        list.push(new.clone());
        self.segments.store(Arc::new(list));
        s.sealed.push(old);
        s.dir_dirty = true;
        // Sealed segments are synced and the recovery checkpoint advanced in the
        // background, whatever the flush policy, so recovery scans only the tail.
        self.schedule_sync(&mut s);
        drop(s);
        w.cursor = IndexCursor::fresh();
        if let Some(table) = &mut w.producers {
            table.expire_below(self.start_offset());
            // Only saves the next start a read of this segment's headers: a failure
            // (disk full) is no reason to fail the append.
            let written = table
                .write_snapshot(&self.dir, next_offset)
                .and_then(|()| producers::prune_snapshots(&self.dir));
            if let Err(e) = written {
                warn!(log = %self.dir.display(), error = %e, "producer-state snapshot not written");
            }
        }
        Ok(new)
    }
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("dir", &self.dir())
            .field("start_offset", &self.start_offset())
            .field("end_offset", &self.end_offset())
            .finish()
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    io::sync_dir(dir).map_err(Error::io("fsync dir", dir))
}

/// Checks every batch in `batches` and returns (record count, largest max timestamp).
/// With LogAppendTime, stamps the broker's time into each batch first.
pub(crate) fn validate_all(batches: &mut [u8], cfg: &LogConfig, log_append_time: Option<i64>) -> Result<(u64, i64)> {
    if batches.is_empty() {
        return Err(batch_error(runnel_protocol::BatchError::Truncated {
            needed: batch::HEADER_BYTES,
            available: 0,
        }));
    }
    let (mut records, mut max_ts, mut at) = (0u64, -1i64, 0usize);
    while at < batches.len() {
        let rest = &mut batches[at..];
        let len = match batch::check_batch(rest)? {
            Some(n) => n,
            None => {
                return Err(batch_error(runnel_protocol::BatchError::Truncated {
                    needed: if rest.len() < batch::LOG_OVERHEAD {
                        batch::LOG_OVERHEAD
                    } else {
                        batch::LOG_OVERHEAD + i32::from_be_bytes(rest[8..12].try_into().expect("4")) as usize
                    },
                    available: rest.len(),
                }))
            }
        };
        if len as u64 > cfg.max_message_bytes {
            return Err(Error::RecordTooLarge {
                size: len,
                limit: cfg.max_message_bytes as usize,
            });
        }
        let one = &mut rest[..len];
        let h = batch::validate(one)?;
        if h.record_count as i64 != h.last_offset_delta as i64 + 1 {
            return Err(batch_error(runnel_protocol::BatchError::InvalidHeader(
                "recordCount must be lastOffsetDelta + 1",
            )));
        }
        let ts = match log_append_time {
            Some(now) => {
                batch::set_log_append_time(one, now);
                now
            }
            None => h.max_timestamp,
        };
        records += h.record_count as u64;
        max_ts = max_ts.max(ts);
        at += len;
    }
    Ok((records, max_ts))
}

fn batch_error(e: runnel_protocol::BatchError) -> Error {
    Error::InvalidBatch(e)
}

/// The headers of the (validated) batches in `batches`.
fn headers(batches: &[u8]) -> impl Iterator<Item = BatchHeader> + '_ {
    batch::headers(batches)
}

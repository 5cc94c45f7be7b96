//! The topic registry and owner of every partition log in a data directory.
//!
//! Layout of a data directory:
//!
//! ```text
//! .lock                          flock held while a broker uses the directory
//! .clean-shutdown                present only after a clean shutdown
//! __cluster_metadata-0/          the metadata log (see `metadata`)
//! <topic>-<partition>/           one partition log (as Kafka names them)
//!     partition.metadata         "version: 0\ntopic_id: <uuid>\n", as Kafka's
//!     recovery-point             recovery checkpoint (see `recovery`)
//!     00000000000000000000.log   segments with .index and .timeindex
//! ```
//!
//! Crash safety of topic changes. Create: partition directories first (each with its
//! `partition.metadata`, synced), then the `topic` record, durably; a crash before the
//! record leaves directories that no live topic claims, and start-up deletes them. Delete:
//! the `remove_topic` record first, durably, then the directories (renamed to
//! `*.<id>-delete`, then removed); a crash anywhere after the record leaves directories no
//! live topic claims. A directory is claimed only by the live topic of the same name *and*
//! id, so a re-created topic never adopts an old incarnation's files. Grow (more
//! partitions): as create — the new directories, synced, then the `topic_partitions`
//! record; directories past the recorded count are unclaimed and removed at start.
//!
//! Concurrency: `topics` is a `RwLock` held only to look up or swap an `Arc<Topic>`;
//! create, alter and delete are serialised by `admin` and are blocking (they sync the
//! metadata log), so async callers run them on a blocking thread.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use tracing::{error, info, warn};

use super::config::{FlushPolicy, LogConfig};
use super::flusher::{Flusher, DEFAULT_FLUSH_THREADS};
use super::io;
use super::log::{now_ms, sync_dir, PartitionLog};
use super::metadata::{self, MetadataRecord, METADATA_DIR};
use crate::error::{Error, Result};

pub const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";
const LOCK_FILE: &str = ".lock";
const PARTITION_METADATA_FILE: &str = "partition.metadata";
/// Kafka's limit: a topic name must fit in a file name with a partition suffix.
pub const TOPIC_NAME_MAX_CHARS: usize = 249;

#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    /// Defaults for every topic config key; a topic's overrides apply on top.
    pub log_defaults: LogConfig,
    pub flush_threads: usize,
    /// How often retention runs (Kafka's `log.retention.check.interval.ms`).
    pub retention_check_interval_ms: u64,
    /// How often the maintenance thread wakes for `interval` flushes.
    pub maintenance_interval_ms: u64,
    pub max_partitions_per_topic: u32,
}

impl StorageConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> StorageConfig {
        StorageConfig {
            data_dir: data_dir.into(),
            log_defaults: LogConfig::default(),
            flush_threads: DEFAULT_FLUSH_THREADS,
            retention_check_interval_ms: 300_000,
            maintenance_interval_ms: 100,
            max_partitions_per_topic: 10_000,
        }
    }
}

/// The last start's recovery, for metrics.
#[derive(Debug, Clone, Copy)]
pub struct Recovery {
    pub seconds: f64,
    pub truncated_bytes: u64,
}

/// A topic to create (`LogManager::create_topics`).
#[derive(Debug, Clone, Copy)]
pub struct NewTopic<'a> {
    pub name: &'a str,
    /// The topic id to use (the cluster's, so that every broker's copy has the same);
    /// `None` makes a new one.
    pub id: Option<&'a str>,
    pub partitions: i64,
    pub overrides: &'a BTreeMap<String, String>,
}

/// A live topic. Replaced as a whole (new `Arc`) when its config changes.
#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub id: String,
    /// The configs set on this topic; `config` is the defaults with these applied.
    pub overrides: BTreeMap<String, String>,
    pub config: LogConfig,
    pub partitions: Vec<Arc<PartitionLog>>,
}

/// Where an injected crash stops a topic change (for crash-safety tests only).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CrashPoint {
    None = 0,
    CreateAfterDirs = 1,
    DeleteAfterRecord = 2,
    DeleteAfterRename = 3,
}

pub struct LogManager {
    cfg: StorageConfig,
    flusher: Arc<Flusher>,
    metadata: Arc<PartitionLog>,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Logs the broker keeps for itself (the offsets log), by directory name.
    internal: Mutex<BTreeMap<String, Arc<PartitionLog>>>,
    /// Whether the last stop was clean (internal logs opened later recover accordingly).
    opened_clean: bool,
    /// How long `open` took (recovery included).
    recovery_seconds: f64,
    /// Serialises topic changes; holds the names of topics being created (reserved, not
    /// yet visible). Never held across a sync by creations.
    admin: Mutex<std::collections::BTreeSet<String>>,
    maintenance: Mutex<Option<JoinHandle<()>>>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    closed: AtomicBool,
    crash_point: AtomicU8,
    _lock: Flock<File>,
}

impl LogManager {
    /// Opens the data directory: takes its lock, replays the metadata log, removes what
    /// no live topic claims, opens every partition (recovering them unless the last stop
    /// was clean), and starts background maintenance. Blocking.
    pub fn open(cfg: StorageConfig) -> Result<Arc<LogManager>> {
        let opening = std::time::Instant::now();
        let dir = cfg.data_dir.clone();
        io::create_dir_all(&dir).map_err(Error::io("create data dir", &dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = File::create(&lock_path).map_err(Error::io("create", &lock_path))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| Error::Io {
            op: "lock data dir (is another broker using it?)",
            path: lock_path.clone(),
            source: std::io::Error::from(errno),
        })?;

        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        if clean {
            // Gone before anything is written, so a crash from here on is seen as unclean.
            io::remove_file(&marker).map_err(Error::io("remove", &marker))?;
            sync_dir(&dir)?;
        } else if dir.join(METADATA_DIR).exists() {
            info!(data_dir = %dir.display(), "no clean-shutdown marker: recovering logs past their checkpoints");
        } else {
            info!(data_dir = %dir.display(), "new data directory");
        }

        let flusher = Flusher::start(cfg.flush_threads);
        let meta_cfg = LogConfig {
            flush_policy: FlushPolicy::Always,
            retention_ms: -1,
            retention_bytes: -1,
            segment_bytes: 64 << 20,
            segment_index_bytes: 1 << 20,
            ..LogConfig::default()
        };
        let metadata = PartitionLog::open(&dir.join(METADATA_DIR), meta_cfg, flusher.clone(), clean)?;
        let live = metadata::replay(&metadata)?;
        remove_unclaimed(&dir, &live)?;

        let mut topics = BTreeMap::new();
        for (name, meta) in live {
            let config = LogConfig::with_overrides(&cfg.log_defaults, &meta.configs)?;
            let mut partitions = Vec::with_capacity(meta.partitions as usize);
            for p in 0..meta.partitions {
                let pdir = dir.join(format!("{name}-{p}"));
                if !pdir.exists() {
                    warn!(dir = %pdir.display(), "partition directory missing; starting it empty");
                    create_partition_dir(&pdir, &meta.id)?;
                }
                partitions.push(PartitionLog::open(&pdir, config.clone(), flusher.clone(), clean)?);
            }
            let topic = Topic {
                name: name.clone(),
                id: meta.id,
                overrides: meta.configs,
                config,
                partitions,
            };
            topics.insert(name, Arc::new(topic));
        }
        info!(data_dir = %dir.display(), topics = topics.len(), clean, "storage opened");

        let manager = Arc::new(LogManager {
            cfg,
            flusher,
            metadata,
            topics: RwLock::new(topics),
            internal: Mutex::new(BTreeMap::new()),
            opened_clean: clean,
            recovery_seconds: opening.elapsed().as_secs_f64(),
            admin: Mutex::new(std::collections::BTreeSet::new()),
            maintenance: Mutex::new(None),
            stop: Arc::new((Mutex::new(false), Condvar::new())),
            closed: AtomicBool::new(false),
            crash_point: AtomicU8::new(0),
            _lock: lock,
        });
        let handle = spawn_maintenance(Arc::downgrade(&manager), manager.stop.clone(), &manager.cfg);
        *crate::sync::lock(&manager.maintenance) = Some(handle);
        Ok(manager)
    }

    pub fn config(&self) -> &StorageConfig {
        &self.cfg
    }

    /// fsync figures of every log (metrics).
    pub fn stats(&self) -> &super::flusher::StorageStats {
        &self.flusher.stats
    }

    /// What the last start took and cut.
    pub fn recovery(&self) -> Recovery {
        Recovery {
            seconds: self.recovery_seconds,
            truncated_bytes: self.flusher.stats.recovery_truncated_bytes.load(Ordering::Relaxed),
        }
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        crate::sync::read(&self.topics).get(name).cloned()
    }

    pub fn topics(&self) -> Vec<Arc<Topic>> {
        crate::sync::read(&self.topics).values().cloned().collect()
    }

    /// Opens (creating if needed) a log the broker keeps for itself in `<data_dir>/<name>`;
    /// `name` starts with `__`, which topic names cannot. The manager syncs it with the
    /// topics and closes it at shutdown. Opening the same name twice returns the same log.
    /// Blocking.
    pub fn internal_log(&self, name: &str, config: LogConfig) -> Result<Arc<PartitionLog>> {
        assert!(name.starts_with("__"), "internal log names start with __");
        self.check_open()?;
        let mut internal = crate::sync::lock(&self.internal);
        if let Some(log) = internal.get(name) {
            return Ok(log.clone());
        }
        let log = PartitionLog::open(
            &self.cfg.data_dir.join(name),
            config,
            self.flusher.clone(),
            self.opened_clean,
        )?;
        internal.insert(name.to_owned(), log.clone());
        Ok(log)
    }

    fn internal_logs(&self) -> Vec<Arc<PartitionLog>> {
        crate::sync::lock(&self.internal).values().cloned().collect()
    }

    pub fn partition(&self, topic: &str, partition: u32) -> Result<Arc<PartitionLog>> {
        let t = self.topic(topic).ok_or_else(|| Error::UnknownTopic(topic.to_owned()))?;
        t.partitions
            .get(partition as usize)
            .cloned()
            .ok_or(Error::UnknownPartition {
                topic: topic.to_owned(),
                partition,
            })
    }

    #[doc(hidden)]
    pub fn inject_crash(&self, at: CrashPoint) {
        self.crash_point.store(at as u8, Ordering::SeqCst);
    }

    fn crash_here(&self, at: CrashPoint) -> Result<()> {
        if self.crash_point.load(Ordering::SeqCst) == at as u8 {
            return Err(Error::Io {
                op: "injected crash",
                path: self.cfg.data_dir.clone(),
                source: std::io::Error::other(format!("{at:?}")),
            });
        }
        Ok(())
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        Ok(())
    }

    /// Creates a topic. Blocking.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i64,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Arc<Topic>> {
        let new = NewTopic {
            name,
            id: None,
            partitions,
            overrides,
        };
        self.create_topics(std::slice::from_ref(&new))
            .pop()
            .expect("one result per topic")
    }

    /// Creates topics, each succeeding or failing on its own; results in request order.
    /// Blocking.
    ///
    /// Cost: every topic's directories are made first; then their records go to the
    /// metadata log as one batch, synced once. The admin lock is held only to reserve the
    /// names and to publish the topics, never across a sync, so creations running at the
    /// same time (one request per topic from many clients) share the metadata log's
    /// syncs too, as producers share a partition's (group commit). A topic is visible
    /// only once its record is durable.
    pub fn create_topics(&self, new: &[NewTopic<'_>]) -> Vec<Result<Arc<Topic>>> {
        let mut results: Vec<Option<Result<Arc<Topic>>>> = new.iter().map(|_| None).collect();
        let mut prepared = Vec::with_capacity(new.len());
        for (i, t) in new.iter().enumerate() {
            match self.check_new_topic(t) {
                Ok(config) => prepared.push((i, config)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        // Reserve the names, so a concurrent create of the same name fails.
        {
            let mut creating = crate::sync::lock(&self.admin);
            let open = self.check_open();
            prepared.retain(|(i, _)| {
                let name = new[*i].name;
                let refused = match &open {
                    Err(_) => Error::ShuttingDown,
                    Ok(()) if self.topic(name).is_some() || creating.contains(name) => {
                        Error::TopicExists(name.to_owned())
                    }
                    Ok(()) => {
                        creating.insert(name.to_owned());
                        return true;
                    }
                };
                results[*i] = Some(Err(refused));
                false
            });
        }
        let mut made = Vec::with_capacity(prepared.len());
        let mut records = Vec::with_capacity(prepared.len());
        for (i, config) in prepared {
            let t = &new[i];
            let id = t.id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
            match self.new_partition_dirs(t.name, &id, 0..t.partitions as u32, &config) {
                Ok(logs) => {
                    records.push(MetadataRecord::Topic {
                        name: t.name.to_owned(),
                        id: id.clone(),
                        partitions: t.partitions as u32,
                        configs: t.overrides.clone(),
                    });
                    made.push((i, id, logs, config));
                }
                Err(e) => {
                    crate::sync::lock(&self.admin).remove(t.name);
                    results[i] = Some(Err(e));
                }
            }
        }
        let written = if made.is_empty() {
            Ok(())
        } else {
            sync_dir(&self.cfg.data_dir)
                .and_then(|()| self.crash_here(CrashPoint::CreateAfterDirs))
                .and_then(|()| metadata::append_all(&self.metadata, &records))
        };
        let mut creating = crate::sync::lock(&self.admin);
        for (i, id, logs, config) in made {
            let t = &new[i];
            creating.remove(t.name);
            results[i] = Some(match &written {
                Ok(()) => {
                    let topic = Arc::new(Topic {
                        name: t.name.to_owned(),
                        id,
                        overrides: t.overrides.clone(),
                        config,
                        partitions: logs,
                    });
                    crate::sync::write(&self.topics).insert(t.name.to_owned(), topic.clone());
                    info!(topic = t.name, partitions = t.partitions, "created topic");
                    Ok(topic)
                }
                Err(e) => {
                    self.remove_new_dirs(t.name, 0..t.partitions as u32);
                    Err(e.for_each_of_many())
                }
            });
        }
        results
            .into_iter()
            .map(|r| r.expect("every topic has a result"))
            .collect()
    }

    /// A new topic's name, partition count and configs checked, and that it does not
    /// exist yet; its effective config.
    pub fn check_new_topic(&self, t: &NewTopic<'_>) -> Result<LogConfig> {
        validate_topic_name(t.name)?;
        let max = self.cfg.max_partitions_per_topic;
        if t.partitions < 1 || t.partitions > max as i64 {
            return Err(Error::InvalidPartitions {
                count: t.partitions,
                max,
            });
        }
        let config = LogConfig::with_overrides(&self.cfg.log_defaults, t.overrides)?;
        if self.topic(t.name).is_some() {
            return Err(Error::TopicExists(t.name.to_owned()));
        }
        Ok(config)
    }

    /// Creates and opens the directories of partitions `range` (each synced); on failure
    /// removes them again.
    fn new_partition_dirs(
        &self,
        name: &str,
        id: &str,
        range: std::ops::Range<u32>,
        config: &LogConfig,
    ) -> Result<Vec<Arc<PartitionLog>>> {
        let created = (|| -> Result<Vec<Arc<PartitionLog>>> {
            let mut logs = Vec::with_capacity(range.len());
            for p in range.clone() {
                let d = self.cfg.data_dir.join(format!("{name}-{p}"));
                create_partition_dir(&d, id)?;
                logs.push(PartitionLog::open(&d, config.clone(), self.flusher.clone(), false)?);
            }
            Ok(logs)
        })();
        if created.is_err() {
            self.remove_new_dirs(name, range);
        }
        created
    }

    /// Undoes `new_partition_dirs` — unless a crash is injected, which must leave them as
    /// a real crash would.
    fn remove_new_dirs(&self, name: &str, range: std::ops::Range<u32>) {
        if self.crash_point.load(Ordering::SeqCst) == CrashPoint::None as u8 {
            for p in range {
                let _ = io::remove_dir_all(&self.cfg.data_dir.join(format!("{name}-{p}")));
            }
        }
    }

    /// Creates and opens the directories of partitions `range`, then appends `record`
    /// durably; on failure removes the directories again (unless a crash is injected).
    fn add_partitions(
        &self,
        name: &str,
        id: &str,
        range: std::ops::Range<u32>,
        config: &LogConfig,
        record: &MetadataRecord,
    ) -> Result<Vec<Arc<PartitionLog>>> {
        let logs = self.new_partition_dirs(name, id, range.clone(), config)?;
        let written = sync_dir(&self.cfg.data_dir)
            .and_then(|()| self.crash_here(CrashPoint::CreateAfterDirs))
            .and_then(|()| metadata::append(&self.metadata, record));
        match written {
            Ok(()) => Ok(logs),
            Err(e) => {
                self.remove_new_dirs(name, range);
                Err(e)
            }
        }
    }

    /// Replaces a topic's config overrides. Blocking.
    pub fn alter_topic_config(&self, name: &str, overrides: &BTreeMap<String, String>) -> Result<Arc<Topic>> {
        let config = LogConfig::with_overrides(&self.cfg.log_defaults, overrides)?;
        let _admin = crate::sync::lock(&self.admin);
        self.check_open()?;
        let old = self.topic(name).ok_or_else(|| Error::UnknownTopic(name.to_owned()))?;
        metadata::append(
            &self.metadata,
            &MetadataRecord::TopicConfig {
                name: name.to_owned(),
                id: old.id.clone(),
                configs: overrides.clone(),
            },
        )?;
        for p in &old.partitions {
            p.set_config(config.clone());
        }
        let topic = Arc::new(Topic {
            name: old.name.clone(),
            id: old.id.clone(),
            overrides: overrides.clone(),
            config,
            partitions: old.partitions.clone(),
        });
        crate::sync::write(&self.topics).insert(name.to_owned(), topic.clone());
        Ok(topic)
    }

    /// The topic `name`, if it may grow to `partitions` (more than now, within the limit):
    /// what `create_partitions` checks, for a dry run.
    pub fn check_partitions_increase(&self, name: &str, partitions: i64) -> Result<Arc<Topic>> {
        let topic = self.topic(name).ok_or_else(|| Error::UnknownTopic(name.to_owned()))?;
        let current = topic.partitions.len() as u32;
        let max = self.cfg.max_partitions_per_topic;
        if partitions <= current as i64 {
            return Err(Error::PartitionsCannotShrink {
                topic: name.to_owned(),
                current,
                requested: partitions,
            });
        }
        if partitions > max as i64 {
            return Err(Error::InvalidPartitions { count: partitions, max });
        }
        Ok(topic)
    }

    /// Grows a topic to `partitions` (Kafka's CreatePartitions; partitions are never
    /// removed, since keys would move). Blocking.
    pub fn create_partitions(&self, name: &str, partitions: i64) -> Result<Arc<Topic>> {
        let _admin = crate::sync::lock(&self.admin);
        self.check_open()?;
        let old = self.check_partitions_increase(name, partitions)?;
        let current = old.partitions.len() as u32;
        let record = MetadataRecord::TopicPartitions {
            name: name.to_owned(),
            id: old.id.clone(),
            partitions: partitions as u32,
        };
        let logs = self.add_partitions(name, &old.id, current..partitions as u32, &old.config, &record)?;
        let mut all = old.partitions.clone();
        all.extend(logs);
        let topic = Arc::new(Topic {
            name: old.name.clone(),
            id: old.id.clone(),
            overrides: old.overrides.clone(),
            config: old.config.clone(),
            partitions: all,
        });
        crate::sync::write(&self.topics).insert(name.to_owned(), topic.clone());
        info!(topic = name, from = current, to = partitions, "added partitions");
        Ok(topic)
    }

    /// Deletes a topic and its files. Blocking.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let _admin = crate::sync::lock(&self.admin);
        self.check_open()?;
        let topic = self.topic(name).ok_or_else(|| Error::UnknownTopic(name.to_owned()))?;
        metadata::append(
            &self.metadata,
            &MetadataRecord::RemoveTopic {
                name: name.to_owned(),
                id: topic.id.clone(),
            },
        )?;
        crate::sync::write(&self.topics).remove(name);
        self.crash_here(CrashPoint::DeleteAfterRecord)?;
        for (p, log) in topic.partitions.iter().enumerate() {
            log.shut_for_delete();
            let from = self.cfg.data_dir.join(format!("{name}-{p}"));
            let to = self.cfg.data_dir.join(format!("{name}-{p}.{}-delete", topic.id));
            io::rename(&from, &to).map_err(Error::io("rename for delete", &from))?;
        }
        sync_dir(&self.cfg.data_dir)?;
        self.crash_here(CrashPoint::DeleteAfterRename)?;
        for p in 0..topic.partitions.len() {
            let d = self.cfg.data_dir.join(format!("{name}-{p}.{}-delete", topic.id));
            io::remove_dir_all(&d).map_err(Error::io("remove", &d))?;
        }
        sync_dir(&self.cfg.data_dir)?;
        info!(topic = name, "deleted topic");
        Ok(())
    }

    /// One maintenance round: interval flushes always, retention when `retention` is set.
    pub fn run_maintenance(&self, now_ms: i64, retention: bool) {
        for topic in self.topics() {
            for log in &topic.partitions {
                log.maybe_sync_interval(now_ms);
                if retention {
                    if let Err(e) = log.apply_retention(now_ms) {
                        error!(log = %log.dir().display(), error = %e, "retention failed");
                    }
                }
            }
        }
        for log in self.internal_logs() {
            log.maybe_sync_interval(now_ms);
        }
    }

    /// Clean shutdown: stops maintenance, closes every log (sync, trim, checkpoint), then
    /// writes the clean-shutdown marker so the next start skips recovery. Blocking.
    pub fn shutdown(&self) -> Result<()> {
        let _admin = crate::sync::lock(&self.admin);
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.stop_maintenance();
        let mut result = Ok(());
        for topic in self.topics() {
            for log in &topic.partitions {
                if let Err(e) = log.close() {
                    error!(log = %log.dir().display(), error = %e, "close failed");
                    result = Err(e);
                }
            }
        }
        for log in self.internal_logs() {
            if let Err(e) = log.close() {
                error!(log = %log.dir().display(), error = %e, "close failed");
                result = Err(e);
            }
        }
        if let Err(e) = self.metadata.close() {
            result = Err(e);
        }
        self.flusher.shutdown();
        result?;
        let marker = self.cfg.data_dir.join(CLEAN_SHUTDOWN_FILE);
        io::create(&marker)
            .and_then(|f| io::sync_data(&f, &marker))
            .map_err(Error::io("write clean-shutdown marker", &marker))?;
        sync_dir(&self.cfg.data_dir)?;
        info!(data_dir = %self.cfg.data_dir.display(), "clean shutdown");
        Ok(())
    }

    fn stop_maintenance(&self) {
        let (m, cv) = &*self.stop;
        *crate::sync::lock(m) = true;
        cv.notify_all();
        if let Some(h) = crate::sync::lock(&self.maintenance).take() {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }
}

impl Drop for LogManager {
    fn drop(&mut self) {
        // Not a clean shutdown unless `shutdown` ran: no marker is written here.
        self.stop_maintenance();
    }
}

fn spawn_maintenance(
    manager: Weak<LogManager>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    cfg: &StorageConfig,
) -> JoinHandle<()> {
    let tick = Duration::from_millis(cfg.maintenance_interval_ms.max(1));
    let retention_every_ms = cfg.retention_check_interval_ms as i64;
    std::thread::Builder::new()
        .name("runnel-maintenance".into())
        .spawn(move || {
            let mut last_retention = now_ms();
            loop {
                {
                    let (m, cv) = &*stop;
                    let guard = crate::sync::lock(m);
                    let (guard, _) = cv.wait_timeout(guard, tick).unwrap_or_else(|p| p.into_inner());
                    if *guard {
                        return;
                    }
                }
                let Some(manager) = manager.upgrade() else { return };
                let now = now_ms();
                let retention = now - last_retention >= retention_every_ms;
                if retention {
                    last_retention = now;
                }
                manager.run_maintenance(now, retention);
            }
        })
        .expect("spawn maintenance thread")
}

/// Kafka's rules: 1 to 249 characters of `[A-Za-z0-9._-]`, not `.` or `..`. Names starting
/// with `__` are reserved for internal topics.
pub fn validate_topic_name(name: &str) -> Result<()> {
    check_legal_topic_name(name)?;
    if name.starts_with("__") {
        return Err(Error::InvalidTopicName {
            name: name.to_owned(),
            reason: "names starting with '__' are reserved for internal topics",
        });
    }
    Ok(())
}

/// Kafka's rules for any topic name, internal ones included (a Metadata request for
/// an illegal name gets INVALID_TOPIC_EXCEPTION, not UNKNOWN_TOPIC_OR_PARTITION).
pub fn check_legal_topic_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidTopicName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("must not be empty");
    }
    if name.len() > TOPIC_NAME_MAX_CHARS {
        return bad("must be at most 249 characters");
    }
    if name == "." || name == ".." {
        return bad("must not be '.' or '..'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("may contain only ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

fn create_partition_dir(dir: &Path, topic_id: &str) -> Result<()> {
    if dir.exists() {
        io::remove_dir_all(dir).map_err(Error::io("remove stale", dir))?;
    }
    io::create_dir_all(dir).map_err(Error::io("create", dir))?;
    let path = dir.join(PARTITION_METADATA_FILE);
    (|| -> std::io::Result<()> {
        let f = io::create(&path)?;
        io::write_at(&f, &path, format!("version: 0\ntopic_id: {topic_id}\n").as_bytes(), 0)?;
        io::sync_data(&f, &path)
    })()
    .map_err(Error::io("write", &path))?;
    sync_dir(dir)
}

fn read_topic_id(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(PARTITION_METADATA_FILE)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("topic_id:"))
        .map(|s| s.trim().to_owned())
}

/// Removes partition directories that no live topic claims (by name, partition number and
/// id): leftovers of a crashed create or delete.
fn remove_unclaimed(data_dir: &Path, live: &BTreeMap<String, metadata::TopicMeta>) -> Result<()> {
    for entry in std::fs::read_dir(data_dir).map_err(Error::io("list", data_dir))? {
        let entry = entry.map_err(Error::io("list", data_dir))?;
        if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == METADATA_DIR || name.starts_with("__") {
            // The metadata log and internal logs (`internal_log`) are not topics.
            continue;
        }
        let path = entry.path();
        let claimed = name.rsplit_once('-').and_then(|(topic, p)| {
            let p: u32 = p.parse().ok()?;
            let meta = live.get(topic)?;
            (p < meta.partitions && read_topic_id(&path).as_deref() == Some(meta.id.as_str())).then_some(())
        });
        let looks_ours =
            name.ends_with("-delete") || name.rsplit_once('-').is_some_and(|(_, p)| p.parse::<u32>().is_ok());
        if claimed.is_none() {
            if looks_ours {
                warn!(dir = %path.display(), "removing partition directory that no live topic claims");
                io::remove_dir_all(&path).map_err(Error::io("remove", &path))?;
            } else {
                warn!(dir = %path.display(), "ignoring unknown directory in the data directory");
            }
        }
    }
    sync_dir(data_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        for ok in ["a", "orders.v1", "A_b-c", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "ü", "a/b", "__internal", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }
}

//! Where the metadata quorum keeps its Raft state, in `<data dir>/__cluster_raft/`:
//!
//! ```text
//! vote.json       the current term and vote (written whole, synced, renamed, dir synced)
//! log             the Raft log: records of [u32 length][u32 crc32c][json entry]
//! purged.json     the last log id removed from the head of the log
//! snapshot.json   the image as of a log id, with the membership (written as vote.json)
//! committed.json  the last committed log id (a hint: a restart applies up to it at once)
//! ```
//!
//! An entry counts once `append` has synced it (openraft is told only then). The log is
//! kept in memory too (metadata is small); truncating or purging rewrites the file
//! (a new file, synced, renamed over the old, directory synced), so no step leaves a log
//! that is not a prefix of what was written. A torn last record (crash mid-append) is cut
//! at start: it was never reported as written.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Cursor, Read};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership, Vote,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::image::{Image, MetaReply};
use super::local::LocalReplicas;
use super::TypeConfig;
use crate::storage::io;

pub const RAFT_DIR: &str = "__cluster_raft";

type Nid = u64;
type SErr = StorageError<Nid>;

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Writes `value` as JSON to `dir/name` so that a crash leaves the old or the new file
/// whole: a temporary file, synced, renamed over, the directory synced.
pub(crate) fn write_atomic(dir: &Path, name: &str, value: &impl Serialize, sync: bool) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let bytes = serde_json::to_vec(value).map_err(io_err)?;
    let f = io::create(&tmp)?;
    io::write_at(&f, &tmp, &bytes, 0)?;
    if sync {
        io::sync_data(&f, &tmp)?;
    }
    io::rename(&tmp, &dir.join(name))?;
    if sync {
        io::sync_dir(dir)?;
    }
    Ok(())
}

/// The last committed log id, a hint written without a sync (a restart applies up to it
/// at once; without it openraft learns the commit from the leader): a power cut may
/// leave it torn or empty, which counts as no hint.
fn read_committed_hint(dir: &Path) -> Option<LogId<Nid>> {
    let path = dir.join("committed.json");
    match read_json(&path) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring an unreadable committed-index hint (written unsynced; a power cut tears it)");
            None
        }
    }
}

pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io_err(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn encode_record(out: &mut Vec<u8>, entry: &Entry<TypeConfig>) -> std::io::Result<()> {
    let json = serde_json::to_vec(entry).map_err(io_err)?;
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&runnel_protocol::crc::crc32c(&json).to_be_bytes());
    out.extend_from_slice(&json);
    Ok(())
}

/// The entries of a log file, and the length of its whole records (a torn or corrupt
/// tail starts there).
pub(crate) fn decode_records(bytes: &[u8]) -> (Vec<Entry<TypeConfig>>, usize) {
    let mut entries = Vec::new();
    let mut pos = 0;
    while bytes.len() - pos >= 8 {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_be_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes"));
        let Some(json) = bytes.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if runnel_protocol::crc::crc32c(json) != crc {
            break;
        }
        match serde_json::from_slice(json) {
            Ok(e) => entries.push(e),
            Err(_) => break,
        }
        pos += 8 + len;
    }
    (entries, pos)
}

/// The log's file side: touched only on blocking threads, one storage call at a time
/// (openraft makes them in order from its one core task).
struct LogFile {
    dir: PathBuf,
    file: File,
    /// The file's length: where the next records go.
    len: u64,
}

/// The log's memory side: read by replication tasks on the runtime, so held only to
/// copy in or out, never across file I/O.
struct LogMemory {
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    purged: Option<LogId<Nid>>,
    vote: Option<Vote<Nid>>,
    committed: Option<LogId<Nid>>,
}

impl LogFile {
    /// Rewrites the log file to hold exactly `entries`.
    fn rewrite(&mut self, entries: &[Entry<TypeConfig>]) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for e in entries {
            encode_record(&mut buf, e)?;
        }
        let tmp = self.dir.join("log.tmp");
        let path = self.dir.join("log");
        let f = io::create(&tmp)?;
        io::write_at(&f, &tmp, &buf, 0)?;
        io::sync_data(&f, &tmp)?;
        io::rename(&tmp, &path)?;
        io::sync_dir(&self.dir)?;
        self.file = io::open(OpenOptions::new().read(true).write(true), &path)?;
        self.len = buf.len() as u64;
        Ok(())
    }

    /// Appends `buf` and syncs it.
    fn append(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let path = self.dir.join("log");
        io::write_at(&self.file, &path, buf, self.len)?;
        self.len += buf.len() as u64;
        io::sync_data(&self.file, &path)
    }
}

/// The Raft log and vote (openraft's `RaftLogStorage`). Clones share one log.
#[derive(Clone)]
pub struct LogStore {
    file: Arc<Mutex<LogFile>>,
    memory: Arc<Mutex<LogMemory>>,
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, cutting a torn tail. Blocking.
    pub fn open(dir: &Path) -> std::io::Result<LogStore> {
        io::create_dir_durable(dir)?;
        let path = dir.join("log");
        let mut bytes = Vec::new();
        if let Ok(mut f) = File::open(&path) {
            f.read_to_end(&mut bytes)?;
        }
        let (list, whole) = decode_records(&bytes);
        let existed = path.exists();
        let file = io::open(OpenOptions::new().read(true).write(true).create(true), &path)?;
        if !existed {
            io::sync_dir(dir)?;
        }
        if whole < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                cut = bytes.len() - whole,
                "cutting a torn or corrupt tail off the metadata Raft log"
            );
            io::set_len(&file, &path, whole as u64)?;
            io::sync_data(&file, &path)?;
        }
        let purged: Option<LogId<Nid>> = read_json(&dir.join("purged.json"))?;
        // Entries at or before the purge point (a crash between recording the purge and
        // rewriting the file) are applied already: dropped.
        let entries = list
            .into_iter()
            .filter(|e| purged.is_none_or(|p| e.log_id.index > p.index))
            .map(|e| (e.log_id.index, e))
            .collect();
        Ok(LogStore {
            file: Arc::new(Mutex::new(LogFile {
                dir: dir.to_owned(),
                file,
                len: whole as u64,
            })),
            memory: Arc::new(Mutex::new(LogMemory {
                entries,
                purged,
                vote: read_json(&dir.join("vote.json"))?,
                committed: read_committed_hint(dir),
            })),
        })
    }

    /// Runs file work on a blocking thread; it may update memory (briefly) when done.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut LogFile, &Mutex<LogMemory>) -> std::io::Result<T> + Send + 'static,
        err: fn(std::io::Error) -> SErr,
    ) -> Result<T, SErr> {
        let (file, memory) = (self.file.clone(), self.memory.clone());
        tokio::task::spawn_blocking(move || f(&mut crate::sync::lock(&file), &memory))
            .await
            .map_err(|e| err(io_err(e)))?
            .map_err(err)
    }
}

fn logs_write_err(e: std::io::Error) -> SErr {
    StorageIOError::write_logs(&e).into()
}

fn vote_write_err(e: std::io::Error) -> SErr {
    StorageIOError::write_vote(&e).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        let memory = crate::sync::lock(&self.memory);
        Ok(memory.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SErr> {
        let memory = crate::sync::lock(&self.memory);
        let last = memory.entries.values().next_back().map(|e| e.log_id).or(memory.purged);
        Ok(LogState {
            last_purged_log_id: memory.purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<Nid>) -> Result<(), SErr> {
        let vote = *vote;
        self.blocking(
            move |file, memory| {
                write_atomic(&file.dir, "vote.json", &vote, true)?;
                crate::sync::lock(memory).vote = Some(vote);
                Ok(())
            },
            vote_write_err,
        )
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<Nid>>, SErr> {
        Ok(crate::sync::lock(&self.memory).vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<Nid>>) -> Result<(), SErr> {
        // A hint only (openraft does not need it durable): written, not synced.
        self.blocking(
            move |file, memory| {
                write_atomic(&file.dir, "committed.json", &committed, false)?;
                crate::sync::lock(memory).committed = committed;
                Ok(())
            },
            logs_write_err,
        )
        .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<Nid>>, SErr> {
        Ok(crate::sync::lock(&self.memory).committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let result = self
            .blocking(
                move |file, memory| {
                    let mut buf = Vec::new();
                    for e in &entries {
                        encode_record(&mut buf, e)?;
                    }
                    file.append(&buf)?;
                    let mut memory = crate::sync::lock(memory);
                    for e in entries {
                        memory.entries.insert(e.log_id.index, e);
                    }
                    Ok(())
                },
                logs_write_err,
            )
            .await;
        match &result {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(io_err(e))),
        }
        result
    }

    async fn truncate(&mut self, log_id: LogId<Nid>) -> Result<(), SErr> {
        self.blocking(
            move |file, memory| {
                let kept: Vec<Entry<TypeConfig>> = {
                    let mut memory = crate::sync::lock(memory);
                    memory.entries.split_off(&log_id.index);
                    memory.entries.values().cloned().collect()
                };
                file.rewrite(&kept)
            },
            logs_write_err,
        )
        .await
    }

    async fn purge(&mut self, log_id: LogId<Nid>) -> Result<(), SErr> {
        self.blocking(
            move |file, memory| {
                // Record the purge first: a crash between the two leaves entries the
                // purge point says are gone, which start-up ignores (they are applied).
                write_atomic(&file.dir, "purged.json", &Some(log_id), true)?;
                let kept: Vec<Entry<TypeConfig>> = {
                    let mut memory = crate::sync::lock(memory);
                    memory.purged = Some(log_id);
                    memory.entries = memory.entries.split_off(&(log_id.index + 1));
                    memory.entries.values().cloned().collect()
                };
                file.rewrite(&kept)
            },
            logs_write_err,
        )
        .await
    }
}

/// The last log id applied and the membership as of it.
type Applied = (Option<LogId<Nid>>, StoredMembership<Nid, openraft::BasicNode>);

/// A snapshot as stored and sent: the image and the membership as of `last_log_id`.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<Nid, openraft::BasicNode>,
    image: Image,
}

/// The state machine: the metadata image every broker applies committed entries to, and
/// the local side effects (partition directories for the replicas this broker holds).
#[derive(Clone)]
pub struct StateMachine {
    dir: PathBuf,
    pub image: Arc<ArcSwap<Image>>,
    /// Woken after every change of `image` (the replication layer follows it).
    pub changed: Arc<tokio::sync::Notify>,
    last_applied: Arc<Mutex<Applied>>,
    snapshot: Arc<Mutex<Option<StoredSnapshot>>>,
    local: LocalReplicas,
}

impl StateMachine {
    /// Starts from the stored snapshot, if any; the log after it is applied again by
    /// openraft. Blocking.
    pub fn open(dir: &Path, local: LocalReplicas) -> std::io::Result<StateMachine> {
        let stored: Option<StoredSnapshot> = read_json(&dir.join("snapshot.json"))?;
        let (image, applied) = match &stored {
            Some(s) => (s.image.clone(), (s.meta.last_log_id, s.meta.last_membership.clone())),
            None => (Image::default(), (None, StoredMembership::default())),
        };
        Ok(StateMachine {
            dir: dir.to_owned(),
            image: Arc::new(ArcSwap::from_pointee(image)),
            changed: Arc::new(tokio::sync::Notify::new()),
            last_applied: Arc::new(Mutex::new(applied)),
            snapshot: Arc::new(Mutex::new(stored)),
            local,
        })
    }

    fn current(&self) -> StoredSnapshot {
        let (last, membership) = crate::sync::lock(&self.last_applied).clone();
        let image = (**self.image.load()).clone();
        let id = last.map_or_else(|| "0-0".to_string(), |l| format!("{}-{}", l.leader_id.term, l.index));
        StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: last,
                last_membership: membership,
                snapshot_id: id,
            },
            image,
        }
    }

    // openraft's own error type, as its traits return it.
    #[allow(clippy::result_large_err)]
    fn to_snapshot(s: &StoredSnapshot) -> Result<Snapshot<TypeConfig>, SErr> {
        let bytes = serde_json::to_vec(s).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SErr> {
        let s = self.current();
        let dir = self.dir.clone();
        let stored = tokio::task::spawn_blocking(move || write_atomic(&dir, "snapshot.json", &s, true).map(|()| s))
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, &io_err(e)))?
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let snap = Self::to_snapshot(&stored)?;
        *crate::sync::lock(&self.snapshot) = Some(stored);
        Ok(snap)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<Nid>>, StoredMembership<Nid, openraft::BasicNode>), SErr> {
        Ok(crate::sync::lock(&self.last_applied).clone())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<MetaReply>, SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut replies = Vec::new();
        // The only writer of the image: one copy per batch of records, changed in place,
        // swapped in once the batch is applied (a client write returns after that).
        let mut next: Option<Image> = None;
        for entry in entries {
            let index = entry.log_id.index;
            let reply = match entry.payload {
                EntryPayload::Blank => MetaReply { index, error: None },
                EntryPayload::Normal(cmd) => {
                    let image = next.get_or_insert_with(|| (**self.image.load()).clone());
                    let reply = image.apply(index, &cmd);
                    if reply.error.is_none() {
                        self.local.apply(&cmd, image).await;
                    }
                    reply
                }
                EntryPayload::Membership(m) => {
                    crate::sync::lock(&self.last_applied).1 = StoredMembership::new(Some(entry.log_id), m);
                    MetaReply { index, error: None }
                }
            };
            crate::sync::lock(&self.last_applied).0 = Some(entry.log_id);
            replies.push(reply);
        }
        if let Some(image) = next {
            self.image.store(Arc::new(image));
            self.changed.notify_waiters();
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SErr> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<Nid, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SErr> {
        let stored: StoredSnapshot = serde_json::from_slice(snapshot.get_ref())
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let dir = self.dir.clone();
        let stored =
            tokio::task::spawn_blocking(move || write_atomic(&dir, "snapshot.json", &stored, true).map(|()| stored))
                .await
                .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &io_err(e)))?
                .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.image.store(Arc::new(stored.image.clone()));
        self.changed.notify_waiters();
        *crate::sync::lock(&self.last_applied) = (meta.last_log_id, meta.last_membership.clone());
        self.local.reconcile_all(&stored.image).await;
        *crate::sync::lock(&self.snapshot) = Some(stored);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SErr> {
        match &*crate::sync::lock(&self.snapshot) {
            Some(s) => Ok(Some(Self::to_snapshot(s)?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_tail_is_cut_and_whole_records_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut buf = Vec::new();
        for i in 1..=3 {
            let e = Entry::<TypeConfig> {
                log_id: LogId::new(openraft::CommittedLeaderId::new(1, 0), i),
                payload: EntryPayload::Blank,
            };
            encode_record(&mut buf, &e).unwrap();
        }
        let whole = buf.len();
        buf.extend_from_slice(&[0, 0, 0, 50, 1, 2]);
        std::fs::write(dir.path().join("log"), &buf).unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(crate::sync::lock(&store.memory).entries.len(), 3);
        assert_eq!(std::fs::metadata(dir.path().join("log")).unwrap().len(), whole as u64);
        // A flipped byte in the middle record: it and what follows are cut.
        let mut bad = std::fs::read(dir.path().join("log")).unwrap();
        bad[whole / 2] ^= 0xff;
        std::fs::write(dir.path().join("log"), &bad).unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        assert!(crate::sync::lock(&store.memory).entries.len() < 3);
    }
}

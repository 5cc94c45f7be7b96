//! [`Consumer`]: reads assigned partitions as a stream of records.
//!
//! A background fetch task keeps fetching ahead of the application: it long-polls the
//! broker for every assigned partition from its own copy of the positions, decodes the
//! batches, and queues the records (at most `prefetch` responses ahead). The
//! application's side pops records and advances [`Consumer::position`]. Assigning or
//! seeking stops the fetch task and drops what it fetched; the next poll starts a new one
//! from the new positions.
//!
//! In a group ([`Consumer::subscribe`]) the partitions come from the coordinator (see
//! [`crate::group`]); `next` applies assignment changes between records: for revoked
//! partitions it calls `on_revoked`, commits their positions (`commit_on_revoke`) and
//! stops fetching them before the coordinator may hand them on; for new ones it reads
//! the committed offsets and calls `on_assigned`. A position is the offset after the last
//! record `next` returned, so what is committed is what the application was given.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use runnel_protocol::batch::{check_batch, BatchHeader};
use runnel_protocol::messages::{FetchPartition, FetchRequest, FetchTopic};
use runnel_protocol::{ErrorCode, Header, RecordBatch};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::admin::list_offset;
use crate::client::{Client, ClientConfig};
use crate::error::{Error, Result};
use crate::group::{
    self, spawn_heartbeats, GroupConfig, MemberState, Membership, RebalanceCallback, Subscription, TopicPartition,
};
use crate::PartitionKey;

/// Where to start reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// The log start offset (oldest record retained).
    Earliest,
    /// The log end offset: only records produced from now on.
    Latest,
    /// This offset.
    At(i64),
    /// The first record with a timestamp at or after this one (ms since the epoch); the
    /// end of the log if there is none.
    Timestamp(i64),
    /// This many records before the end (kcat's `-o -N`), or the log start if it holds
    /// fewer.
    FromEnd(u64),
}

/// What to do when a position is unset or out of the log's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// The log start offset.
    Earliest,
    /// The log end offset.
    Latest,
    /// Fail with OFFSET_OUT_OF_RANGE.
    None,
}

/// How a [`Consumer`] fetches; every field has Kafka's meaning where Kafka has one.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Long-poll wait when no records are available. Default 500 ms; Kafka's
    /// `fetch.max.wait.ms`.
    pub fetch_max_wait: Duration,
    /// A fetch waits (up to `fetch_max_wait`) until this many record bytes are there.
    /// Default 1; Kafka's `fetch.min.bytes`.
    pub fetch_min_bytes: u32,
    /// Record bytes per fetch response, all partitions together (soft limit: a larger
    /// first batch still comes). Default 50 MiB; Kafka's `fetch.max.bytes`.
    pub fetch_max_bytes: u32,
    /// Record bytes per partition per fetch (soft: a larger first batch still comes).
    /// Default 1 MiB; Kafka's `max.partition.fetch.bytes`.
    pub max_partition_fetch_bytes: u32,
    /// Where to start when a position is unset or out of range. Default `Latest`, as
    /// Kafka's `auto.offset.reset`.
    pub auto_offset_reset: OffsetReset,
    /// Fetch responses decoded and queued ahead of the application. Default 2 (Kafka's
    /// Java client keeps one fetch ahead).
    pub prefetch: usize,
    /// Wait before retrying a failed fetch. Default 100 ms; Kafka's `retry.backoff.ms`.
    pub retry_backoff: Duration,
    /// Connection settings.
    pub client: ClientConfig,
    /// Membership settings, used by [`Consumer::subscribe`].
    pub group: GroupConfig,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            fetch_max_wait: Duration::from_millis(500),
            fetch_min_bytes: 1,
            fetch_max_bytes: 50 * 1024 * 1024,
            max_partition_fetch_bytes: 1024 * 1024,
            auto_offset_reset: OffsetReset::Latest,
            prefetch: 2,
            retry_backoff: Duration::from_millis(100),
            client: ClientConfig::default(),
            group: GroupConfig::default(),
        }
    }
}

/// One consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The topic it was read from (shared by every record of the topic).
    pub topic: Arc<str>,
    /// Its partition.
    pub partition: u32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Milliseconds since the epoch: create time, or the broker's append time for a
    /// topic with `message.timestamp.type=LogAppendTime`.
    pub timestamp: i64,
    /// The key; `None` for a null key.
    pub key: Option<Bytes>,
    /// The value; `None` for a null value (a tombstone).
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
}

/// What one fetch brought: whole batches, framed and in offset order per partition, not
/// yet checked or decoded. The fetcher only reads batch headers (to know where the next
/// fetch starts) and sends its next request at once; the CRC check and record decoding
/// happen in [`Consumer::next`], batch by batch, while that request is being served.
struct Chunk {
    batches: Vec<FetchedBatch>,
    high_watermarks: Vec<(PartitionKey, i64)>,
}

struct FetchedBatch {
    tp: PartitionKey,
    /// The first offset wanted from this batch (a fetch may start inside a batch).
    from: i64,
    bytes: Bytes,
}

struct Fetcher {
    task: JoinHandle<()>,
    rx: mpsc::Receiver<Result<Chunk>>,
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A subscribed consumer's side of its group membership.
struct GroupHandle {
    membership: Arc<Membership>,
    heartbeats: JoinHandle<()>,
    changes: watch::Receiver<u64>,
    /// The partitions this consumer holds (the keys of `positions`).
    owned: BTreeSet<TopicPartition>,
    /// Positions this consumer last committed successfully.
    committed: BTreeMap<TopicPartition, i64>,
    last_auto_commit: Instant,
    /// A change is being applied (set until it is fully applied).
    unsynced: bool,
    on_assigned: Option<RebalanceCallback>,
    on_revoked: Option<RebalanceCallback>,
}

impl Drop for GroupHandle {
    fn drop(&mut self) {
        // Without `close`, no leave is sent: the session times out, as for a crash.
        self.heartbeats.abort();
    }
}

/// Reads records: from partitions it is assigned ([`Consumer::assign`]) or as a member
/// of a consumer group ([`Consumer::subscribe`]). Records come from [`Consumer::next`] or
/// [`Consumer::stream`], fetched ahead on a connection of its own.
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    /// Next offset to hand to the application; `None` until resolved by the reset policy.
    positions: BTreeMap<PartitionKey, Option<i64>>,
    high_watermarks: BTreeMap<PartitionKey, i64>,
    fetcher: Option<Fetcher>,
    /// Decoded records not yet handed out.
    buffered: VecDeque<ConsumerRecord>,
    /// Fetched batches not yet decoded.
    batches: VecDeque<FetchedBatch>,
    /// After a batch failed its check, the next fetcher starts no sooner than this.
    retry_at: Option<Instant>,
    group: Option<GroupHandle>,
}

fn key(tp: &TopicPartition) -> PartitionKey {
    (Arc::from(tp.0.as_str()), tp.1)
}

/// Positions of `partitions` that differ from what was last committed.
fn pending(
    positions: &BTreeMap<PartitionKey, Option<i64>>,
    partitions: impl IntoIterator<Item = TopicPartition>,
    committed: &BTreeMap<TopicPartition, i64>,
) -> BTreeMap<TopicPartition, (i64, String)> {
    partitions
        .into_iter()
        .filter_map(|tp| {
            let pos = (*positions.get(&key(&tp))?)?;
            (committed.get(&tp) != Some(&pos)).then(|| (tp, (pos, String::new())))
        })
        .collect()
}

impl Consumer {
    /// Connects to the broker at `addr` (`host:port`; a host alone means port 7117). The
    /// consumer reads nothing until it is assigned partitions or subscribes.
    pub async fn connect(addr: impl Into<String>, config: ConsumerConfig) -> Result<Consumer> {
        Ok(Consumer {
            client: Client::connect(addr, config.client.clone()).await?,
            config,
            positions: BTreeMap::new(),
            high_watermarks: BTreeMap::new(),
            fetcher: None,
            buffered: VecDeque::new(),
            batches: VecDeque::new(),
            retry_at: None,
            group: None,
        })
    }

    /// Joins consumer group `group` reading `topics`: the coordinator shares their
    /// partitions among the group's members. Each partition starts at the group's
    /// committed offset, else at `group.start_without_commit`, else per
    /// `auto_offset_reset`. Fails if the coordinator refuses the member.
    pub async fn subscribe(&mut self, group: &str, topics: impl IntoIterator<Item = impl Into<String>>) -> Result<()> {
        let topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        if topics.is_empty() {
            return Err(Error::InvalidArgument("subscribe to at least one topic".into()));
        }
        self.join(group, Subscription::Topics(topics)).await
    }

    /// Like [`subscribe`](Consumer::subscribe), for every topic whose whole name matches
    /// `pattern` (a regular expression), including topics created later.
    pub async fn subscribe_regex(&mut self, group: &str, pattern: &str) -> Result<()> {
        self.join(group, Subscription::Regex(pattern.to_owned())).await
    }

    async fn join(&mut self, group: &str, subscription: Subscription) -> Result<()> {
        if self.group.is_some() {
            return Err(Error::InvalidArgument(
                "this consumer is already in a group; close it and create another".into(),
            ));
        }
        self.positions.clear();
        self.restart();
        let coordinator = Client::connect(self.client.addr().to_owned(), self.config.client.clone()).await?;
        let heartbeats = Client::connect(self.client.addr().to_owned(), self.config.client.clone()).await?;
        let (changed, changes) = watch::channel(0);
        let membership = Arc::new(Membership {
            group_id: group.to_owned(),
            config: self.config.group.clone(),
            subscription,
            coordinator,
            heartbeats,
            state: Mutex::new(MemberState::default()),
            changed,
            wake: Notify::new(),
            commit_lock: tokio::sync::Mutex::new(()),
            retry_backoff: self.config.retry_backoff,
        });
        let first = membership.heartbeat().await?;
        let heartbeats = spawn_heartbeats(membership.clone(), first);
        self.group = Some(GroupHandle {
            membership,
            heartbeats,
            changes,
            owned: BTreeSet::new(),
            committed: BTreeMap::new(),
            last_auto_commit: Instant::now(),
            unsynced: true,
            on_assigned: None,
            on_revoked: None,
        });
        Ok(())
    }

    /// Called (inside `next`) with the partitions this member receives, after their
    /// positions are set.
    pub fn on_assigned(&mut self, f: impl Fn(&[TopicPartition]) + Send + Sync + 'static) {
        if let Some(g) = self.group.as_mut() {
            g.on_assigned = Some(Arc::new(f));
        }
    }

    /// Called (inside `next`) with the partitions this member gives up, before their
    /// positions are committed and before anyone else may get them. Also called when the
    /// membership is lost (session expired); then nothing can be committed.
    pub fn on_revoked(&mut self, f: impl Fn(&[TopicPartition]) + Send + Sync + 'static) {
        if let Some(g) = self.group.as_mut() {
            g.on_revoked = Some(Arc::new(f));
        }
    }

    /// This member's id in its group (empty before the coordinator gave one).
    pub fn member_id(&self) -> Option<String> {
        self.group
            .as_ref()
            .map(|g| group::lock(&g.membership.state).member_id.clone())
    }

    /// The member's epoch in its group (`None` outside a group).
    pub fn member_epoch(&self) -> Option<i32> {
        self.group.as_ref().map(|g| group::lock(&g.membership.state).epoch)
    }

    /// Commits the positions of every partition this member holds, and waits.
    pub async fn commit(&mut self) -> Result<()> {
        let g = self.group.as_mut().ok_or_else(not_subscribed)?;
        let offsets = pending(&self.positions, g.owned.iter().cloned(), &g.committed);
        g.membership.commit(&offsets).await?;
        for (tp, (o, _)) in offsets {
            g.committed.insert(tp, o);
        }
        Ok(())
    }

    /// Starts committing the positions of every partition this member holds; the
    /// handle resolves to the result. Commits stay in order with later ones.
    pub fn commit_async(&mut self) -> Result<JoinHandle<Result<()>>> {
        let g = self.group.as_mut().ok_or_else(not_subscribed)?;
        let offsets = pending(&self.positions, g.owned.iter().cloned(), &g.committed);
        let m = g.membership.clone();
        Ok(tokio::spawn(async move { m.commit(&offsets).await }))
    }

    /// Commits the given (topic, partition) → (next offset to read, metadata).
    pub async fn commit_offsets(&mut self, offsets: BTreeMap<TopicPartition, (i64, String)>) -> Result<()> {
        let g = self.group.as_mut().ok_or_else(not_subscribed)?;
        g.membership.commit(&offsets).await?;
        for (tp, (o, _)) in offsets {
            g.committed.insert(tp, o);
        }
        Ok(())
    }

    /// The group's committed offsets for these partitions.
    pub async fn committed(
        &self,
        partitions: impl IntoIterator<Item = TopicPartition>,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let g = self.group.as_ref().ok_or_else(not_subscribed)?;
        g.membership.committed(&partitions.into_iter().collect()).await
    }

    /// Leaves the group cleanly: commits positions (with `auto_commit` or
    /// `commit_on_revoke`), then tells the coordinator, which hands the partitions on at
    /// once (a static member's wait for its session timeout instead). Dropping a consumer
    /// without `close` leaves no word: its partitions move after the session timeout.
    pub async fn close(mut self) -> Result<()> {
        self.fetcher = None;
        let Some(g) = self.group.as_ref() else { return Ok(()) };
        let cfg = &g.membership.config;
        let committed = if cfg.auto_commit || cfg.commit_on_revoke {
            self.commit().await
        } else {
            Ok(())
        };
        let g = self.group.take().expect("checked");
        g.heartbeats.abort();
        let left = g.membership.leave().await;
        committed.and(left)
    }

    /// Applies what the coordinator decided since the last call. Cancel-safe: a change
    /// interrupted at an await is applied again by the next call.
    async fn sync_group(&mut self) -> Result<()> {
        let Some(g) = self.group.as_mut() else { return Ok(()) };
        // Per record this is one atomic load; the work below runs only on a change (or
        // to finish one that failed or was interrupted).
        if !g.unsynced && !g.changes.has_changed().unwrap_or(true) {
            return Ok(());
        }
        g.unsynced = true;
        g.changes.borrow_and_update();
        let m = g.membership.clone();
        let (on_assigned, on_revoked) = (g.on_assigned.clone(), g.on_revoked.clone());
        let (assignment, lost, fatal) = {
            let mut st = group::lock(&m.state);
            // Claimed before anything is taken: heartbeats report these as held until
            // the change is applied, so none can move while this consumer takes it.
            st.claimed = st.assignment.clone();
            (st.assignment.clone(), std::mem::take(&mut st.lost), st.fatal.clone())
        };
        if let Some(e) = fatal {
            return Err(e);
        }
        if lost && !g.owned.is_empty() {
            let all: Vec<TopicPartition> = std::mem::take(&mut g.owned).into_iter().collect();
            g.committed.clear();
            if let Some(cb) = &on_revoked {
                cb(&all);
            }
            self.positions.clear();
            self.restart();
            publish(&m, &BTreeSet::new());
        }
        let g = self.group.as_mut().expect("subscribed");
        let revoked: Vec<TopicPartition> = g.owned.difference(&assignment).cloned().collect();
        let added: Vec<TopicPartition> = assignment.difference(&g.owned).cloned().collect();
        if !revoked.is_empty() {
            if let Some(cb) = &on_revoked {
                cb(&revoked);
            }
            if m.config.commit_on_revoke {
                let offsets = pending(&self.positions, revoked.iter().cloned(), &g.committed);
                if let Err(e) = m.commit(&offsets).await {
                    warn!(error = %e, "commit of revoked partitions failed; their next owner may re-read records");
                }
            }
            let g = self.group.as_mut().expect("subscribed");
            for tp in &revoked {
                g.owned.remove(tp);
                g.committed.remove(tp);
            }
            publish(&m, &g.owned);
            for tp in &revoked {
                self.positions.remove(&key(tp));
            }
            self.restart();
            // Tell the coordinator now, so the next owner need not wait a heartbeat.
            m.wake.notify_one();
        }
        if !added.is_empty() {
            let committed = m.committed(&added.iter().cloned().collect()).await?;
            let mut positions = Vec::with_capacity(added.len());
            for tp in &added {
                let pos = match (committed.get(tp), m.config.start_without_commit) {
                    (Some(o), _) => Some(*o),
                    (None, Some(at)) => Some(self.resolve(&tp.0, tp.1, at).await?),
                    (None, None) => None,
                };
                positions.push(pos);
            }
            let g = self.group.as_mut().expect("subscribed");
            for (tp, pos) in added.iter().zip(positions) {
                if let Some(o) = committed.get(tp) {
                    g.committed.insert(tp.clone(), *o);
                }
                g.owned.insert(tp.clone());
                self.positions.insert(key(tp), pos);
            }
            publish(&m, &g.owned);
            self.restart();
            if let Some(cb) = &on_assigned {
                cb(&added);
            }
            m.wake.notify_one();
        }
        self.group.as_mut().expect("subscribed").unsynced = false;
        group::lock(&m.state).claimed.clear();
        Ok(())
    }

    fn maybe_auto_commit(&mut self) {
        let Some(g) = self.group.as_mut() else { return };
        let cfg = &g.membership.config;
        if !cfg.auto_commit || g.last_auto_commit.elapsed() < cfg.auto_commit_interval {
            return;
        }
        g.last_auto_commit = Instant::now();
        let offsets = pending(&self.positions, g.owned.iter().cloned(), &g.committed);
        let m = g.membership.clone();
        tokio::spawn(async move {
            if let Err(e) = m.commit(&offsets).await {
                debug!(error = %e, "auto commit failed");
            }
        });
    }

    /// Reads exactly these partitions from now on (replacing any earlier assignment).
    /// Checks that each exists. Positions start per `auto_offset_reset` unless sought.
    pub async fn assign(&mut self, partitions: impl IntoIterator<Item = (String, u32)>) -> Result<()> {
        if self.group.is_some() {
            return Err(Error::InvalidArgument(
                "a subscribed consumer's partitions come from its group".into(),
            ));
        }
        let mut positions = BTreeMap::new();
        for (topic, partition) in partitions {
            let count = self.client.partition_count(&topic).await?;
            if partition >= count {
                return Err(Error::InvalidPartition {
                    topic,
                    partition,
                    count,
                });
            }
            positions.insert((Arc::from(topic.as_str()), partition), None);
        }
        self.restart();
        self.positions = positions;
        Ok(())
    }

    /// Assigns every partition of `topic`.
    pub async fn assign_topic(&mut self, topic: &str) -> Result<()> {
        let count = self.client.partition_count(topic).await?;
        self.assign((0..count).map(|p| (topic.to_owned(), p))).await
    }

    /// The partitions it reads now, as `(topic, partition)`.
    pub fn assignment(&self) -> Vec<(String, u32)> {
        self.positions.keys().map(|(t, p)| (t.to_string(), *p)).collect()
    }

    /// Moves an assigned partition's position.
    pub async fn seek(&mut self, topic: &str, partition: u32, to: Offset) -> Result<()> {
        let key = self
            .positions
            .keys()
            .find(|(t, p)| &**t == topic && *p == partition)
            .cloned()
            .ok_or_else(|| Error::InvalidArgument(format!("{topic}-{partition} is not assigned")))?;
        let offset = self.resolve(topic, partition, to).await?;
        self.restart();
        self.positions.insert(key, Some(offset));
        Ok(())
    }

    /// Moves every assigned partition's position.
    pub async fn seek_all(&mut self, to: Offset) -> Result<()> {
        for (t, p) in self.assignment() {
            self.seek(&t, p, to).await?;
        }
        Ok(())
    }

    /// The next offset the application will get from this partition, once known.
    pub fn position(&self, topic: &str, partition: u32) -> Option<i64> {
        self.positions
            .iter()
            .find(|((t, p), _)| &**t == topic && *p == partition)
            .and_then(|(_, o)| *o)
    }

    /// The partition's end offset as of the latest fetch response.
    pub fn high_watermark(&self, topic: &str, partition: u32) -> Option<i64> {
        self.high_watermarks
            .iter()
            .find(|((t, p), _)| &**t == topic && *p == partition)
            .map(|(_, o)| *o)
    }

    /// Asks the broker where `at` is in a partition.
    pub async fn offset_for(&self, topic: &str, partition: u32, at: Offset) -> Result<Option<i64>> {
        list_offset(&self.client, topic, partition, at).await
    }

    async fn resolve(&self, topic: &str, partition: u32, to: Offset) -> Result<i64> {
        match list_offset(&self.client, topic, partition, to).await? {
            Some(o) => Ok(o),
            // No record at or after the timestamp: start at the end, as Kafka consumers do.
            None => Ok(list_offset(&self.client, topic, partition, Offset::Latest)
                .await?
                .unwrap_or(0)),
        }
    }

    fn restart(&mut self) {
        self.fetcher = None;
        self.buffered.clear();
        self.batches.clear();
    }

    /// The next record. `None` only when nothing is assigned (a subscribed consumer
    /// waits for partitions instead). An error does not end the stream: the fetcher
    /// retries after a backoff.
    pub async fn next(&mut self) -> Option<Result<ConsumerRecord>> {
        loop {
            if let Err(e) = self.sync_group().await {
                return Some(Err(e));
            }
            if let Some(r) = self.buffered.pop_front() {
                if let Some(pos) = self.positions.get_mut(&(r.topic.clone(), r.partition)) {
                    *pos = Some(r.offset + 1);
                }
                return Some(Ok(r));
            }
            if let Some(b) = self.batches.pop_front() {
                if let Err(e) = decode_batch(b, &mut self.buffered) {
                    // The fetcher has moved past this batch: start again (after the
                    // retry backoff) from the positions handed out, which lead back to it.
                    self.restart();
                    self.retry_at = Some(Instant::now() + self.config.retry_backoff);
                    return Some(Err(e));
                }
                continue;
            }
            if self.positions.is_empty() {
                match self.group.as_mut() {
                    None => return None,
                    Some(g) => {
                        if g.changes.changed().await.is_err() {
                            return Some(Err(Error::Closed));
                        }
                        g.unsynced = true;
                        continue;
                    }
                }
            }
            if self.fetcher.is_none() {
                if let Some(at) = self.retry_at.take() {
                    tokio::time::sleep_until(at.into()).await;
                }
                if let Err(e) = self.start_fetcher().await {
                    return Some(Err(e));
                }
            }
            let fetcher = self.fetcher.as_mut().expect("started");
            let received = match self.group.as_mut() {
                Some(g) => {
                    // Auto commit runs while waiting too, like Kafka's poll, so a member
                    // that has read everything still commits it.
                    let cfg = &g.membership.config;
                    let auto = cfg.auto_commit.then(|| g.last_auto_commit + cfg.auto_commit_interval);
                    let commit_due = async {
                        match auto {
                            Some(at) => tokio::time::sleep_until(at.into()).await,
                            None => std::future::pending().await,
                        }
                    };
                    let woke = tokio::select! {
                        m = fetcher.rx.recv() => Ok(m),
                        _ = g.changes.changed() => Err(true),
                        _ = commit_due => Err(false),
                    };
                    match woke {
                        Ok(m) => Some(m),
                        Err(true) => {
                            g.unsynced = true;
                            None
                        }
                        Err(false) => {
                            self.maybe_auto_commit();
                            None
                        }
                    }
                }
                None => Some(fetcher.rx.recv().await),
            };
            let Some(received) = received else {
                // The assignment changed (apply it before delivering more), or a commit
                // was due.
                continue;
            };
            match received {
                Some(Ok(chunk)) => {
                    // Due commits are checked once per fetched chunk (and while idle, in
                    // the wait above), not per record: no clock read per record.
                    self.maybe_auto_commit();
                    for (tp, hw) in chunk.high_watermarks {
                        self.high_watermarks.insert(tp, hw);
                    }
                    self.batches.extend(chunk.batches);
                }
                Some(Err(e)) => return Some(Err(e)),
                None => {
                    self.fetcher = None;
                    return Some(Err(Error::Closed));
                }
            }
        }
    }

    /// The records as a `Stream` (borrowing the consumer; seek between streams).
    pub fn stream(&mut self) -> BoxStream<'_, Result<ConsumerRecord>> {
        futures::stream::unfold(self, |c| async move { c.next().await.map(|r| (r, c)) }).boxed()
    }

    async fn start_fetcher(&mut self) -> Result<()> {
        let unset: Vec<PartitionKey> = self
            .positions
            .iter()
            .filter(|(_, o)| o.is_none())
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in unset {
            let at = match self.config.auto_offset_reset {
                OffsetReset::Earliest => Offset::Earliest,
                OffsetReset::Latest => Offset::Latest,
                OffsetReset::None => {
                    return Err(Error::InvalidArgument(format!(
                        "{}-{} has no position and auto_offset_reset is None: seek first",
                        tp.0, tp.1
                    )))
                }
            };
            let o = self.resolve(&tp.0, tp.1, at).await?;
            self.positions.insert(tp, Some(o));
        }
        let positions = self
            .positions
            .iter()
            .map(|(tp, o)| (tp.clone(), o.expect("resolved")))
            .collect();
        let (tx, rx) = mpsc::channel(self.config.prefetch.max(1));
        let task = tokio::spawn(fetch_loop(self.client.clone(), self.config.clone(), positions, tx));
        self.fetcher = Some(Fetcher { task, rx });
        Ok(())
    }
}

/// Tells the heartbeat task what this consumer holds now.
fn publish(m: &Membership, held: &BTreeSet<TopicPartition>) {
    group::lock(&m.state).owned = held.clone();
}

fn not_subscribed() -> Error {
    Error::InvalidArgument("not in a group: call subscribe first".into())
}

async fn fetch_loop(
    client: Client,
    config: ConsumerConfig,
    mut positions: Vec<(PartitionKey, i64)>,
    tx: mpsc::Sender<Result<Chunk>>,
) {
    loop {
        let chunk = match fetch_once(&client, &config, &mut positions).await {
            Ok(chunk) => chunk,
            Err(e) => {
                debug!(error = %e, "fetch failed; retrying");
                if tx.send(Err(e)).await.is_err() {
                    return;
                }
                tokio::time::sleep(config.retry_backoff).await;
                continue;
            }
        };
        if tx.send(Ok(chunk)).await.is_err() {
            return;
        }
    }
}

/// One fetch for every partition; advances `positions` past what it returns.
async fn fetch_once(client: &Client, config: &ConsumerConfig, positions: &mut [(PartitionKey, i64)]) -> Result<Chunk> {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for ((topic, partition), offset) in positions.iter() {
        let p = FetchPartition {
            partition: *partition,
            fetch_offset: *offset,
            max_bytes: config.max_partition_fetch_bytes,
        };
        match topics.last_mut() {
            Some(t) if *t.name == **topic => t.partitions.push(p),
            _ => topics.push(FetchTopic {
                name: topic.to_string(),
                partitions: vec![p],
            }),
        }
    }
    let req = FetchRequest {
        max_wait_ms: config.fetch_max_wait.as_millis().min(u32::MAX as u128) as u32,
        min_bytes: config.fetch_min_bytes,
        max_bytes: config.fetch_max_bytes,
        topics,
    };
    let (resp, trailer) = client.call_with(&req, Vec::new(), config.fetch_max_wait).await?;
    let mut chunk = Chunk {
        batches: Vec::new(),
        high_watermarks: Vec::new(),
    };
    let mut at = 0usize;
    let mut first_error = None;
    for t in &resp.topics {
        for p in &t.partitions {
            let len = p.records_bytes as usize;
            if at + len > trailer.len() {
                return Err(Error::Protocol("fetch response trailer shorter than announced".into()));
            }
            let bytes = trailer.slice(at..at + len);
            at += len;
            let Some((tp, pos)) = positions
                .iter_mut()
                .find(|((topic, part), _)| **topic == *t.name && *part == p.partition)
            else {
                return Err(Error::Protocol(format!(
                    "fetch response has unrequested {}-{}",
                    t.name, p.partition
                )));
            };
            match ErrorCode::from_i32(p.error_code) {
                ErrorCode::None => {}
                ErrorCode::OffsetOutOfRange if config.auto_offset_reset != OffsetReset::None => {
                    let at = match config.auto_offset_reset {
                        OffsetReset::Earliest => Offset::Earliest,
                        _ => Offset::Latest,
                    };
                    let new = list_offset(client, &tp.0, tp.1, at).await?.unwrap_or(0);
                    debug!(topic = %tp.0, partition = tp.1, from = *pos, to = new, "offset out of range; reset");
                    *pos = new;
                    continue;
                }
                code => {
                    first_error.get_or_insert(Error::Server {
                        code,
                        message: format!("{}-{}: {}", t.name, p.partition, p.error_message),
                    });
                    continue;
                }
            }
            chunk.high_watermarks.push((tp.clone(), p.high_watermark));
            let mut rest = bytes;
            while !rest.is_empty() {
                let Some(n) = check_batch(&rest)? else {
                    return Err(Error::Protocol(format!(
                        "fetch response for {}-{} ends inside a batch",
                        t.name, p.partition
                    )));
                };
                let bytes = rest.split_to(n);
                let h = BatchHeader::parse(&bytes)?;
                if h.next_offset() <= *pos {
                    continue;
                }
                if !h.is_control() {
                    chunk.batches.push(FetchedBatch {
                        tp: tp.clone(),
                        from: *pos,
                        bytes,
                    });
                }
                *pos = h.next_offset();
            }
        }
    }
    match first_error {
        // Batches already fetched are delivered; the error comes with the next fetch.
        Some(e) if chunk.batches.is_empty() => Err(e),
        _ => Ok(chunk),
    }
}

/// Checks one fetched batch (framing, CRC-32C) and appends its records from `b.from` on.
fn decode_batch(b: FetchedBatch, out: &mut VecDeque<ConsumerRecord>) -> Result<()> {
    let batch = RecordBatch::new(b.bytes)?;
    for r in batch.records()? {
        if r.offset >= b.from {
            out.push_back(ConsumerRecord {
                topic: b.tp.0.clone(),
                partition: b.tp.1,
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key,
                value: r.value,
                headers: r.headers,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_protocol::batch::set_base_offset;
    use runnel_protocol::record::{BatchBuilder, BatchOptions, Record};

    fn batch(base: i64, n: usize) -> Bytes {
        let mut b = BatchBuilder::new(BatchOptions::default());
        for i in 0..n {
            b.push(&Record::new(1_000 + i as i64, None, Some(format!("v{i}").as_bytes())));
        }
        let mut bytes = b.finish().expect("batch");
        set_base_offset(&mut bytes, base);
        bytes.freeze()
    }

    #[test]
    fn decode_batch_starts_at_from_and_rejects_a_corrupt_batch() {
        let tp: PartitionKey = (Arc::from("t"), 3);
        let mut out = VecDeque::new();
        let fetched = |bytes, from| FetchedBatch {
            tp: tp.clone(),
            from,
            bytes,
        };
        decode_batch(fetched(batch(10, 5), 12), &mut out).expect("valid batch");
        let offsets: Vec<i64> = out.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [12, 13, 14]);
        assert_eq!(out[0].value.as_deref(), Some(&b"v2"[..]));
        assert!(out.iter().all(|r| r.partition == 3 && &*r.topic == "t"));

        // A flipped bit in the records: the CRC check refuses the batch, nothing is added.
        let mut bad = batch(15, 5).to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0x10;
        let err = decode_batch(fetched(Bytes::from(bad), 15), &mut out).expect_err("corrupt batch");
        assert!(err.to_string().to_lowercase().contains("crc"), "{err}");
        assert_eq!(out.len(), 3);
    }
}

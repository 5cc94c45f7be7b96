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

mod fetcher;
mod membership;

use fetcher::*;
use membership::*;

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
}

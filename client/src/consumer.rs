//! [`Consumer`]: reads assigned partitions as a stream of records.
//!
//! A background fetch task keeps fetching ahead of the application: it long-polls the
//! broker for every assigned partition from its own copy of the positions, decodes the
//! batches, and queues the records (at most `prefetch` responses ahead). The
//! application's side pops records and advances [`Consumer::position`]. Assigning or
//! seeking stops the fetch task and drops what it fetched; the next poll starts a new one
//! from the new positions.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use runnel_protocol::messages::{FetchPartition, FetchRequest, FetchTopic};
use runnel_protocol::{ErrorCode, Header, RecordBatch};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::admin::list_offset;
use crate::client::{Client, ClientConfig};
use crate::error::{Error, Result};

/// Where to start reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// The log start offset (oldest record retained).
    Earliest,
    /// The log end offset: only records produced from now on.
    Latest,
    At(i64),
    /// The first record with a timestamp at or after this one (ms since the epoch); the
    /// end of the log if there is none.
    Timestamp(i64),
}

/// What to do when a position is unset or out of the log's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// Fail with OFFSET_OUT_OF_RANGE.
    None,
}

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Long-poll wait when no records are available.
    pub fetch_max_wait: Duration,
    pub fetch_min_bytes: u32,
    /// Record bytes per fetch response, all partitions together (soft limit).
    pub fetch_max_bytes: u32,
    /// Record bytes per partition per fetch (soft: a larger first batch still comes).
    pub max_partition_fetch_bytes: u32,
    /// Kafka's `auto.offset.reset`; the default, like Kafka's, is `Latest`.
    pub auto_offset_reset: OffsetReset,
    /// Fetch responses decoded and queued ahead of the application.
    pub prefetch: usize,
    pub retry_backoff: Duration,
    pub client: ClientConfig,
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
        }
    }
}

/// One consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: Arc<str>,
    pub partition: u32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

type TopicPartition = (Arc<str>, u32);

struct Chunk {
    records: Vec<ConsumerRecord>,
    high_watermarks: Vec<(TopicPartition, i64)>,
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

pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    /// Next offset to hand to the application; `None` until resolved by the reset policy.
    positions: BTreeMap<TopicPartition, Option<i64>>,
    high_watermarks: BTreeMap<TopicPartition, i64>,
    fetcher: Option<Fetcher>,
    buffered: VecDeque<ConsumerRecord>,
}

impl Consumer {
    pub async fn connect(addr: impl Into<String>, config: ConsumerConfig) -> Result<Consumer> {
        Ok(Consumer {
            client: Client::connect(addr, config.client.clone()).await?,
            config,
            positions: BTreeMap::new(),
            high_watermarks: BTreeMap::new(),
            fetcher: None,
            buffered: VecDeque::new(),
        })
    }

    /// Reads exactly these partitions from now on (replacing any earlier assignment).
    /// Checks that each exists. Positions start per `auto_offset_reset` unless sought.
    pub async fn assign(&mut self, partitions: impl IntoIterator<Item = (String, u32)>) -> Result<()> {
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
    }

    /// The next record. `None` only when nothing is assigned. An error does not end the
    /// stream: the fetcher retries after a backoff.
    pub async fn next(&mut self) -> Option<Result<ConsumerRecord>> {
        loop {
            if let Some(r) = self.buffered.pop_front() {
                if let Some(pos) = self.positions.get_mut(&(r.topic.clone(), r.partition)) {
                    *pos = Some(r.offset + 1);
                }
                return Some(Ok(r));
            }
            if self.positions.is_empty() {
                return None;
            }
            if self.fetcher.is_none() {
                if let Err(e) = self.start_fetcher().await {
                    return Some(Err(e));
                }
            }
            let fetcher = self.fetcher.as_mut().expect("started");
            match fetcher.rx.recv().await {
                Some(Ok(chunk)) => {
                    for (tp, hw) in chunk.high_watermarks {
                        self.high_watermarks.insert(tp, hw);
                    }
                    self.buffered.extend(chunk.records);
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
        let unset: Vec<TopicPartition> = self
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

async fn fetch_loop(
    client: Client,
    config: ConsumerConfig,
    mut positions: Vec<(TopicPartition, i64)>,
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
async fn fetch_once(
    client: &Client,
    config: &ConsumerConfig,
    positions: &mut [(TopicPartition, i64)],
) -> Result<Chunk> {
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
        records: Vec::new(),
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
            for batch in RecordBatch::split_all(bytes)? {
                let h = *batch.header();
                if h.next_offset() <= *pos {
                    continue;
                }
                if !h.is_control() {
                    for r in batch.records()? {
                        if r.offset >= *pos {
                            chunk.records.push(ConsumerRecord {
                                topic: tp.0.clone(),
                                partition: tp.1,
                                offset: r.offset,
                                timestamp: r.timestamp,
                                key: r.key,
                                value: r.value,
                                headers: r.headers,
                            });
                        }
                    }
                }
                *pos = h.next_offset();
            }
        }
    }
    match first_error {
        // Records already decoded are delivered; the error comes with the next fetch.
        Some(e) if chunk.records.is_empty() => Err(e),
        _ => Ok(chunk),
    }
}

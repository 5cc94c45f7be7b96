//! [`Producer`]: batches records per partition and sends them to the broker.
//!
//! ```text
//! send() ──► accumulator (per partition: open batch, sealed batches) ──► sender task
//!              │  memory semaphore (backpressure)                         │ one Produce
//!              └──────────── freed when a batch is acknowledged ◄─────────┘ per round
//! ```
//!
//! - `send` waits (up to `max_block`) for buffer memory, picks the partition (explicit,
//!   murmur2 of the key, or sticky), encodes the record into the partition's open batch,
//!   and returns a [`DeliveryFuture`] of its partition and offset.
//! - A batch is sealed when it reaches `batch_size_bytes`; the sender sends it then, or
//!   when its `linger` passes, or at once on [`Producer::flush`].
//! - Ordering: a partition has up to `max_in_flight_per_partition` requests in flight
//!   (5 by default, as Kafka): requests are queued on the connection in order and the
//!   broker appends them in order; with idempotence (the default) retries keep that order
//!   too, without it only a retry can reorder. Different partitions' batches travel
//!   together and in parallel.
//! - Retries: retriable errors (broker shutting down, timeouts, lost connection) resend
//!   the batch after an exponential backoff, until `delivery_timeout` since the batch was
//!   created.
//! - Idempotence (on by default, as Kafka's `enable.idempotence`): the producer takes an
//!   id from the broker (InitProducerId) and numbers each partition's batches by record
//!   sequence when it first sends them. A resent batch keeps its numbers, so the broker
//!   appends it once (a retry after a lost response gets the original offsets) and a
//!   batch that overtook a failed one is refused (OUT_OF_ORDER_SEQUENCE_NUMBER) and resent
//!   after it: retries neither duplicate nor reorder. Retries go back to the queue in
//!   send order. When a batch fails for good (or the broker reports a gap no earlier batch
//!   explains), the partition moves to the next epoch: once nothing of it is in flight,
//!   its waiting batches are renumbered from sequence 0 (header rewritten, CRC recomputed)
//!   and the broker accepts them as a new run — except a batch the broker refuses as out
//!   of order after a later batch of the same epoch was acknowledged: the broker takes a
//!   sequence only after the one before it, so that batch is in the log (its own answer
//!   was lost, in a failover say, and its retry is too old to be recognised as a
//!   duplicate); it completes as acknowledged with offset -1, as Kafka's producer does,
//!   instead of being written twice. Without idempotence a retry after a lost
//!   response can duplicate a batch, as with Kafka's non-idempotent producer.
//!
//! Concurrency: the accumulator is one std mutex, held only to move records and batches
//! in and out (never across I/O or `.await`); compression runs on the sender's side,
//! outside it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use runnel_protocol::messages::{
    InitProducerIdRequest, ProducePartition, ProduceRequest, ProduceResponse, ProduceTopic,
};
use runnel_protocol::{BatchBuilder, BatchOptions, Compression, ErrorCode, Header};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tracing::debug;

pub use runnel_protocol::messages::Acks;

use crate::client::{check, is_unknown_topic, Client, ClientConfig, PendingCall};
use crate::delivery::Completion;
pub use crate::delivery::{DeliveryFuture, RecordMetadata};
use crate::error::{Error, Result};
use crate::partitioner::{next_sticky, partition_for_key};
use crate::PartitionKey;

mod accumulator;
mod sender;
mod sequencing;

use accumulator::*;
use sender::*;
use sequencing::*;

/// Bytes a record costs beyond its key, value and headers (varints, attributes).
const RECORD_OVERHEAD_BYTES: usize = 24;
/// A batch's header (RecordBatch v2).
const BATCH_HEADER_BYTES: usize = runnel_protocol::batch::HEADER_BYTES;

/// How a [`Producer`] batches, retries and acknowledges; defaults as listed per field.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// `All` (durable under the topic's flush policy), `Leader` or `None`. Default `All`;
    /// Kafka's `acks` (`all`, `1`, `0`).
    pub acks: Acks,
    /// A partition's batch is sent once it holds this many bytes. Default 64 KiB;
    /// Kafka's `batch.size` (16 KiB there).
    pub batch_size_bytes: usize,
    /// How long a batch waits for more records before it is sent anyway. Default 5 ms;
    /// Kafka's `linger.ms`.
    pub linger: Duration,
    /// Memory for records not yet acknowledged; `send` waits when it is used up.
    /// Default 32 MiB; Kafka's `buffer.memory`.
    pub buffer_memory_bytes: usize,
    /// How long `send` waits for buffer memory before failing with `BufferFull`.
    /// Default 60 s; Kafka's `max.block.ms`.
    pub max_block: Duration,
    /// Largest request (and so largest record) sent; the broker's `max.message.bytes`
    /// still applies per batch. Default 1 MiB; Kafka's `max.request.size`.
    pub max_request_bytes: usize,
    /// Codec for batches. Default none; Kafka's `compression.type`.
    pub compression: Compression,
    /// A record not acknowledged this long after its batch was created fails. Default
    /// 120 s; Kafka's `delivery.timeout.ms`.
    pub delivery_timeout: Duration,
    /// First wait before a retry, doubling per attempt. Default 100 ms; Kafka's
    /// `retry.backoff.ms`.
    pub retry_backoff: Duration,
    /// Longest wait between retries. Default 1 s; Kafka's `retry.backoff.max.ms`.
    pub retry_backoff_max: Duration,
    /// Requests in flight per partition. Default 5, as Kafka's
    /// `max.in.flight.requests.per.connection`. The broker appends a connection's requests
    /// in order, and the idempotent producer (the default) keeps that order across
    /// retries too; without idempotence a batch that fails and is resent lands after
    /// batches sent behind it, as with Kafka's non-idempotent producer (set 1 to avoid
    /// that). More in flight lets one `fdatasync` on the broker cover more of this
    /// producer's batches under `flush.policy=always`.
    pub max_in_flight_per_partition: usize,
    /// Idempotent sequencing (Kafka's `enable.idempotence`; see the module docs): retries
    /// neither duplicate nor reorder. Applies with acks `All` or `Leader` (acks `None` has
    /// no answers to retry on) and at most [`MAX_IDEMPOTENT_IN_FLIGHT`] requests in flight
    /// per partition (the batches the broker remembers per producer); off otherwise.
    /// Default `true`.
    pub idempotence: bool,
    /// Connection settings. The default asks the broker to create topics that do not
    /// exist (`auto_create_topics`), as Kafka producers do.
    pub client: ClientConfig,
}

/// The most requests in flight per partition that idempotence allows: the broker
/// recognises a retry among a producer's last five batches (Kafka's limit too).
pub const MAX_IDEMPOTENT_IN_FLIGHT: usize = 5;

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            batch_size_bytes: 64 * 1024,
            linger: Duration::from_millis(5),
            buffer_memory_bytes: 32 * 1024 * 1024,
            max_block: Duration::from_secs(60),
            max_request_bytes: 1024 * 1024,
            max_in_flight_per_partition: MAX_IDEMPOTENT_IN_FLIGHT,
            compression: Compression::None,
            delivery_timeout: Duration::from_secs(120),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            idempotence: true,
            client: ClientConfig {
                auto_create_topics: true,
                ..ClientConfig::default()
            },
        }
    }
}

/// A record to send. `partition: None` lets the partitioner choose. The topic is shared
/// (`Arc<str>`): a sender that keeps one `Arc` per topic names it without an allocation
/// per record.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    /// The topic to write to.
    pub topic: Arc<str>,
    /// A fixed partition; `None` lets the partitioner choose (murmur2 of the key as
    /// Kafka's default partitioner, sticky for keyless records).
    pub partition: Option<u32>,
    /// The key; `None` is a null key.
    pub key: Option<Bytes>,
    /// The value; `None` is a null value (a tombstone).
    pub value: Option<Bytes>,
    /// Headers, in order; keys may repeat.
    pub headers: Vec<Header>,
    /// Milliseconds since the epoch; `None` stamps the time of `send`.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record with a value and nothing else set.
    pub fn new(topic: impl Into<Arc<str>>, value: impl Into<Bytes>) -> ProducerRecord {
        ProducerRecord {
            topic: topic.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sends to this partition instead of the partitioner's choice.
    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }

    /// Sets the timestamp (ms since the epoch) instead of the time of `send`.
    pub fn timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }

    fn size_bytes(&self) -> usize {
        RECORD_OVERHEAD_BYTES
            + self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + self
                .headers
                .iter()
                .map(|h| 8 + h.key.len() + h.value.as_ref().map_or(0, Bytes::len))
                .sum::<usize>()
    }
}

/// Sends records: batches them per partition, sends each batch when it is full or has
/// lingered, retries what fails (idempotently by default). Cheap to share (`&self`
/// methods); [`Producer::close`] sends what is buffered.
pub struct Producer {
    inner: Arc<Inner>,
    sender: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Producer {
    /// Connects to the broker and starts the sender task on the current runtime.
    pub async fn connect(addr: impl Into<String>, config: ProducerConfig) -> Result<Producer> {
        if config.batch_size_bytes == 0 || config.buffer_memory_bytes < config.max_request_bytes {
            return Err(Error::InvalidArgument(
                "batch_size_bytes must be positive and buffer_memory_bytes at least max_request_bytes".into(),
            ));
        }
        let client = Client::connect(addr, config.client.clone()).await?;
        let idempotent = config.idempotence
            && config.acks != Acks::None
            && config.max_in_flight_per_partition <= MAX_IDEMPOTENT_IN_FLIGHT;
        let producer_id = if idempotent {
            let resp = client.call(&InitProducerIdRequest {}).await?;
            let epoch = i16::try_from(resp.producer_epoch)
                .map_err(|_| Error::Protocol(format!("producer epoch {} out of range", resp.producer_epoch)))?;
            Some(ProducerId {
                id: resp.producer_id,
                epoch,
            })
        } else {
            None
        };
        let inner = Arc::new(Inner {
            client,
            producer_id,
            memory: Arc::new(Semaphore::new(config.buffer_memory_bytes)),
            config,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            progress: Notify::new(),
            closed: AtomicBool::new(false),
        });
        let sender = tokio::spawn(run_sender(inner.clone()));
        Ok(Producer {
            inner,
            sender: Mutex::new(Some(sender)),
        })
    }

    /// Queues a record. Waits only for buffer memory (backpressure); the returned future
    /// resolves once the broker acknowledges the record.
    // Long by choice: the hot path of a record (memory, partition, batch, wake-up) reads
    // top to bottom without detours.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let size = record.size_bytes();
        let max = inner.config.max_request_bytes;
        if size + BATCH_HEADER_BYTES > max {
            return Err(Error::RecordTooLarge { size, max });
        }
        let count = self.partition_count(&record.topic).await?;
        if let Some(p) = record.partition.filter(|p| *p >= count) {
            return Err(Error::InvalidPartition {
                topic: record.topic.to_string(),
                partition: p,
                count,
            });
        }
        // Buffer memory, given back in `complete`. The fast path takes no timer (a
        // deadline is a clock read and a timer entry per record).
        match inner.memory.try_acquire_many(size as u32) {
            Ok(permit) => {
                permit.forget();
                // Still a yield point under tokio's cooperative budget, so a tight send
                // loop lets the producer's own I/O tasks (and, embedded, the broker) run.
                tokio::task::consume_budget().await;
            }
            Err(tokio::sync::TryAcquireError::Closed) => return Err(Error::Closed),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                let wait = inner.memory.clone().acquire_many_owned(size as u32);
                match tokio::time::timeout(inner.config.max_block, wait).await {
                    Ok(Ok(permit)) => permit.forget(),
                    Ok(Err(_)) => return Err(Error::Closed),
                    Err(_) => return Err(Error::BufferFull(inner.config.max_block)),
                }
            }
        }
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        let mut st = inner.lock();
        let (topic, t) = st
            .topics
            .get_key_value(&*record.topic)
            .expect("partition_count entered the topic; entries are never removed");
        let topic = topic.clone();
        let partition = match (record.partition, &record.key) {
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, count),
            (None, None) => t.sticky,
        };
        let tp = (topic, partition);
        let cfg = &inner.config;
        let mut opened = false;
        let q = st.queues.entry(tp.clone()).or_default();
        // A record that would push the open batch past the request limit starts a new one.
        if q.open
            .as_ref()
            .is_some_and(|b| b.builder.uncompressed_bytes() + size > cfg.max_request_bytes)
        {
            let full = q.open.take().expect("checked");
            q.sealed.push_back(Queued::Fresh(full));
        }
        let batch = q.open.get_or_insert_with(|| {
            opened = true;
            OpenBatch {
                builder: BatchBuilder::with_capacity(
                    BatchOptions {
                        compression: cfg.compression,
                        ..Default::default()
                    },
                    cfg.batch_size_bytes.min(size * 4).max(size),
                ),
                completion: Completion::new(),
                records: 0,
                reserved_bytes: 0,
                created: Instant::now(),
                seq: None,
            }
        });
        batch.builder.push_parts(
            timestamp,
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers,
        );
        let delivery = batch.completion.future(batch.records, partition, timestamp);
        batch.records += 1;
        batch.reserved_bytes += size;
        let full = batch.builder.uncompressed_bytes() >= cfg.batch_size_bytes;
        if full {
            let b = q.open.take().expect("just filled");
            q.sealed.push_back(Queued::Fresh(b));
        }
        if opened {
            st.outstanding += 1;
        }
        if full {
            rotate_sticky(&mut st, &tp);
        }
        drop(st);
        if opened || full {
            inner.wake.notify_one();
        }
        Ok(delivery)
    }

    /// The topic's partition count: from the accumulator's own table while the client's
    /// metadata cache has not changed since (one atomic load), else from the client.
    async fn partition_count(&self, topic: &str) -> Result<u32> {
        let inner = &self.inner;
        let version = inner.client.partitions_version();
        if let Some(t) = inner.lock().topics.get(topic).filter(|t| t.version == version) {
            return Ok(t.partitions);
        }
        let count = inner.client.partition_count(topic).await?;
        let mut st = inner.lock();
        match st.topics.get_mut(topic) {
            Some(t) => {
                if t.sticky >= count {
                    t.sticky = next_sticky(None, count);
                }
                t.partitions = count;
                t.version = version;
            }
            None => {
                st.topics.insert(
                    Arc::from(topic),
                    TopicState {
                        partitions: count,
                        version,
                        sticky: next_sticky(None, count),
                    },
                );
            }
        }
        Ok(count)
    }

    /// Sends every buffered record now and waits until all are acknowledged or failed.
    pub async fn flush(&self) {
        let inner = &self.inner;
        inner.lock().flushing += 1;
        inner.wake.notify_one();
        loop {
            let progressed = inner.progress.notified();
            if inner.lock().outstanding == 0 {
                break;
            }
            progressed.await;
        }
        inner.lock().flushing -= 1;
    }

    /// Flushes, then stops the sender. Later sends fail with `Closed`.
    pub async fn close(&self) {
        self.flush().await;
        self.inner.closed.store(true, Ordering::Release);
        self.inner.wake.notify_one();
        let sender = crate::sync::lock(&self.sender).take();
        if let Some(h) = sender {
            let _ = h.await;
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // The sender finishes what is buffered in the background, then ends.
        self.inner.closed.store(true, Ordering::Release);
        self.inner.wake.notify_one();
    }
}

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
//! - Ordering: by default a partition has at most one request in flight, so retries
//!   never reorder (`max_in_flight_per_partition` allows more: requests are queued on the
//!   connection in order and the broker appends them in order; only a retry can reorder).
//!   Different partitions' batches travel together and in parallel.
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
//!   and the broker accepts them as a new run. Without idempotence a retry after a lost
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
    /// Default 1. Requests in flight per partition (Kafka's `max.in.flight.requests.per.connection`).
    /// The broker appends a connection's requests in order, so more than 1 keeps the
    /// order of records — except across a retry: a batch that fails and is resent lands
    /// after batches sent behind it, as with Kafka's non-idempotent producer. More in
    /// flight lets one `fdatasync` on the broker cover more of this producer's batches
    /// under `flush.policy=always`.
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
            max_in_flight_per_partition: 1,
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

/// A batch being filled, or sealed and waiting for the sender.
struct OpenBatch {
    builder: BatchBuilder,
    /// Its records' delivery futures; `records` of them handed out.
    completion: Completion,
    records: u32,
    reserved_bytes: usize,
    created: Instant,
    /// Its numbers, given when it is first taken for sending (idempotence).
    seq: Option<Sequenced>,
}

/// A batch encoded for the wire, possibly on its second or later attempt.
struct Batch {
    bytes: Bytes,
    completion: Completion,
    reserved_bytes: usize,
    created: Instant,
    attempts: u32,
    records: u32,
    seq: Option<Sequenced>,
}

/// An idempotent batch's numbers in its partition.
#[derive(Debug, Clone, Copy)]
struct Sequenced {
    epoch: i16,
    base_sequence: i32,
    /// Send order within the partition (sequences wrap; this does not).
    ordinal: u64,
}

/// An idempotent producer's numbering of one partition.
#[derive(Default)]
struct Sequences {
    /// Epochs moved past the producer's own (each failure that leaves a gap moves one).
    bumps: i16,
    next_sequence: i32,
    next_ordinal: u64,
    /// Ordinals of batches numbered and not yet completed.
    unacked: BTreeSet<u64>,
    /// Moved to a new epoch: send nothing until the batches in flight are back, then
    /// renumber the waiting ones in order.
    renumbering: bool,
}

/// The sequence `n` records after `seq` (sequences wrap from `i32::MAX` to 0).
fn add_sequence(seq: i32, n: u32) -> i32 {
    ((seq as i64 + n as i64) % (i32::MAX as i64 + 1)) as i32
}

enum Queued {
    Fresh(OpenBatch),
    Retry(Batch),
}

#[derive(Default)]
struct PartitionQueue {
    open: Option<OpenBatch>,
    sealed: VecDeque<Queued>,
    /// Requests of this partition sent and not yet completed.
    in_flight: usize,
    retry_at: Option<Instant>,
    seq: Sequences,
}

/// Per-record maps hash with foldhash: SipHash of the topic name was a visible cost.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Default)]
struct State {
    queues: FastMap<PartitionKey, PartitionQueue>,
    topics: FastMap<Arc<str>, TopicState>,
    /// `flush` calls under way: lingering is off while any is.
    flushing: usize,
    /// Batches created and not yet completed (open, sealed or in flight).
    outstanding: usize,
}

/// What `send` needs to know of a topic, kept under the accumulator's lock.
struct TopicState {
    /// Partition count, as the client's metadata cache said at `version`.
    partitions: u32,
    version: u64,
    /// The partition keyless records stick to.
    sticky: u32,
}

/// The id and epoch InitProducerId gave an idempotent producer.
#[derive(Debug, Clone, Copy)]
struct ProducerId {
    id: i64,
    epoch: i16,
}

struct Inner {
    client: Client,
    config: ProducerConfig,
    /// `Some` when the producer is idempotent.
    producer_id: Option<ProducerId>,
    state: Mutex<State>,
    memory: Arc<Semaphore>,
    /// Wakes the sender: a batch sealed or opened, a request done, a flush, close.
    wake: Notify,
    /// Wakes `flush` callers when batches complete.
    progress: Notify,
    closed: AtomicBool,
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

/// Once the sticky partition's batch is sealed or sent, keyless records move on.
fn rotate_sticky(st: &mut State, tp: &PartitionKey) {
    if let Some(t) = st.topics.get_mut(&tp.0) {
        if t.sticky == tp.1 {
            t.sticky = next_sticky(Some(t.sticky), t.partitions);
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// Takes the next batch of every partition that may send now: not in flight, not
    /// backing off, and with a sealed batch, or an open one past its linger (or a flush
    /// or close under way). Returns them and when to look again.
    fn take_ready(&self) -> (Vec<(PartitionKey, Queued)>, Option<Instant>) {
        let now = Instant::now();
        let mut st = self.lock();
        let hurry = st.flushing > 0 || self.closed.load(Ordering::Acquire);
        let linger = self.config.linger;
        let mut ready = Vec::new();
        let mut next: Option<Instant> = None;
        let mut soonest = |at: Instant| next = Some(next.map_or(at, |n| n.min(at)));
        let mut drained_sticky = Vec::new();
        for (tp, q) in st.queues.iter_mut() {
            if q.in_flight >= self.config.max_in_flight_per_partition.max(1) {
                continue;
            }
            if q.seq.renumbering {
                if q.in_flight > 0 {
                    continue;
                }
                q.seq.renumbering = false;
            }
            if let Some(at) = q.retry_at {
                if at > now {
                    soonest(at);
                    continue;
                }
                q.retry_at = None;
            }
            let mut item = match q.sealed.pop_front() {
                Some(item) => item,
                None => match &q.open {
                    Some(b) if hurry || b.created + linger <= now => {
                        drained_sticky.push(tp.clone());
                        Queued::Fresh(q.open.take().expect("matched"))
                    }
                    Some(b) => {
                        soonest(b.created + linger);
                        continue;
                    }
                    None => continue,
                },
            };
            if let Some(pid) = self.producer_id {
                number(pid, &mut q.seq, &mut item);
            }
            q.in_flight += 1;
            ready.push((tp.clone(), item));
        }
        for tp in drained_sticky {
            rotate_sticky(&mut st, &tp);
        }
        (ready, next)
    }

    /// Completes a batch: hands out offsets or the error, frees its memory. An idempotent
    /// batch that failed leaves a gap in its partition's sequence: the partition moves to
    /// the next epoch.
    fn complete(&self, tp: &PartitionKey, batch: Batch, result: Result<(i64, i64)>) {
        let failed = result.is_err();
        batch.completion.complete(result);
        self.memory.add_permits(batch.reserved_bytes);
        let mut st = self.lock();
        st.outstanding -= 1;
        if let Some(q) = st.queues.get_mut(tp) {
            q.in_flight = q.in_flight.saturating_sub(1);
            if let (Some(pid), Some(s)) = (self.producer_id, batch.seq) {
                q.seq.unacked.remove(&s.ordinal);
                if failed {
                    next_epoch(pid, &mut q.seq, s.epoch);
                }
            }
        }
        drop(st);
        self.progress.notify_waiters();
        self.wake.notify_one();
    }

    /// Puts a batch back at the head of its partition's queue after a retriable error.
    fn retry(&self, tp: &PartitionKey, mut batch: Batch, error: &Error) {
        batch.attempts += 1;
        let cfg = &self.config;
        let backoff = cfg
            .retry_backoff
            .saturating_mul(1 << batch.attempts.min(16))
            .min(cfg.retry_backoff_max);
        debug!(topic = %tp.0, partition = tp.1, attempt = batch.attempts, ?backoff, error = %error, "retrying batch");
        let mut st = self.lock();
        let q = st.queues.entry(tp.clone()).or_default();
        q.in_flight = q.in_flight.saturating_sub(1);
        q.retry_at = Some(Instant::now() + backoff);
        match batch.seq {
            // Back in send order among the other retries (ahead of every fresh batch).
            Some(s) => {
                let at = q
                    .sealed
                    .iter()
                    .position(|item| match item {
                        Queued::Retry(b) => b.seq.is_some_and(|o| o.ordinal > s.ordinal),
                        Queued::Fresh(_) => true,
                    })
                    .unwrap_or(q.sealed.len());
                q.sealed.insert(at, Queued::Retry(batch));
            }
            None => q.sealed.push_front(Queued::Retry(batch)),
        }
        drop(st);
        self.wake.notify_one();
    }

    /// An idempotent batch the broker refused as out of order. While an earlier batch of
    /// its partition is unanswered or waiting to be resent, this one overtook it: resend
    /// it after. Otherwise the broker's numbering has a gap nothing will fill (a batch
    /// failed for good, or the broker lost batches in a crash): move to the next epoch,
    /// which renumbers it.
    fn out_of_order(&self, tp: &PartitionKey, batch: Batch, error: &Error) {
        if let (Some(pid), Some(s)) = (self.producer_id, batch.seq) {
            let mut st = self.lock();
            let q = st.queues.entry(tp.clone()).or_default();
            let overtook = q.seq.unacked.first().is_some_and(|first| *first < s.ordinal);
            if !overtook {
                next_epoch(pid, &mut q.seq, s.epoch);
            }
        }
        self.retry(tp, batch, error);
    }
}

/// Moves the partition to the next epoch if `epoch` (a failed batch's) is still its
/// current one. At `i16::MAX` there is no next epoch: the partition's batches then fail
/// out of order until their delivery timeout (after 32,767 such failures on one
/// partition; a new producer starts again at 0).
fn next_epoch(pid: ProducerId, seq: &mut Sequences, epoch: i16) {
    if pid.epoch.checked_add(seq.bumps) == Some(epoch) && epoch < i16::MAX {
        seq.bumps += 1;
        seq.next_sequence = 0;
        seq.renumbering = true;
    }
}

/// Gives a batch about to be sent its numbers: the next ones of its partition if it is
/// fresh, or if it is a retry numbered under an older epoch (its header is rewritten).
fn number(pid: ProducerId, seq: &mut Sequences, item: &mut Queued) {
    let epoch = pid.epoch.saturating_add(seq.bumps);
    let records = match item {
        Queued::Fresh(open) => open.records,
        Queued::Retry(b) if b.seq.is_some_and(|s| s.epoch != epoch) => b.records,
        Queued::Retry(_) => return,
    };
    let base_sequence = seq.next_sequence;
    seq.next_sequence = add_sequence(base_sequence, records);
    match item {
        Queued::Fresh(open) => {
            let ordinal = seq.next_ordinal;
            seq.next_ordinal += 1;
            seq.unacked.insert(ordinal);
            open.builder.set_producer_state(pid.id, epoch, base_sequence);
            open.seq = Some(Sequenced {
                epoch,
                base_sequence,
                ordinal,
            });
        }
        Queued::Retry(b) => {
            let mut bytes = BytesMut::from(&b.bytes[..]);
            runnel_protocol::batch::set_producer_state(&mut bytes, pid.id, epoch, base_sequence);
            b.bytes = bytes.freeze();
            let s = b.seq.as_mut().expect("checked above");
            (s.epoch, s.base_sequence) = (epoch, base_sequence);
        }
    }
}

async fn run_sender(inner: Arc<Inner>) {
    loop {
        let woken = inner.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let (ready, next) = inner.take_ready();
        if !ready.is_empty() {
            // Encoding (and compression) happens here, outside the accumulator's lock.
            let mut batches = Vec::with_capacity(ready.len());
            for (tp, item) in ready {
                match item {
                    Queued::Retry(b) => batches.push((tp, b)),
                    Queued::Fresh(open) => match open.builder.finish() {
                        Ok(bytes) => batches.push((
                            tp,
                            Batch {
                                bytes: bytes.freeze(),
                                completion: open.completion,
                                reserved_bytes: open.reserved_bytes,
                                created: open.created,
                                attempts: 0,
                                records: open.records,
                                seq: open.seq,
                            },
                        )),
                        Err(e) => {
                            let failed = Batch {
                                bytes: Bytes::new(),
                                completion: open.completion,
                                reserved_bytes: open.reserved_bytes,
                                created: open.created,
                                attempts: 0,
                                records: open.records,
                                seq: open.seq,
                            };
                            inner.complete(&tp, failed, Err(Error::Batch(e)));
                        }
                    },
                }
            }
            // Queued on the connection here, in order (a partition with several requests
            // in flight relies on it); the responses are awaited in tasks of their own.
            for request in split_requests(batches, inner.config.max_request_bytes) {
                let started = start_request(&inner, &request).await;
                tokio::spawn(finish_request(inner.clone(), request, started));
            }
            continue;
        }
        if inner.closed.load(Ordering::Acquire) && inner.lock().outstanding == 0 {
            return;
        }
        match next {
            Some(at) => {
                tokio::select! {
                    _ = &mut woken => {}
                    _ = tokio::time::sleep_until(at) => {}
                }
            }
            None => woken.await,
        }
    }
}

/// Groups batches into requests of at most `max_bytes` (a single larger batch alone).
fn split_requests(batches: Vec<(PartitionKey, Batch)>, max_bytes: usize) -> Vec<Vec<(PartitionKey, Batch)>> {
    let mut out: Vec<Vec<(PartitionKey, Batch)>> = Vec::new();
    let mut bytes = 0;
    for b in batches {
        let len = b.1.bytes.len();
        match out.last_mut() {
            Some(last) if bytes + len <= max_bytes => {
                bytes += len;
                last.push(b);
            }
            _ => {
                bytes = len;
                out.push(vec![b]);
            }
        }
    }
    out
}

/// Queues one Produce request for `batches`. `Ok(None)`: acks none, nothing to await.
async fn start_request(
    inner: &Inner,
    batches: &[(PartitionKey, Batch)],
) -> Result<Option<PendingCall<ProduceRequest>>> {
    let acks = inner.config.acks;
    let mut topics: Vec<ProduceTopic> = Vec::new();
    let mut trailer = Vec::with_capacity(batches.len());
    for (tp, b) in batches {
        let partition = ProducePartition {
            partition: tp.1,
            records_bytes: b.bytes.len() as u32,
        };
        match topics.iter_mut().find(|t| *t.name == *tp.0) {
            Some(t) => t.partitions.push(partition),
            None => topics.push(ProduceTopic {
                name: tp.0.to_string(),
                partitions: vec![partition],
            }),
        }
    }
    // The trailer must follow the body's order: topic by topic.
    for t in &topics {
        for p in &t.partitions {
            let (_, b) = batches
                .iter()
                .find(|(tp, _)| *tp.0 == *t.name && tp.1 == p.partition)
                .expect("listed above");
            trailer.push(b.bytes.clone());
        }
    }
    let req = ProduceRequest {
        acks: acks as i32,
        timeout_ms: inner.config.client.request_timeout.as_millis().min(u32::MAX as u128) as u32,
        topics,
    };
    if acks == Acks::None {
        inner.client.send_only(&req, trailer).await.map(|()| None)
    } else {
        inner.client.start_call(&req, trailer, Duration::ZERO).await.map(Some)
    }
}

/// Awaits a started Produce request's response and completes (or retries) its batches.
async fn finish_request(
    inner: Arc<Inner>,
    batches: Vec<(PartitionKey, Batch)>,
    started: Result<Option<PendingCall<ProduceRequest>>>,
) {
    let outcome: Result<Option<ProduceResponse>> = match started {
        Ok(Some(call)) => call.response().await.map(|(r, _)| Some(r)),
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    for (tp, batch) in batches {
        let result = match &outcome {
            Err(e) => Err(e.clone()),
            Ok(None) => Ok((-1, -1)),
            Ok(Some(resp)) => partition_result(resp, &tp),
        };
        let in_time = batch.created.elapsed() < inner.config.delivery_timeout;
        match result {
            Err(e) if in_time && batch.seq.is_some() && e.code() == Some(ErrorCode::OutOfOrderSequenceNumber) => {
                inner.out_of_order(&tp, batch, &e)
            }
            Err(e) if e.is_retriable() && in_time => inner.retry(&tp, batch, &e),
            Err(e) => {
                if is_unknown_topic(&e) {
                    inner.client.forget_topic(&tp.0);
                }
                inner.complete(&tp, batch, Err(e))
            }
            Ok(r) => inner.complete(&tp, batch, Ok(r)),
        }
    }
}

fn partition_result(resp: &ProduceResponse, tp: &PartitionKey) -> Result<(i64, i64)> {
    let p = resp
        .topics
        .iter()
        .filter(|t| *t.name == *tp.0)
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition == tp.1)
        .ok_or_else(|| Error::Protocol(format!("produce response lacks {}-{}", tp.0, tp.1)))?;
    check(p.error_code, &p.error_message)?;
    Ok((p.base_offset, p.log_append_time_ms))
}

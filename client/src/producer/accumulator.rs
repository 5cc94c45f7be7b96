//! The accumulator: per partition an open batch being filled and sealed batches waiting
//! for the sender, under one std mutex held only to move records and batches in and out
//! (never across I/O or `.await`). The sender takes what is ready, completes what the
//! broker answered and requeues retries in send order.

use super::*;

/// A batch being filled, or sealed and waiting for the sender.
pub(super) struct OpenBatch {
    pub(super) builder: BatchBuilder,
    /// Its records' delivery futures; `records` of them handed out.
    pub(super) completion: Completion,
    pub(super) records: u32,
    pub(super) reserved_bytes: usize,
    pub(super) created: Instant,
    /// Its numbers, given when it is first taken for sending (idempotence).
    pub(super) seq: Option<Sequenced>,
}

/// A batch encoded for the wire, possibly on its second or later attempt.
pub(super) struct Batch {
    pub(super) bytes: Bytes,
    pub(super) completion: Completion,
    pub(super) reserved_bytes: usize,
    pub(super) created: Instant,
    pub(super) attempts: u32,
    pub(super) records: u32,
    pub(super) seq: Option<Sequenced>,
}

/// The longest backoff after a leader error (see `retry`).
const LEADER_RETRY_MAX: std::time::Duration = std::time::Duration::from_millis(100);

pub(super) enum Queued {
    Fresh(OpenBatch),
    Retry(Batch),
}

#[derive(Default)]
pub(super) struct PartitionQueue {
    pub(super) open: Option<OpenBatch>,
    pub(super) sealed: VecDeque<Queued>,
    /// Requests of this partition sent and not yet completed.
    pub(super) in_flight: usize,
    pub(super) retry_at: Option<Instant>,
    /// The client's routes version when the backoff began: a leader change since ends
    /// it (the retry goes to the new leader at once).
    pub(super) retry_routes: u64,
    pub(super) seq: Sequences,
}

/// Per-record maps hash with foldhash: SipHash of the topic name was a visible cost.
pub(super) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Default)]
pub(super) struct State {
    pub(super) queues: FastMap<PartitionKey, PartitionQueue>,
    pub(super) topics: FastMap<Arc<str>, TopicState>,
    /// `flush` calls under way: lingering is off while any is.
    pub(super) flushing: usize,
    /// Batches created and not yet completed (open, sealed or in flight).
    pub(super) outstanding: usize,
}

/// What `send` needs to know of a topic, kept under the accumulator's lock.
pub(super) struct TopicState {
    /// Partition count, as the client's metadata cache said at `version`.
    pub(super) partitions: u32,
    pub(super) version: u64,
    /// The partition keyless records stick to.
    pub(super) sticky: u32,
}

pub(super) struct Inner {
    pub(super) client: Client,
    pub(super) config: ProducerConfig,
    /// `Some` when the producer is idempotent.
    pub(super) producer_id: Option<ProducerId>,
    pub(super) state: Mutex<State>,
    pub(super) memory: Arc<Semaphore>,
    /// Wakes the sender: a batch sealed or opened, a request done, a flush, close.
    pub(super) wake: Notify,
    /// Wakes `flush` callers when batches complete.
    pub(super) progress: Notify,
    pub(super) closed: AtomicBool,
}

/// Once the sticky partition's batch is sealed or sent, keyless records move on.
pub(super) fn rotate_sticky(st: &mut State, tp: &PartitionKey) {
    if let Some(t) = st.topics.get_mut(&tp.0) {
        if t.sticky == tp.1 {
            t.sticky = next_sticky(Some(t.sticky), t.partitions);
        }
    }
}

impl Inner {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// Takes the next batch of every partition that may send now: not in flight, not
    /// backing off, and with a sealed batch, or an open one past its linger (or a flush
    /// or close under way). Returns them and when to look again.
    pub(super) fn take_ready(&self, routes_version: u64) -> (Vec<(PartitionKey, Queued)>, Option<Instant>) {
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
                if at > now && q.retry_routes >= routes_version {
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
    pub(super) fn complete(&self, tp: &PartitionKey, batch: Batch, result: Result<(i64, i64)>) {
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
                } else {
                    q.seq.acked(s);
                }
            }
        }
        drop(st);
        self.progress.notify_waiters();
        self.wake.notify_one();
    }

    /// Puts a batch back at the head of its partition's queue after a retriable error.
    /// A leader error (the leader moved or cannot be reached) backs off at most
    /// `LEADER_RETRY_MAX`, each retry refreshing the routes from the next broker, so a
    /// new leader is found soon after it is elected; `routes_version` is the client's
    /// before that refresh.
    pub(super) fn retry(&self, tp: &PartitionKey, mut batch: Batch, error: &Error, routes_version: u64) {
        batch.attempts += 1;
        let cfg = &self.config;
        let mut backoff = cfg
            .retry_backoff
            .saturating_mul(1 << batch.attempts.min(16))
            .min(cfg.retry_backoff_max);
        if crate::client::leader_moved(error) {
            backoff = backoff.min(LEADER_RETRY_MAX);
        }
        debug!(topic = %tp.0, partition = tp.1, attempt = batch.attempts, ?backoff, error = %error, "retrying batch");
        let mut st = self.lock();
        let q = st.queues.entry(tp.clone()).or_default();
        q.in_flight = q.in_flight.saturating_sub(1);
        q.retry_at = Some(Instant::now() + backoff);
        q.retry_routes = routes_version;
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
    pub(super) fn out_of_order(&self, tp: &PartitionKey, batch: Batch, error: &Error, routes_version: u64) {
        if let (Some(pid), Some(s)) = (self.producer_id, batch.seq) {
            let mut st = self.lock();
            let q = st.queues.entry(tp.clone()).or_default();
            if q.seq.written(s) {
                // Acknowledged without its offset (-1), as Kafka's producer does: renumbering
                // it under a new epoch would write it twice.
                drop(st);
                self.complete(tp, batch, Ok((-1, -1)));
                return;
            }
            let overtook = q.seq.unacked.first().is_some_and(|first| *first < s.ordinal);
            if !overtook {
                next_epoch(pid, &mut q.seq, s.epoch);
            }
        }
        self.retry(tp, batch, error, routes_version);
    }
}

//! The workload and the checker of the fault tests and the fault campaign: an idempotent
//! producer writing `{partition}-{seq}` round-robin all along, and a checker that reads
//! everything back — every acknowledged record present exactly once per partition, in
//! the order sent — and compares the replicas byte for byte below the high watermark.
//! Every wait is bounded by [`LIMIT`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use runnel_client::{
    Acks, Admin, ClientConfig, Consumer, ConsumerConfig, Offset, OffsetReset, PartitionInfo, Producer, ProducerConfig,
    ProducerRecord,
};

use super::{compare_replicas, replica_batches, Batches, FaultCluster};

/// The bound on every wait here.
pub const LIMIT: Duration = Duration::from_secs(60);

/// An admin client on a broker of `c` once every running broker is live and there is a
/// controller (bounded).
pub async fn admin(c: &FaultCluster) -> Admin {
    let cfg = ClientConfig {
        request_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    };
    let start = Instant::now();
    loop {
        for id in c.running() {
            if let Ok(a) = Admin::connect_with(c.addr(id), cfg.clone()).await {
                if let Ok(d) = a.describe_cluster().await {
                    let live = d.brokers.iter().filter(|b| !b.fenced).count();
                    if d.controller_id >= 0 && live == c.running().len() {
                        return a;
                    }
                }
            }
        }
        assert!(start.elapsed() < LIMIT, "the cluster did not form");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn create(admin: &Admin, topic: &str, partitions: u32, rf: i32, configs: &[(&str, &str)]) {
    let configs: BTreeMap<String, String> = configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    admin
        .create_replicated_topic(topic, partitions, rf, configs)
        .await
        .unwrap();
    wait_partitions(admin, topic, "every replica in sync", |p| {
        p.isr.len() == p.replicas.len()
    })
    .await;
}

/// Polls the topic's description until `ok` holds for every partition (bounded).
pub async fn wait_partitions(
    admin: &Admin,
    topic: &str,
    what: &str,
    ok: impl Fn(&PartitionInfo) -> bool,
) -> Vec<PartitionInfo> {
    let start = Instant::now();
    loop {
        if let Ok(d) = admin.describe_topic(topic).await {
            if !d.partitions.is_empty() && d.partitions.iter().all(&ok) {
                return d.partitions;
            }
            assert!(start.elapsed() < LIMIT, "{topic}: {what}: {:?}", d.partitions);
        } else {
            assert!(start.elapsed() < LIMIT, "{topic}: {what}: no description");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the writer sent and what was acknowledged, per partition, in send order.
#[derive(Default)]
pub struct Sent {
    pub acked: BTreeMap<u32, Vec<u64>>,
    pub failed: BTreeMap<u32, Vec<u64>>,
    /// Each acknowledgement's offset and when it arrived, per partition, in arrival
    /// order (which broker acknowledged follows from the offset: see
    /// [`Writer::first_ack_from`]).
    pub acked_at: BTreeMap<u32, Vec<(i64, Instant)>>,
}

impl Sent {
    fn record(&mut self, p: u32, n: u64, r: runnel_client::Result<runnel_client::RecordMetadata>) {
        match r {
            Ok(m) => {
                self.acked.entry(p).or_default().push(n);
                self.acked_at.entry(p).or_default().push((m.offset, Instant::now()));
            }
            Err(_) => self.failed.entry(p).or_default().push(n),
        }
    }
}

/// An idempotent acks=all producer writing `{partition}-{seq}` round-robin until stopped.
pub struct Writer {
    stop: Arc<AtomicBool>,
    sent: Arc<Mutex<Sent>>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    pub fn start(bootstrap: String, topic: &str, partitions: u32, acks: Acks) -> Writer {
        Writer::start_at(bootstrap, topic, partitions, acks, None, Duration::from_secs(10))
    }

    /// As `start`, sending at most `rate` records a second when given, each request
    /// timing out after `request_timeout` (then retried, on the leader the metadata
    /// names by then).
    pub fn start_at(
        bootstrap: String,
        topic: &str,
        partitions: u32,
        acks: Acks,
        rate: Option<u32>,
        request_timeout: Duration,
    ) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(Mutex::new(Sent::default()));
        let (s, st, topic) = (stop.clone(), sent.clone(), topic.to_owned());
        let task = tokio::spawn(async move {
            let cfg = ProducerConfig {
                acks,
                linger: Duration::from_millis(2),
                delivery_timeout: Duration::from_secs(40),
                client: ClientConfig {
                    request_timeout,
                    ..ProducerConfig::default().client
                },
                ..ProducerConfig::default()
            };
            let producer = Producer::connect(bootstrap, cfg).await.unwrap();
            let mut pending = FuturesUnordered::new();
            let mut seq = 0u64;
            let started = Instant::now();
            while !s.load(Ordering::Acquire) {
                let allowed = rate.map_or(u64::MAX, |r| {
                    (started.elapsed().as_secs_f64() * f64::from(r)) as u64 + 1
                });
                if seq >= allowed && pending.is_empty() {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                while pending.len() < 64 && seq < allowed && !s.load(Ordering::Acquire) {
                    let p = (seq % partitions as u64) as u32;
                    let n = seq / partitions as u64;
                    let record = ProducerRecord::new(topic.as_str(), format!("{p}-{n}")).partition(p);
                    let d = producer.send(record).await.unwrap();
                    pending.push(async move { (p, n, d.await) });
                    seq += 1;
                }
                if let Some((p, n, r)) = pending.next().await {
                    st.lock().unwrap().record(p, n, r);
                }
            }
            while let Some((p, n, r)) = pending.next().await {
                st.lock().unwrap().record(p, n, r);
            }
            producer.close().await;
        });
        Writer { stop, sent, task }
    }

    pub fn acked(&self) -> usize {
        self.sent.lock().unwrap().acked.values().map(Vec::len).sum()
    }

    /// Records acknowledged in partition `p` so far.
    pub fn acked_in(&self, p: u32) -> usize {
        self.sent.lock().unwrap().acked.get(&p).map_or(0, Vec::len)
    }

    /// When the first record of partition `p` at or past `offset` was acknowledged, if
    /// one was: with `offset` where a new leader's epoch begins, the first record that
    /// leader acknowledged.
    pub fn first_ack_from(&self, p: u32, offset: i64) -> Option<Instant> {
        let st = self.sent.lock().unwrap();
        st.acked_at
            .get(&p)?
            .iter()
            .filter(|(o, _)| *o >= offset)
            .map(|(_, t)| *t)
            .min()
    }

    /// Waits until `n` more records are acknowledged than now (bounded).
    pub async fn progress(&self, n: usize, what: &str) {
        let target = self.acked() + n;
        let start = Instant::now();
        while self.acked() < target {
            assert!(start.elapsed() < LIMIT, "{what}: only {} acknowledged", self.acked());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn finish(self) -> Sent {
        self.stop.store(true, Ordering::Release);
        tokio::time::timeout(Duration::from_secs(90), self.task)
            .await
            .expect("the writer stops")
            .unwrap();
        Arc::try_unwrap(self.sent).ok().unwrap().into_inner().unwrap()
    }
}

/// Each partition's high watermark once it has reached its leader's log end (the
/// writer has stopped; a newly elected leader's high watermark catches up as its
/// followers fetch). The log end is asked of the leader itself: a broker's Metadata
/// reports its own copy's. Bounded.
pub async fn settled_high_watermarks(
    c: &FaultCluster,
    admin: &Admin,
    topic: &str,
    partitions: u32,
) -> BTreeMap<u32, i64> {
    let start = Instant::now();
    loop {
        let mut ends = BTreeMap::new();
        if let Ok(d) = admin.describe_topic(topic).await {
            for p in d.partitions.iter().filter(|p| p.leader >= 0) {
                if let Ok(on_leader) = Admin::connect(c.addr(p.leader)).await {
                    if let Ok(d) = on_leader.describe_topic(topic).await {
                        if let Some(x) = d.partitions.iter().find(|x| x.partition == p.partition) {
                            ends.insert(p.partition, x.end_offset);
                        }
                    }
                }
            }
        }
        let mut hw = BTreeMap::new();
        for p in 0..partitions {
            if let Ok(Some(h)) = admin.list_offset(topic, p, Offset::Latest).await {
                hw.insert(p, h);
            }
        }
        if hw.len() == partitions as usize && hw.iter().all(|(p, h)| ends.get(p) == Some(h)) {
            return hw;
        }
        assert!(
            start.elapsed() < LIMIT,
            "{topic}: high watermarks {hw:?} never reached the leaders' log ends {ends:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads every partition from offset 0 to its high watermark: `(partition, seq)` per
/// record, in offset order.
pub async fn read_back(c: &FaultCluster, admin: &Admin, topic: &str, partitions: u32) -> BTreeMap<u32, Vec<u64>> {
    let hw = settled_high_watermarks(c, admin, topic, partitions).await;
    let bootstrap = c.bootstrap();
    let cfg = ConsumerConfig {
        auto_offset_reset: OffsetReset::Earliest,
        ..Default::default()
    };
    let mut consumer = Consumer::connect(bootstrap, cfg).await.unwrap();
    consumer
        .assign((0..partitions).map(|p| (topic.to_owned(), p)))
        .await
        .unwrap();
    let mut got: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let mut done: BTreeSet<u32> = hw.iter().filter(|(_, h)| **h == 0).map(|(p, _)| *p).collect();
    let start = Instant::now();
    while done.len() < partitions as usize {
        assert!(start.elapsed() < LIMIT, "read back: {done:?} of {hw:?} done");
        let Ok(Some(r)) = tokio::time::timeout(Duration::from_secs(5), consumer.next()).await else {
            continue;
        };
        let Ok(r) = r else { continue };
        let v = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
        let (p, n) = v.split_once('-').expect("a writer's value");
        assert_eq!(p.parse::<u32>().unwrap(), r.partition, "{v} in the wrong partition");
        got.entry(r.partition).or_default().push(n.parse().unwrap());
        if r.offset + 1 >= hw[&r.partition] {
            done.insert(r.partition);
        }
    }
    got
}

/// What the checker found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Records acknowledged to the writer.
    pub acked: usize,
    /// Acknowledged records not read back.
    pub lost: usize,
    /// Records read back more than once.
    pub duplicates: usize,
    /// Partitions whose records are not in the order sent.
    pub out_of_order: usize,
    /// Partitions whose replicas differ below the high watermark (or never reached it).
    pub divergent: usize,
    /// What went wrong, one line each (empty when all is well).
    pub problems: Vec<String>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The checker: reads every partition back and compares it with what was acknowledged
/// (present exactly once, in the order sent), then compares the replicas byte for byte
/// below the high watermark once every replica is back in sync.
pub async fn verify(c: &FaultCluster, admin: &Admin, topic: &str, partitions: u32, sent: &Sent) -> Report {
    let got = read_back(c, admin, topic, partitions).await;
    let mut r = Report::default();
    for p in 0..partitions {
        let values = got.get(&p).cloned().unwrap_or_default();
        let unique: BTreeSet<u64> = values.iter().copied().collect();
        if unique.len() != values.len() {
            r.duplicates += values.len() - unique.len();
            r.problems.push(format!(
                "{topic}-{p}: {} records there twice",
                values.len() - unique.len()
            ));
        }
        if !values.windows(2).all(|w| w[0] < w[1]) {
            r.out_of_order += 1;
            r.problems.push(format!("{topic}-{p}: records out of the order sent"));
        }
        let acked = sent.acked.get(&p).cloned().unwrap_or_default();
        let offsets = sent.acked_at.get(&p).cloned().unwrap_or_default();
        // Each lost record with the offset its acknowledgement gave (-1: written, its
        // own answer lost).
        let missing: Vec<(u64, i64)> = acked
            .iter()
            .enumerate()
            .filter(|(_, n)| !unique.contains(n))
            .map(|(i, n)| (*n, offsets.get(i).map_or(-1, |o| o.0)))
            .collect();
        if !missing.is_empty() {
            r.lost += missing.len();
            // When the first lost record was acknowledged, on the wall clock (to find it
            // in the brokers' logs).
            let first_at = acked
                .iter()
                .position(|n| !unique.contains(n))
                .and_then(|i| offsets.get(i))
                .map(|(_, at)| {
                    let ago = at.elapsed();
                    let when = std::time::SystemTime::now() - ago;
                    when.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis())
                });
            r.problems.push(format!(
                "{topic}-{p}: {} acknowledged records lost, first (record, acknowledged offset) {:?}, the first acknowledged at {:?} ms since the epoch",
                missing.len(),
                &missing[..missing.len().min(5)],
                first_at
            ));
        }
        r.acked += acked.len();
    }
    for problem in compare_all_replicas(c, admin, topic).await {
        r.divergent += 1;
        r.problems.push(problem);
    }
    r
}

/// [`verify`], panicking with what went wrong; the acknowledged count.
pub async fn check(c: &FaultCluster, admin: &Admin, topic: &str, partitions: u32, sent: &Sent) -> usize {
    let r = verify(c, admin, topic, partitions, sent).await;
    assert!(r.is_clean(), "{}", r.problems.join("\n"));
    r.acked
}

/// Waits until every replica is in sync and holds each partition up to its high
/// watermark, and compares them there, byte for byte: a line per divergent partition.
pub async fn compare_all_replicas(c: &FaultCluster, admin: &Admin, topic: &str) -> Vec<String> {
    let parts = wait_partitions(admin, topic, "every replica back in sync", |p| {
        p.isr.len() == p.replicas.len()
    })
    .await;
    let mut problems = Vec::new();
    for p in parts {
        let hw = admin
            .list_offset(topic, p.partition, Offset::Latest)
            .await
            .unwrap()
            .unwrap_or(0) as u64;
        let start = Instant::now();
        loop {
            let replicas: Vec<(i32, Batches)> = p
                .replicas
                .iter()
                .map(|id| (*id, replica_batches(c.dir(*id), topic, p.partition)))
                .collect();
            let reach = |b: &Batches| {
                b.last().map_or(0, |(_, bytes)| {
                    runnel_protocol::BatchHeader::parse(bytes).unwrap().next_offset() as u64
                })
            };
            if replicas.iter().all(|(_, b)| reach(b) >= hw) {
                if let Err(e) = compare_replicas(&replicas, hw) {
                    problems.push(format!(
                        "{topic}-{}: replicas differ below the high watermark {hw}: {e}",
                        p.partition
                    ));
                }
                break;
            }
            if start.elapsed() > LIMIT {
                problems.push(format!(
                    "{topic}-{}: replicas never reached the high watermark {hw}",
                    p.partition
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    problems
}

/// The leader of `topic`-`partition` once it is not `not` (bounded).
pub async fn leader_other_than(admin: &Admin, topic: &str, partition: u32, not: i32) -> i32 {
    let parts = wait_partitions(admin, topic, "a new leader", |p| {
        p.partition != partition || (p.leader >= 0 && p.leader != not)
    })
    .await;
    parts[partition as usize].leader
}

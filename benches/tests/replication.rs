//! Replication under faults: three `runnel-broker` processes on loopback (own ports and
//! data directories, links between brokers through proxies the test can cut), a
//! replication-factor-3 topic, an idempotent acks=all producer writing all along, and a
//! checker that reads everything back: every acknowledged record present exactly once per
//! partition, in the order sent, and the replicas byte-identical below the high
//! watermark. Every wait is bounded; the tests take turns (one cluster at a time on a
//! two-core machine).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use runnel_bench::faults::{compare_replicas, replica_batches, Batches, FaultCluster, Options};
use runnel_client::{
    Acks, Admin, ClientConfig, Consumer, ConsumerConfig, Offset, OffsetReset, Producer, ProducerConfig, ProducerRecord,
};

/// One cluster at a time (each test has its own runtime; this lock works across them).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const LIMIT: Duration = Duration::from_secs(60);

/// Broker settings for the tests: a follower that cannot fetch leaves the ISR in 2 s.
fn options() -> Options {
    Options {
        args: vec!["--replica-lag-time-max-ms".into(), "2000".into()],
        power_loss: None,
    }
}

async fn admin(c: &FaultCluster) -> Admin {
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

async fn create(admin: &Admin, topic: &str, partitions: u32, rf: i32, configs: &[(&str, &str)]) {
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
async fn wait_partitions(
    admin: &Admin,
    topic: &str,
    what: &str,
    ok: impl Fn(&runnel_client::PartitionInfo) -> bool,
) -> Vec<runnel_client::PartitionInfo> {
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
struct Sent {
    acked: BTreeMap<u32, Vec<u64>>,
    failed: BTreeMap<u32, Vec<u64>>,
}

/// An idempotent acks=all producer writing `{partition}-{seq}` round-robin until stopped.
struct Writer {
    stop: Arc<AtomicBool>,
    sent: Arc<Mutex<Sent>>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(bootstrap: String, topic: &str, partitions: u32, acks: Acks) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(Mutex::new(Sent::default()));
        let (s, st, topic) = (stop.clone(), sent.clone(), topic.to_owned());
        let task = tokio::spawn(async move {
            let cfg = ProducerConfig {
                acks,
                linger: Duration::from_millis(2),
                delivery_timeout: Duration::from_secs(40),
                client: ClientConfig {
                    request_timeout: Duration::from_secs(10),
                    ..ProducerConfig::default().client
                },
                ..ProducerConfig::default()
            };
            let producer = Producer::connect(bootstrap, cfg).await.unwrap();
            let mut pending = FuturesUnordered::new();
            let mut seq = 0u64;
            while !s.load(Ordering::Acquire) {
                while pending.len() < 64 && !s.load(Ordering::Acquire) {
                    let p = (seq % partitions as u64) as u32;
                    let n = seq / partitions as u64;
                    let record = ProducerRecord::new(topic.as_str(), format!("{p}-{n}")).partition(p);
                    let d = producer.send(record).await.unwrap();
                    pending.push(async move { (p, n, d.await) });
                    seq += 1;
                }
                if let Some((p, n, r)) = pending.next().await {
                    let mut st = st.lock().unwrap();
                    match r {
                        Ok(_) => st.acked.entry(p).or_default().push(n),
                        Err(_) => st.failed.entry(p).or_default().push(n),
                    }
                }
            }
            while let Some((p, n, r)) = pending.next().await {
                let mut st = st.lock().unwrap();
                match r {
                    Ok(_) => st.acked.entry(p).or_default().push(n),
                    Err(_) => st.failed.entry(p).or_default().push(n),
                }
            }
            producer.close().await;
        });
        Writer { stop, sent, task }
    }

    fn acked(&self) -> usize {
        self.sent.lock().unwrap().acked.values().map(Vec::len).sum()
    }

    /// Waits until `n` more records are acknowledged than now (bounded).
    async fn progress(&self, n: usize, what: &str) {
        let target = self.acked() + n;
        let start = Instant::now();
        while self.acked() < target {
            assert!(start.elapsed() < LIMIT, "{what}: only {} acknowledged", self.acked());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn finish(self) -> Sent {
        self.stop.store(true, Ordering::Release);
        tokio::time::timeout(Duration::from_secs(90), self.task)
            .await
            .expect("the writer stops")
            .unwrap();
        Arc::try_unwrap(self.sent).ok().unwrap().into_inner().unwrap()
    }
}

/// Reads every partition from offset 0 to its high watermark: `(partition, seq)` per
/// record, in offset order.
async fn read_back(bootstrap: &str, admin: &Admin, topic: &str, partitions: u32) -> BTreeMap<u32, Vec<u64>> {
    let mut hw = BTreeMap::new();
    for p in 0..partitions {
        hw.insert(
            p,
            admin.list_offset(topic, p, Offset::Latest).await.unwrap().unwrap_or(0),
        );
    }
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

/// The checker: every acknowledged record present exactly once per partition, in the
/// order sent (nothing else out of order either); replicas byte-identical below the
/// high watermark. Returns the acknowledged count.
async fn check(c: &FaultCluster, admin: &Admin, topic: &str, partitions: u32, sent: &Sent) -> usize {
    let got = read_back(&c.bootstrap(), admin, topic, partitions).await;
    let mut acked_total = 0;
    for p in 0..partitions {
        let values = got.get(&p).cloned().unwrap_or_default();
        let unique: BTreeSet<u64> = values.iter().copied().collect();
        assert_eq!(unique.len(), values.len(), "{topic}-{p}: a record is there twice");
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "{topic}-{p}: records out of the order sent"
        );
        let acked = sent.acked.get(&p).cloned().unwrap_or_default();
        let missing: Vec<&u64> = acked.iter().filter(|n| !unique.contains(n)).collect();
        assert!(
            missing.is_empty(),
            "{topic}-{p}: {} acknowledged records lost, first {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        acked_total += acked.len();
    }
    check_replicas(c, admin, topic).await;
    acked_total
}

/// Waits until every in-sync replica holds each partition up to its high watermark, and
/// compares them there, byte for byte.
async fn check_replicas(c: &FaultCluster, admin: &Admin, topic: &str) {
    let parts = wait_partitions(admin, topic, "every replica back in sync", |p| {
        p.isr.len() == p.replicas.len()
    })
    .await;
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
                    panic!(
                        "{topic}-{}: replicas differ below the high watermark {hw}: {e}",
                        p.partition
                    );
                }
                break;
            }
            assert!(
                start.elapsed() < LIMIT,
                "{topic}-{}: replicas never reached the high watermark {hw}",
                p.partition
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The leader of `topic`-`partition` once it is not `not` (bounded).
async fn leader_other_than(admin: &Admin, topic: &str, partition: u32, not: i32) -> i32 {
    let parts = wait_partitions(admin, topic, "a new leader", |p| {
        p.partition != partition || (p.leader >= 0 && p.leader != not)
    })
    .await;
    parts[partition as usize].leader
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_loses_no_acknowledged_record_and_two_quick_failovers_leave_identical_logs() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut c = FaultCluster::start(3, options());
    let admin = admin(&c).await;
    create(&admin, "t", 2, 3, &[]).await;
    let w = Writer::start(c.bootstrap(), "t", 2, Acks::All);
    w.progress(500, "before any fault").await;

    // kill -9 the leader of partition 0: a follower leads, the writer carries on.
    let first = admin.describe_topic("t").await.unwrap().partitions[0].leader;
    c.kill9(first);
    let second = leader_other_than(&admin, "t", 0, first).await;
    w.progress(300, "after the first leader's kill").await;

    // Two quick leader changes: the new leader dies too as soon as it leads, and the
    // first returns at once (its log has a tail nobody else may have).
    c.kill9(second);
    c.spawn(first);
    let third = leader_other_than(&admin, "t", 0, second).await;
    c.spawn(second);
    w.progress(300, "after the second leader's kill").await;
    let sent = w.finish().await;
    let admin = self::admin(&c).await;
    let acked = check(&c, &admin, "t", 2, &sent).await;
    eprintln!(
        "leaders of t-0: {first} -> {second} -> {third}; {acked} acknowledged, all read back once; replicas identical"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_cut_off_from_its_leader_leaves_the_isr_and_returns_when_healed() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let c = FaultCluster::start(3, options());
    let admin = admin(&c).await;
    create(&admin, "t", 3, 3, &[("min.insync.replicas", "2")]).await;
    // A partition whose leader is not the controller, and the follower that is neither:
    // cutting that follower from the leader leaves both in touch with the controller, so
    // the follower leaves the ISR for lagging (not for being fenced).
    let controller = admin.describe_cluster().await.unwrap().controller_id;
    let parts = admin.describe_topic("t").await.unwrap().partitions;
    let part = parts
        .iter()
        .find(|p| p.leader != controller)
        .expect("a partition led elsewhere");
    let (p, leader) = (part.partition, part.leader);
    let follower = (1..=3).find(|id| *id != leader && *id != controller).unwrap();
    let w = Writer::start(c.bootstrap(), "t", 3, Acks::All);
    w.progress(300, "before the cut").await;

    c.cut(leader, follower);
    let shrunk = Instant::now();
    wait_partitions(&admin, "t", "the cut-off follower out of the ISR", |x| {
        x.partition != p || !x.isr.contains(&follower)
    })
    .await;
    eprintln!("cut follower left the ISR in {:?}", shrunk.elapsed());
    // Writes go on with two in sync (min.insync.replicas=2).
    w.progress(300, "with the follower cut off").await;

    c.heal_all();
    let back = Instant::now();
    wait_partitions(&admin, "t", "the follower back in the ISR", |x| x.isr.len() == 3).await;
    eprintln!("healed follower back in the ISR in {:?}", back.elapsed());
    w.progress(100, "after the heal").await;
    let sent = w.finish().await;
    check(&c, &admin, "t", 3, &sent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_min_insync_replicas_writes_are_refused_and_nothing_acked_is_on_one_broker_only() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut c = FaultCluster::start(3, options());
    let admin = admin(&c).await;
    // Two replicas, both must hold a write.
    create(&admin, "t", 1, 2, &[("min.insync.replicas", "2")]).await;
    let part = admin.describe_topic("t").await.unwrap().partitions[0].clone();
    let (leader, follower) = (part.leader, *part.replicas.iter().find(|r| **r != part.leader).unwrap());
    let w = Writer::start(c.addr(leader), "t", 1, Acks::All);
    w.progress(300, "before the follower dies").await;
    c.kill9(follower);
    wait_partitions(&admin, "t", "the dead follower out of the ISR", |x| {
        x.isr == vec![leader]
    })
    .await;
    let sent = w.finish().await;

    // Now a write is refused, before anything is appended.
    let producer = Producer::connect(
        c.addr(leader),
        ProducerConfig {
            delivery_timeout: Duration::from_secs(2),
            ..ProducerConfig::default()
        },
    )
    .await
    .unwrap();
    let d = producer
        .send(ProducerRecord::new("t", "refused").partition(0))
        .await
        .unwrap();
    let err = d.await.expect_err("refused below min.insync.replicas");
    assert!(
        err.to_string().contains("NOT_ENOUGH_REPLICAS") || err.to_string().contains("min.insync.replicas"),
        "{err}"
    );
    producer.close().await;

    // Every record acknowledged was on both brokers: the dead follower's files hold them.
    let on_follower: BTreeSet<u64> = replica_batches(c.dir(follower), "t", 0)
        .into_iter()
        .flat_map(|(_, bytes)| {
            let batch = runnel_protocol::RecordBatch::new(bytes.into()).unwrap();
            batch
                .records()
                .unwrap()
                .into_iter()
                .map(|r| {
                    let v = String::from_utf8_lossy(&r.value.unwrap()).into_owned();
                    v.split_once('-').unwrap().1.parse::<u64>().unwrap()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let acked = sent.acked.get(&0).cloned().unwrap_or_default();
    let only_on_leader: Vec<&u64> = acked.iter().filter(|n| !on_follower.contains(n)).collect();
    assert!(
        only_on_leader.is_empty(),
        "{} acknowledged records were not on the follower",
        only_on_leader.len()
    );
    c.spawn(follower);
    let admin = self::admin(&c).await;
    let n = check(&c, &admin, "t", 1, &sent).await;
    eprintln!("{n} acknowledged with min.insync.replicas=2, all on both replicas; then refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leaders_power_loss_under_flush_always_loses_nothing_acknowledged() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut c = FaultCluster::start(
        3,
        Options {
            power_loss: Some("torn"),
            ..options()
        },
    );
    let admin = admin(&c).await;
    create(&admin, "t", 2, 3, &[("flush.policy", "always")]).await;
    let w = Writer::start(c.bootstrap(), "t", 2, Acks::All);
    w.progress(400, "before the power cut").await;
    let leader = admin.describe_topic("t").await.unwrap().partitions[0].leader;
    let status = c.power_loss(leader).expect("the broker dies");
    assert_eq!(status.code(), Some(137), "{status:?}");
    leader_other_than(&admin, "t", 0, leader).await;
    w.progress(300, "after the power cut").await;
    c.spawn(leader);
    w.progress(100, "with the broker back").await;
    let sent = w.finish().await;
    let admin = self::admin(&c).await;
    let n = check(&c, &admin, "t", 2, &sent).await;
    eprintln!("power loss of broker {leader} (torn writes): {n} acknowledged, none lost");
}

//! Replication under faults: three `runnel-broker` processes on loopback (own ports and
//! data directories, links between brokers through proxies the test can cut), a
//! replication-factor-3 topic, an idempotent acks=all producer writing all along, and a
//! checker that reads everything back: every acknowledged record present exactly once per
//! partition, in the order sent, and the replicas byte-identical below the high
//! watermark. Every wait is bounded; the tests take turns (one cluster at a time on a
//! two-core machine).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use runnel_bench::faults::workload::{admin, check, create, leader_other_than, wait_partitions, Writer};
use runnel_bench::faults::{replica_batches, FaultCluster, Options};
use runnel_client::{Acks, Producer, ProducerConfig, ProducerRecord};

/// One cluster at a time (each test has its own runtime; this lock works across them).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Broker settings for the tests: a follower that cannot fetch leaves the ISR in 2 s.
fn options() -> Options {
    Options {
        args: vec!["--replica-lag-time-max-ms".into(), "2000".into()],
        power_loss: None,
        kafka: false,
    }
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

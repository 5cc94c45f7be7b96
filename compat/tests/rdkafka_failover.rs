//! librdkafka through a leader's kill -9: three broker processes on loopback (the fault
//! harness of `runnel-bench`, each broker with a Kafka listener), a replication-factor-3
//! topic, an idempotent acks=all librdkafka producer sending all along while the leader
//! of a partition is killed, then a librdkafka consumer reading everything back: every
//! record whose delivery was reported is there exactly once, in the order sent.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use runnel_bench::faults::workload::{admin, create, leader_other_than};
use runnel_bench::faults::{FaultCluster, Options};

const PARTITIONS: i32 = 3;
const RECORDS: u32 = 1500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_librdkafka_producer_and_consumer_carry_on_through_a_leader_kill() {
    let mut c = FaultCluster::start(
        3,
        Options {
            kafka: true,
            ..Options::default()
        },
    );
    let native = admin(&c).await;
    create(&native, "rk", PARTITIONS as u32, 3, &[]).await;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", c.kafka_bootstrap())
        .set("broker.address.family", "v4")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "60000")
        .set("log_level", "3")
        .create()
        .unwrap();
    let victim = native.describe_topic("rk").await.unwrap().partitions[0].leader;
    let mut pending = Vec::new();
    let mut killed_at = None;
    for i in 0..RECORDS {
        let p = (i % PARTITIONS as u32) as i32;
        let value = format!("{p}-{}", i / PARTITIONS as u32);
        // Enqueued here, in order (librdkafka keeps a partition's order; the idempotent
        // producer keeps it across retries); deliveries are awaited below.
        let delivery = loop {
            match producer.send_result(FutureRecord::to("rk").partition(p).key(&value).payload(&value)) {
                Ok(d) => break d,
                Err((e, _)) => {
                    assert!(e.to_string().contains("Queue full"), "{e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        pending.push(async move {
            delivery
                .await
                .map(|r| r.map(|_| (p, value)).map_err(|(e, _)| e.to_string()))
        });
        if i == RECORDS / 3 {
            // Kill -9 the leader of partition 0 while records are in flight.
            c.kill9(victim);
            killed_at = Some(Instant::now());
        }
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut acked: BTreeMap<i32, Vec<u32>> = BTreeMap::new();
    for d in pending {
        let (p, v) = d
            .await
            .expect("not cancelled")
            .expect("every record delivered across the leader's kill");
        acked
            .entry(p)
            .or_default()
            .push(v.split_once('-').unwrap().1.parse().unwrap());
    }
    let new_leader = leader_other_than(&native, "rk", 0, victim).await;
    eprintln!(
        "librdkafka: {RECORDS} records delivered across the kill of broker {victim} ({:?} ago); partition 0 now led by {new_leader}",
        killed_at.unwrap().elapsed()
    );

    // A librdkafka consumer reads each partition from the start to its end.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", c.kafka_bootstrap())
        .set("broker.address.family", "v4")
        .set("group.id", "rk-check")
        .set("enable.auto.commit", "false")
        .set("log_level", "3")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset("rk", p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut got: BTreeMap<i32, Vec<u32>> = BTreeMap::new();
    let want = RECORDS as usize;
    let start = Instant::now();
    while got.values().map(Vec::len).sum::<usize>() < want {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "read {} of {want}",
            got.values().map(Vec::len).sum::<usize>()
        );
        let Some(m) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let Ok(m) = m else { continue };
        let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
        got.entry(m.partition())
            .or_default()
            .push(v.split_once('-').unwrap().1.parse().unwrap());
    }
    for p in 0..PARTITIONS {
        let read = got.get(&p).cloned().unwrap_or_default();
        let unique: BTreeSet<u32> = read.iter().copied().collect();
        assert_eq!(unique.len(), read.len(), "rk-{p}: a record read twice");
        assert!(read.windows(2).all(|w| w[0] < w[1]), "rk-{p}: out of the order sent");
        let mut sent = acked.get(&p).cloned().unwrap_or_default();
        sent.sort();
        let read_sorted: Vec<u32> = read.clone();
        assert_eq!(read_sorted, sent, "rk-{p}: what was read is what was delivered");
    }
}

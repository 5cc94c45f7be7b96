//! End to end through an in-process broker: producers, consumers and admin at once.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use runnel_client::{
    Acks, Admin, Consumer, ConsumerConfig, ConsumerRecord, ErrorCode, Offset, Producer, ProducerConfig, ProducerRecord,
};

const PARTITIONS: u32 = 4;
const PRODUCERS: usize = 3;
const RECORDS_PER_PRODUCER: usize = 1500;

fn value(producer: usize, seq: usize) -> String {
    format!("{producer}:{seq}")
}

fn parse(r: &ConsumerRecord) -> (usize, usize) {
    let v = std::str::from_utf8(r.value.as_deref().unwrap()).unwrap();
    let (p, s) = v.split_once(':').unwrap();
    (p.parse().unwrap(), s.parse().unwrap())
}

async fn read_n(mut consumer: Consumer, n: usize) -> Vec<ConsumerRecord> {
    let mut out = Vec::with_capacity(n);
    let mut stream = consumer.stream();
    while out.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(60), stream.next()).await;
        let record = next
            .expect("records keep coming")
            .expect("stream open")
            .expect("record");
        out.push(record);
    }
    out
}

/// An in-process broker on a temporary directory, with `topic` created.
async fn broker_with_topic(topic: &str, partitions: u32) -> (tempfile::TempDir, runnel_broker::server::Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_broker(dir.path()).await;
    let addr = common::addr(&server);
    Admin::connect(&addr)
        .await
        .unwrap()
        .create_topic(topic, partitions, BTreeMap::new())
        .await
        .unwrap();
    (dir, server, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_and_consumers_at_once_exactly_once_in_order() {
    let (_dir, server, addr) = broker_with_topic("events", PARTITIONS).await;

    // Consumers start first, from the beginning, and read while producers write.
    let total = PRODUCERS * RECORDS_PER_PRODUCER;
    let mut readers = Vec::new();
    for _ in 0..2 {
        let mut c = Consumer::connect(&addr, ConsumerConfig::default()).await.unwrap();
        c.assign_topic("events").await.unwrap();
        c.seek_all(Offset::Earliest).await.unwrap();
        readers.push(tokio::spawn(read_n(c, total)));
    }

    let mut writers = Vec::new();
    for producer in 0..PRODUCERS {
        let addr = addr.clone();
        writers.push(tokio::spawn(async move {
            let config = ProducerConfig {
                acks: [Acks::All, Acks::Leader, Acks::All][producer],
                batch_size_bytes: 2048,
                ..ProducerConfig::default()
            };
            let p = Producer::connect(&addr, config).await.unwrap();
            let mut deliveries = Vec::new();
            for seq in 0..RECORDS_PER_PRODUCER {
                let mut r = ProducerRecord::new("events", value(producer, seq));
                // Producer 0 keys its records, 1 leaves them keyless (sticky), 2 picks.
                match producer {
                    0 => r = r.key(format!("k{}", seq % 17)),
                    2 => r = r.partition((seq % PARTITIONS as usize) as u32),
                    _ => {}
                }
                deliveries.push(p.send(r).await.unwrap());
            }
            p.flush().await;
            let mut acked = Vec::new();
            for d in deliveries {
                let m = d.await.unwrap();
                acked.push((m.partition, m.offset));
            }
            acked
        }));
    }
    let mut acked = HashSet::new();
    for w in writers {
        for a in w.await.unwrap() {
            assert!(acked.insert(a), "offset {a:?} acknowledged twice");
        }
    }
    assert_eq!(acked.len(), total);

    for reader in readers {
        let records = reader.await.unwrap();
        let mut seen = HashSet::new();
        let mut last_offset: HashMap<u32, i64> = HashMap::new();
        let mut last_seq: HashMap<(u32, usize), usize> = HashMap::new();
        for r in &records {
            let (producer, seq) = parse(r);
            assert!(seen.insert((producer, seq)), "record {producer}:{seq} read twice");
            assert!(acked.contains(&(r.partition, r.offset)));
            if producer == 0 {
                // Keyed records land where Kafka's default partitioner puts them.
                let key = r.key.as_deref().unwrap();
                assert_eq!(
                    r.partition,
                    runnel_client::partitioner::partition_for_key(key, PARTITIONS)
                );
            }
            // Within a partition: dense offsets, each producer's records in send order.
            let prev = last_offset.insert(r.partition, r.offset);
            assert_eq!(r.offset, prev.map_or(0, |o| o + 1), "partition {}", r.partition);
            if let Some(prev) = last_seq.insert((r.partition, producer), seq) {
                assert!(
                    seq > prev,
                    "producer {producer} out of order in partition {}",
                    r.partition
                );
            }
        }
        assert_eq!(seen.len(), total);
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_records_survive_a_restart() {
    let (dir, server, addr) = broker_with_topic("durable", 2).await;
    let p = Producer::connect(&addr, ProducerConfig::default()).await.unwrap();
    let mut acked = Vec::new();
    for i in 0..500 {
        let d = p
            .send(ProducerRecord::new("durable", format!("v{i}")).key(format!("{i}")))
            .await
            .unwrap();
        acked.push((format!("v{i}"), d));
    }
    let mut want = BTreeMap::new();
    for (v, d) in acked {
        let m = d.await.unwrap();
        want.insert((m.partition, m.offset), v);
    }
    drop(p);
    server.shutdown().await.unwrap();

    let server = common::start_broker(dir.path()).await;
    let addr = common::addr(&server);
    let mut c = Consumer::connect(&addr, ConsumerConfig::default()).await.unwrap();
    c.assign_topic("durable").await.unwrap();
    c.seek_all(Offset::Earliest).await.unwrap();
    let mut got = BTreeMap::new();
    while got.len() < want.len() {
        let r = tokio::time::timeout(Duration::from_secs(30), c.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        got.insert(
            (r.partition, r.offset),
            String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
        );
    }
    assert_eq!(got, want);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seek_by_timestamp_latest_and_admin_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_broker(dir.path()).await;
    let addr = common::addr(&server);
    let admin = Admin::connect(&addr).await.unwrap();
    admin
        .create_topic("ts", 1, BTreeMap::from([("flush.policy".into(), "os".into())]))
        .await
        .unwrap();
    let err = admin.create_topic("ts", 1, BTreeMap::new()).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::TopicAlreadyExists), "{err}");
    let err = admin.describe_topic("nope").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownTopicOrPartition), "{err}");

    let p = Producer::connect(&addr, ProducerConfig::default()).await.unwrap();
    for i in 0..10i64 {
        p.send(ProducerRecord::new("ts", format!("{i}")).timestamp(1_000 + i * 100))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mut c = Consumer::connect(&addr, ConsumerConfig::default()).await.unwrap();
    c.assign([("ts".to_owned(), 0)]).await.unwrap();
    c.seek("ts", 0, Offset::Timestamp(1_450)).await.unwrap();
    let r = c.next().await.unwrap().unwrap();
    assert_eq!((r.offset, r.timestamp), (5, 1_500));
    c.seek("ts", 0, Offset::Latest).await.unwrap();
    assert_eq!(c.position("ts", 0), Some(10));
    // A record produced after seeking to the end arrives through the long poll.
    let next = tokio::spawn(async move { c.next().await.unwrap().unwrap() });
    tokio::time::sleep(Duration::from_millis(100)).await;
    p.send(ProducerRecord::new("ts", "late")).await.unwrap().await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), next)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r.offset, r.value.as_deref()), (10, Some(&b"late"[..])));

    let d = admin.describe_topic("ts").await.unwrap();
    assert_eq!(d.partitions[0].end_offset, 11);
    let flush = d.configs.iter().find(|c| c.key == "flush.policy").unwrap();
    assert_eq!((flush.value.as_str(), flush.is_default), ("os", false));
    admin
        .alter_configs(
            "ts",
            BTreeMap::from([("retention.ms".into(), "1000".into())]),
            vec!["flush.policy".into()],
        )
        .await
        .unwrap();
    let configs = admin.describe_configs("ts").await.unwrap();
    let get = |k: &str| configs.iter().find(|c| c.key == k).unwrap().clone();
    assert_eq!(
        (get("retention.ms").value.as_str(), get("retention.ms").is_default),
        ("1000", false)
    );
    assert!(get("flush.policy").is_default);
    admin.delete_topic("ts").await.unwrap();
    assert!(admin.list_topics().await.unwrap().is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_requests_in_flight_per_partition_keep_the_order() {
    let (_dir, _server, addr) = broker_with_topic("pipelined", 2).await;
    // Small batches and no linger: many requests per partition, up to 5 in flight each.
    let config = ProducerConfig {
        acks: Acks::Leader,
        batch_size_bytes: 256,
        linger: Duration::ZERO,
        max_in_flight_per_partition: 5,
        ..ProducerConfig::default()
    };
    let producer = Producer::connect(&addr, config).await.unwrap();
    const N: usize = 4_000;
    let topic: std::sync::Arc<str> = "pipelined".into();
    let mut deliveries = Vec::with_capacity(N);
    for i in 0..N {
        let record = ProducerRecord::new(topic.clone(), value(0, i)).partition((i % 2) as u32);
        deliveries.push(producer.send(record).await.unwrap());
    }
    let mut next = [0i64; 2];
    for (i, d) in deliveries.into_iter().enumerate() {
        let m = d.await.unwrap();
        assert_eq!(m.partition, (i % 2) as u32);
        assert_eq!(m.offset, next[i % 2], "record {i} out of order");
        next[i % 2] += 1;
    }
    producer.close().await;

    let mut c = Consumer::connect(&addr, ConsumerConfig::default()).await.unwrap();
    c.assign_topic("pipelined").await.unwrap();
    c.seek_all(Offset::Earliest).await.unwrap();
    let records = read_n(c, N).await;
    let mut last = [None::<usize>; 2];
    for r in &records {
        let (_, seq) = parse(r);
        assert_eq!(seq % 2, r.partition as usize);
        let p = r.partition as usize;
        assert!(
            last[p].is_none_or(|l| seq == l + 2),
            "partition {p}: {seq} after {:?}",
            last[p]
        );
        last[p] = Some(seq);
    }
}

/// A topic that gains partitions is seen by a running producer within its metadata max
/// age: a send to a new partition fails before and succeeds after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_producer_sees_a_topic_grow() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_broker(dir.path()).await;
    let addr = common::addr(&server);
    runnel_client::Admin::connect(&addr)
        .await
        .unwrap()
        .create_topic("grow", 1, Default::default())
        .await
        .unwrap();
    let config = runnel_client::ProducerConfig {
        client: runnel_client::ClientConfig {
            metadata_max_age: std::time::Duration::from_millis(100),
            ..Default::default()
        },
        ..Default::default()
    };
    let producer = runnel_client::Producer::connect(&addr, config).await.unwrap();
    let topic: std::sync::Arc<str> = "grow".into();
    let to = |p| runnel_client::ProducerRecord::new(topic.clone(), bytes::Bytes::from_static(b"x")).partition(p);
    producer.send(to(0)).await.unwrap().await.unwrap();
    assert!(matches!(
        producer.send(to(2)).await.err(),
        Some(runnel_client::Error::InvalidPartition { count: 1, .. })
    ));
    let storage = server.broker().storage.clone();
    tokio::task::spawn_blocking(move || storage.create_partitions("grow", 3))
        .await
        .unwrap()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let sent = loop {
        match producer.send(to(2)).await {
            Ok(d) => break d.await.unwrap(),
            Err(runnel_client::Error::InvalidPartition { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(sent.partition, 2);
    producer.close().await;
}

/// A producer that wrote to a topic does not bring it back after it is deleted: its
/// background metadata refreshes never create topics, and forget the deleted one (a
/// producer kept every topic it ever used, and with `auto_create_topics` each refresh
/// re-created deleted ones — found by the soak run's topic churn).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_topic_stays_deleted_while_a_producer_that_used_it_runs() {
    let (_dir, server, addr) = broker_with_topic("gone", 3).await;
    let config = runnel_client::ProducerConfig {
        client: runnel_client::ClientConfig {
            metadata_max_age: Duration::from_millis(50),
            // As the producer's default: a send creates a missing topic.
            auto_create_topics: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let producer = runnel_client::Producer::connect(&addr, config).await.unwrap();
    for p in 0..3 {
        producer
            .send(ProducerRecord::new("gone", "x").partition(p))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let admin = Admin::connect(&addr).await.unwrap();
    admin.delete_topic("gone").await.unwrap();
    // Many refresh periods later, it is still gone.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        server.broker().storage.topic("gone").is_none(),
        "re-created by a refresh"
    );
    assert!(admin.list_topics().await.unwrap().iter().all(|t| t.name != "gone"));
    producer.close().await;
}

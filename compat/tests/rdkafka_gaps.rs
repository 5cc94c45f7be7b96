//! librdkafka against behaviours Kafka tooling relies on: fetch size limits (KIP-74),
//! topic auto-creation, Kafka's error codes for bad names, config and record admin APIs.

mod common;

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message;
use rdkafka::{Offset as KOffset, TopicPartitionList};
use runnel_client::{Producer, ProducerConfig, ProducerRecord};

use common::{config, create_topic, start, TIMEOUT};

/// 900 KiB records on two partitions and `fetch.max.bytes` 1,000,000: a response holding
/// one batch of each (1.8 MB) made librdkafka fail with "Invalid response size" and
/// reconnect forever. Every record arrives now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_fetch_max_bytes_still_reads_large_batches_of_many_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let native = create_topic(&server, "big-batches", 2).await;
    let producer = Producer::connect(&native, ProducerConfig::default()).await.unwrap();
    let mut deliveries = Vec::new();
    for i in 0..6u32 {
        let value = vec![b'a' + i as u8; 900 * 1024];
        let r = ProducerRecord::new("big-batches", value).partition(i % 2);
        deliveries.push(producer.send(r).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    producer.close().await;

    let consumer: BaseConsumer = config(&server)
        .set("group.id", "big-batches")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "1000000")
        .set("receive.message.max.bytes", "1000512")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset("big-batches", p, KOffset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let mut got = Vec::new();
    while got.len() < 6 && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => got.push((m.partition(), m.offset(), m.payload().map_or(0, <[u8]>::len))),
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    got.sort();
    let want: Vec<(i32, i64, usize)> = (0..2).flat_map(|p| (0..3).map(move |o| (p, o, 900 * 1024))).collect();
    assert_eq!(got, want);
}

/// A librdkafka producer naming a topic that does not exist gets it created (the broker's
/// `auto_create_topics_enable`, on by default as Kafka's); one naming an illegal topic gets
/// Kafka's INVALID_TOPIC_EXCEPTION at once instead of keeping the message queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_auto_create_topics_and_illegal_names_fail_fast() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let producer: FutureProducer = config(&server).set("message.timeout.ms", "20000").create().unwrap();
    let delivered = producer
        .send(FutureRecord::to("made-on-demand").payload("hello").key("k"), TIMEOUT)
        .await;
    let d = delivered.expect("delivered to an auto-created topic");
    assert_eq!((d.partition, d.offset), (0, 0));
    assert_eq!(
        server
            .broker()
            .storage
            .topic("made-on-demand")
            .unwrap()
            .partitions
            .len(),
        1,
        "num.partitions"
    );

    let started = Instant::now();
    let refused = producer
        .send(FutureRecord::to("bad$name").payload("x").key("k"), TIMEOUT)
        .await;
    let (err, _) = refused.expect_err("an illegal topic name is refused");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "failed after {:?}: {err}",
        started.elapsed()
    );
    assert!(server.broker().storage.topic("bad$name").is_none());
}

//! The idempotent producer against lost responses: a loopback proxy between producer and
//! broker drops the broker's answers to requests it has already served and cuts the
//! connection, so the producer resends batches that are already in the log.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use runnel_client::{Acks, Admin, Consumer, ConsumerConfig, Offset, Producer, ProducerConfig, ProducerRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A proxy to `broker` on 127.0.0.1. While `cuts` is above zero, the next bytes the broker
/// sends on any connection are thrown away and that connection is closed (one cut each).
struct LossyProxy {
    addr: String,
    cuts: Arc<AtomicUsize>,
}

async fn lossy_proxy(broker: String) -> LossyProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let cuts = Arc::new(AtomicUsize::new(0));
    let armed = cuts.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&broker).await else {
                continue;
            };
            let (mut from_client, mut to_client) = client.into_split();
            let (mut from_server, mut to_server) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
            });
            let armed = armed.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match from_server.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let cut = armed
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| c.checked_sub(1))
                        .is_ok();
                    if cut || to_client.write_all(&buf[..n]).await.is_err() {
                        break; // dropping both halves closes the connection
                    }
                }
            });
        }
    });
    LossyProxy { addr, cuts }
}

const N: usize = 3_000;

fn value(i: usize) -> String {
    format!("record {i:05}")
}

/// Produces `N` records to partition 0 of `topic` through a proxy that loses the answers
/// of three requests along the way; returns the values in the partition, in offset order.
async fn produce_losing_answers(topic: &str, idempotence: bool, in_flight: usize) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_broker(dir.path()).await;
    let broker = common::addr(&server);
    let admin = Admin::connect(&broker).await.unwrap();
    admin.create_topic(topic, 1, BTreeMap::new()).await.unwrap();
    let proxy = lossy_proxy(broker.clone()).await;
    let config = ProducerConfig {
        acks: Acks::All,
        batch_size_bytes: 512,
        linger: Duration::ZERO,
        max_in_flight_per_partition: in_flight,
        retry_backoff: Duration::from_millis(5),
        retry_backoff_max: Duration::from_millis(20),
        idempotence,
        ..ProducerConfig::default()
    };
    let producer = Producer::connect(&proxy.addr, config).await.unwrap();
    let name: Arc<str> = topic.into();
    let mut deliveries = Vec::with_capacity(N);
    for i in 0..N {
        if i == N / 4 {
            // Answers already on their way are lost from here on, three times.
            proxy.cuts.store(3, Ordering::Release);
        }
        let record = ProducerRecord::new(name.clone(), value(i)).partition(0);
        deliveries.push(producer.send(record).await.unwrap());
    }
    let mut last = -1;
    for (i, d) in deliveries.into_iter().enumerate() {
        let m = d.await.unwrap_or_else(|e| panic!("record {i}: {e}"));
        assert!(m.offset > last, "record {i} acknowledged at {} after {last}", m.offset);
        last = m.offset;
    }
    producer.close().await;
    assert_eq!(proxy.cuts.load(Ordering::Acquire), 0, "all three answers were lost");

    let end = admin.list_offset(topic, 0, Offset::Latest).await.unwrap().unwrap() as usize;
    read_values(&broker, topic, end).await
}

/// The values of the first `n` records of partition 0 of `topic`.
async fn read_values(broker: &str, topic: &str, n: usize) -> Vec<String> {
    let mut consumer = Consumer::connect(broker, ConsumerConfig::default()).await.unwrap();
    consumer.assign([(topic.to_string(), 0)]).await.unwrap();
    consumer.seek_all(Offset::Earliest).await.unwrap();
    let mut stream = consumer.stream();
    let mut values = Vec::with_capacity(n);
    while values.len() < n {
        let r = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("records keep coming")
            .unwrap()
            .unwrap();
        values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
    }
    values
}

fn expected() -> Vec<String> {
    (0..N).map(value).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_are_retried_without_duplicates() {
    let values = produce_losing_answers("one-in-flight", true, 1).await;
    assert_eq!(values, expected(), "every record once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_with_five_in_flight_keep_order_and_no_duplicates() {
    let values = produce_losing_answers("five-in-flight", true, 5).await;
    assert_eq!(values, expected(), "every record once, in order");
}

/// The same run without idempotence duplicates what was resent: the proxy does lose
/// answers to appended batches, so the tests above would fail if retries were not
/// recognised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_idempotence_the_same_run_duplicates() {
    let values = produce_losing_answers("plain", false, 1).await;
    assert!(values.len() > N, "{} records for {N} sent", values.len());
    let mut unique = values.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique, expected(), "nothing lost");
}

/// A batch the broker refuses for good (too large for the topic) leaves a gap in the
/// partition's sequence numbers: the batches behind it, some already in flight, are
/// renumbered under the next epoch and all land, once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_refused_for_good_does_not_stop_its_partition() {
    for in_flight in [1, 5] {
        let dir = tempfile::tempdir().unwrap();
        let server = common::start_broker(dir.path()).await;
        let broker = common::addr(&server);
        let admin = Admin::connect(&broker).await.unwrap();
        let topic = "small";
        let configs = BTreeMap::from([("max.message.bytes".to_string(), "2000".to_string())]);
        admin.create_topic(topic, 1, configs).await.unwrap();
        let config = ProducerConfig {
            batch_size_bytes: 512,
            linger: Duration::ZERO,
            max_in_flight_per_partition: in_flight,
            ..ProducerConfig::default()
        };
        let producer = Producer::connect(&broker, config).await.unwrap();
        let name: Arc<str> = topic.into();
        let mut deliveries = Vec::with_capacity(N);
        for i in 0..N {
            let v = if i % 1000 == 500 { "x".repeat(3_000) } else { value(i) };
            deliveries.push(
                producer
                    .send(ProducerRecord::new(name.clone(), v).partition(0))
                    .await
                    .unwrap(),
            );
        }
        let mut landed = Vec::new();
        let mut refused = 0;
        for (i, d) in deliveries.into_iter().enumerate() {
            match d.await {
                Ok(_) => landed.push(value(i)),
                Err(e) => {
                    assert_eq!(
                        e.code(),
                        Some(runnel_client::ErrorCode::MessageTooLarge),
                        "record {i}: {e}"
                    );
                    refused += 1;
                }
            }
        }
        producer.close().await;
        assert!((3..N / 10).contains(&refused), "{refused} refused");
        let values = read_values(&broker, topic, landed.len()).await;
        assert_eq!(values, landed, "{in_flight} in flight");
        let end = admin.list_offset(topic, 0, Offset::Latest).await.unwrap().unwrap();
        assert_eq!(end as usize, landed.len(), "nothing else in the log");
    }
}

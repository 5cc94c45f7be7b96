//! The broker's metrics under a real client workload: a producer, then a consumer group
//! that reads everything and commits. The exposition (parsed with `openmetrics-parser`)
//! counts exactly the records that moved, fetched bytes equal produced bytes equal the
//! log's size, and the group's lag is zero once it has committed and left.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openmetrics_parser::openmetrics::parse_openmetrics;
use openmetrics_parser::OpenMetricsValue;
use runnel_broker::server::{Server, ServerConfig};
use runnel_broker::storage::{LogManager, StorageConfig};
use runnel_client::{
    Admin, Consumer, ConsumerConfig, GroupConfig, OffsetReset, Producer, ProducerConfig, ProducerRecord,
};

/// Sum of every series of `family` whose labels include `want`.
fn total(text: &str, family: &str, want: &[(&str, &str)]) -> f64 {
    let m = parse_openmetrics(text).unwrap_or_else(|e| panic!("not OpenMetrics: {e:?}"));
    let Some(f) = m.families.get(family) else { return 0.0 };
    f.iter_samples()
        .filter(|s| {
            let l = s.get_labelset().unwrap();
            want.iter().all(|(k, v)| l.get_label_value(k) == Some(*v))
        })
        .map(|s| match &s.value {
            OpenMetricsValue::Counter(c) => c.value.as_f64(),
            OpenMetricsValue::Gauge(g) => g.as_f64(),
            other => panic!("{family}: {other:?}"),
        })
        .sum()
}

fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: runnel\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.split_once("\r\n\r\n").unwrap().1.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_and_a_group_move_exactly_what_the_metrics_count() {
    let dir = tempfile::tempdir().unwrap();
    let storage = LogManager::open(StorageConfig::new(dir.path())).unwrap();
    let server = Server::bind(
        storage,
        ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
            group: common::fast_groups(),
            ..ServerConfig::default()
        },
    )
    .await
    .unwrap();
    let addr = common::addr(&server);
    let maddr = server.metrics_addr().unwrap();
    Admin::connect(&addr)
        .await
        .unwrap()
        .create_topic("mt", 2, Default::default())
        .await
        .unwrap();

    let producer = Producer::connect(&addr, ProducerConfig::default()).await.unwrap();
    let topic: Arc<str> = "mt".into();
    let mut deliveries = Vec::new();
    for i in 0..200 {
        let value = Bytes::from(format!("record {i} {}", "x".repeat(i % 50)));
        let record = ProducerRecord::new(topic.clone(), value).key(format!("k{i}"));
        deliveries.push(producer.send(record).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    producer.close().await;

    let config = ConsumerConfig {
        auto_offset_reset: OffsetReset::Earliest,
        fetch_max_wait: Duration::from_millis(50),
        group: GroupConfig {
            session_timeout: Duration::from_millis(5_000),
            ..GroupConfig::default()
        },
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::connect(&addr, config).await.unwrap();
    consumer.subscribe("mg", ["mt"]).await.unwrap();
    let mut seen = BTreeSet::new();
    while seen.len() < 200 {
        let r = tokio::time::timeout(Duration::from_secs(30), consumer.next())
            .await
            .expect("records within 30 s")
            .unwrap()
            .unwrap();
        seen.insert((r.partition, r.offset));
    }
    // Before the commit: the group lags by what it has not committed.
    let before = tokio::task::spawn_blocking(move || scrape(maddr)).await.unwrap();
    assert_eq!(total(&before, "runnel_group_members", &[("group", "mg")]), 1.0);
    consumer.close().await.unwrap();

    let text = tokio::task::spawn_blocking(move || scrape(maddr)).await.unwrap();
    let topic = [("topic", "mt")];
    assert_eq!(total(&text, "runnel_produced_records", &topic), 200.0);
    assert_eq!(total(&text, "runnel_fetched_records", &topic), 200.0);
    let log_bytes = total(&text, "runnel_log_size_bytes", &topic);
    assert_eq!(total(&text, "runnel_produced_bytes", &topic), log_bytes);
    assert_eq!(total(&text, "runnel_fetched_bytes", &topic), log_bytes);
    assert_eq!(total(&text, "runnel_log_end_offset", &topic), 200.0);
    let group = [("group", "mg")];
    assert_eq!(total(&text, "runnel_group_committed_offset", &group), 200.0);
    assert_eq!(total(&text, "runnel_group_lag_records", &group), 0.0);
    assert_eq!(total(&text, "runnel_group_lag_seconds", &group), 0.0);
    assert_eq!(total(&text, "runnel_group_members", &group), 0.0, "it left");
    assert!(total(&text, "runnel_requests", &[("api", "ConsumerGroupHeartbeat")]) >= 2.0);
    server.shutdown().await.unwrap();
}

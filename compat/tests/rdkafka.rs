//! librdkafka (the `rdkafka` crate, built from its bundled source) against the Kafka
//! listener: admin, metadata, produce with and without idempotence, consume by
//! assignment, commit and resume, offsets by timestamp, and records crossing between the
//! native and Kafka listeners field for field. Group membership: not yet (issue 6).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{ClientConfig, Offset as KOffset, TopicPartitionList};
use runnel_broker::server::{Server, ServerConfig};
use runnel_broker::storage::{LogManager, StorageConfig};
use runnel_client::{Consumer, ConsumerConfig, Offset, Producer, ProducerConfig, ProducerRecord};

const TIMEOUT: Duration = Duration::from_secs(20);

async fn start(dir: &std::path::Path) -> Server {
    let storage = LogManager::open(StorageConfig::new(dir)).unwrap();
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        kafka_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..ServerConfig::default()
    };
    Server::bind(storage, cfg).await.unwrap()
}

fn config(server: &Server) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", server.kafka_addr().unwrap().to_string())
        .set("broker.address.family", "v4")
        .set("log_level", "4");
    c
}

/// Creates `topic` through the native listener; returns that listener's address.
async fn create_topic(server: &Server, topic: &str, partitions: u32) -> String {
    let addr = server.local_addr().to_string();
    runnel_client::Admin::connect(&addr)
        .await
        .unwrap()
        .create_topic(topic, partitions, BTreeMap::new())
        .await
        .unwrap();
    addr
}

/// (partition, offset, timestamp, key, value, headers) as a Kafka client sees a record.
type Seen = (
    i32,
    i64,
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
);

fn seen<M: Message>(m: &M) -> Seen {
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default();
    (
        m.partition(),
        m.offset(),
        m.timestamp().to_millis().unwrap_or(-1),
        m.key().map(<[u8]>::to_vec),
        m.payload().map(<[u8]>::to_vec),
        headers,
    )
}

/// Reads `n` records of `topic` from the beginning of every partition, by assignment.
fn consume_all(server: &Server, topic: &str, partitions: i32, n: usize) -> Vec<Seen> {
    // librdkafka wants a group id even for assignment; nothing is committed or joined.
    let consumer: BaseConsumer = config(server)
        .set("group.id", "runnel-compat")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, KOffset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    let mut out = Vec::new();
    while out.len() < n && std::time::Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            out.push(seen(&m.unwrap()));
        }
    }
    out.sort_by_key(|s| (s.0, s.1));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_creates_produces_consumes_and_finds_offsets_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;

    // Admin: CreateTopics, and the error for a second time.
    let admin: AdminClient<DefaultClientContext> = config(&server).create().unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let topic = NewTopic::new("rk", 3, TopicReplication::Fixed(1));
    let r = admin.create_topics([&topic], &opts).await.unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let r = admin.create_topics([&topic], &opts).await.unwrap();
    assert!(r[0].is_err(), "second create must fail: {r:?}");

    // Metadata: one broker (this listener), three partitions led by it.
    let producer: FutureProducer = config(&server)
        .set("enable.idempotence", "false")
        .set("acks", "all")
        .set("linger.ms", "2")
        .create()
        .unwrap();
    let md = producer.client().fetch_metadata(Some("rk"), TIMEOUT).unwrap();
    assert_eq!(md.brokers().len(), 1);
    assert_eq!(md.brokers()[0].port() as u16, server.kafka_addr().unwrap().port());
    assert_eq!(md.topics()[0].partitions().len(), 3);

    // Produce 30 records with keys, headers and explicit timestamps.
    let base_ts = 1_700_000_000_000i64;
    let mut sent = Vec::new();
    for i in 0..30i64 {
        let key = format!("key-{i}");
        let value = format!("value {i}");
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "i",
                value: Some(&i.to_string()),
            })
            .insert(Header::<&[u8]> {
                key: "none",
                value: None,
            });
        let record = FutureRecord::to("rk")
            .partition((i % 3) as i32)
            .key(&key)
            .payload(&value)
            .timestamp(base_ts + i * 1000)
            .headers(headers);
        let delivery = producer.send(record, TIMEOUT).await.map_err(|(e, _)| e).unwrap();
        assert_eq!(delivery.partition, (i % 3) as i32);
        assert_eq!(delivery.offset, i / 3);
        sent.push((
            (i % 3) as i32,
            i / 3,
            base_ts + i * 1000,
            Some(key.into_bytes()),
            Some(value.into_bytes()),
            vec![
                ("i".to_owned(), Some(i.to_string().into_bytes())),
                ("none".to_owned(), None),
            ],
        ));
    }
    sent.sort_by_key(|s: &Seen| (s.0, s.1));
    let consumer_view = tokio::task::block_in_place(|| consume_all(&server, "rk", 3, 30));
    assert_eq!(consumer_view, sent);

    // Offsets by timestamp: the first record at or after each time.
    let consumer: BaseConsumer = config(&server).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("rk", 1, KOffset::Offset(base_ts + 4_000))
        .unwrap(); // i=4 is on 1
    tpl.add_partition_offset("rk", 2, KOffset::Offset(base_ts + 999_999))
        .unwrap();
    let found = tokio::task::block_in_place(|| consumer.offsets_for_times(tpl, TIMEOUT)).unwrap();
    let offsets: BTreeMap<i32, KOffset> = found.elements().iter().map(|e| (e.partition(), e.offset())).collect();
    assert_eq!(offsets[&1], KOffset::Offset(1));
    assert_eq!(offsets[&2], KOffset::End, "after the last record: the end (-1)");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_cross_between_native_and_kafka_clients_field_for_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let addr = create_topic(&server, "cross", 1).await;

    // Native → Kafka.
    let native = Producer::connect(&addr, ProducerConfig::default()).await.unwrap();
    let record = ProducerRecord::new("cross", "from native")
        .key("nk")
        .timestamp(1_700_000_123_456)
        .partition(0);
    let mut record = record;
    record.headers = vec![runnel_client::Header {
        key: "h".into(),
        value: Some(bytes::Bytes::from_static(b"\x00\x01binary")),
    }];
    native.send(record).await.unwrap().await.unwrap();
    native.close().await;
    let got = tokio::task::block_in_place(|| consume_all(&server, "cross", 1, 1));
    assert_eq!(
        got,
        [(
            0,
            0,
            1_700_000_123_456,
            Some(b"nk".to_vec()),
            Some(b"from native".to_vec()),
            vec![("h".to_owned(), Some(b"\x00\x01binary".to_vec()))]
        )]
    );

    // Kafka → native.
    let producer: FutureProducer = config(&server).set("enable.idempotence", "false").create().unwrap();
    let headers = OwnedHeaders::new().insert(Header {
        key: "k",
        value: Some("v"),
    });
    let record = FutureRecord::to("cross")
        .partition(0)
        .key("kk")
        .payload("from kafka")
        .timestamp(1_700_000_654_321)
        .headers(headers);
    producer.send(record, TIMEOUT).await.map_err(|(e, _)| e).unwrap();
    let mut c = Consumer::connect(&addr, ConsumerConfig::default()).await.unwrap();
    c.assign([("cross".to_string(), 0)]).await.unwrap();
    c.seek("cross", 0, Offset::At(1)).await.unwrap();
    let r = tokio::time::timeout(TIMEOUT, c.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(r.offset, 1);
    assert_eq!(r.timestamp, 1_700_000_654_321);
    assert_eq!(r.key.as_deref(), Some(&b"kk"[..]));
    assert_eq!(r.value.as_deref(), Some(&b"from kafka"[..]));
    assert_eq!(r.headers.len(), 1);
    assert_eq!(
        (r.headers[0].key.as_str(), r.headers[0].value.as_deref()),
        ("k", Some(&b"v"[..]))
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assigning_consumer_commits_and_a_new_one_resumes_there() {
    use rdkafka::consumer::CommitMode;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    create_topic(&server, "resume", 2).await;
    let producer: FutureProducer = config(&server).set("enable.idempotence", "false").create().unwrap();
    for i in 0..20 {
        let value = format!("v{i}");
        let record = FutureRecord::<(), _>::to("resume").partition(i % 2).payload(&value);
        producer.send(record, TIMEOUT).await.map_err(|(e, _)| e).unwrap();
    }
    tokio::task::block_in_place(|| {
        let group = || {
            config(&server)
                .set("group.id", "assigners")
                .set("enable.auto.commit", "false")
                .set("auto.offset.reset", "earliest")
                .create::<BaseConsumer>()
                .unwrap()
        };
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("resume", 0);
        tpl.add_partition("resume", 1);
        // Nothing committed yet: OffsetFetch says so (-1, "invalid" to librdkafka).
        let first = group();
        let committed = first.committed_offsets(tpl.clone(), TIMEOUT).unwrap();
        assert!(
            committed.elements().iter().all(|e| e.offset() == KOffset::Invalid),
            "{committed:?}"
        );
        // Read 4 records from each partition, commit 4 and 6 (the next offsets to read).
        first.assign(&tpl).unwrap();
        let mut read = 0;
        let deadline = std::time::Instant::now() + TIMEOUT;
        while read < 20 && std::time::Instant::now() < deadline {
            if first.poll(Duration::from_millis(100)).is_some() {
                read += 1;
            }
        }
        assert_eq!(read, 20);
        let mut commit = TopicPartitionList::new();
        commit.add_partition_offset("resume", 0, KOffset::Offset(4)).unwrap();
        commit.add_partition_offset("resume", 1, KOffset::Offset(6)).unwrap();
        first.commit(&commit, CommitMode::Sync).unwrap();
        drop(first);
        // A new consumer of the group resumes at the committed offsets.
        let second = group();
        let committed = second.committed_offsets(tpl.clone(), TIMEOUT).unwrap();
        let offsets: Vec<KOffset> = committed.elements().iter().map(|e| e.offset()).collect();
        assert_eq!(offsets, [KOffset::Offset(4), KOffset::Offset(6)]);
        second.assign(&tpl).unwrap();
        let mut firsts = BTreeMap::new();
        while firsts.len() < 2 && std::time::Instant::now() < deadline + TIMEOUT {
            if let Some(m) = second.poll(Duration::from_millis(100)) {
                let m = m.unwrap();
                firsts.entry(m.partition()).or_insert(m.offset());
            }
        }
        assert_eq!(firsts, BTreeMap::from([(0, 4), (1, 6)]));
    });
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_librdkafka_producer_delivers_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    create_topic(&server, "idem", 2).await;
    // InitProducerId, then sequenced batches with 5 requests in flight per connection.
    let producer: FutureProducer = config(&server)
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .set("batch.num.messages", "50")
        .create()
        .unwrap();
    let sends: Vec<_> = (0..1000)
        .map(|i| {
            let value = format!("v{i}");
            let key = format!("k{}", i % 2);
            let producer = producer.clone();
            async move {
                let record = FutureRecord::to("idem").partition(i % 2).key(&key).payload(&value);
                producer.send(record, TIMEOUT).await.map_err(|(e, _)| e)
            }
        })
        .collect();
    let deliveries = futures::future::join_all(sends).await;
    let mut next = [0i64; 2];
    for (i, d) in deliveries.into_iter().enumerate() {
        let d = d.unwrap();
        assert_eq!(d.partition, (i % 2) as i32);
        assert_eq!(d.offset, next[i % 2], "record {i} in order, once");
        next[i % 2] += 1;
    }
    let got = tokio::task::block_in_place(|| consume_all(&server, "idem", 2, 1000));
    assert_eq!(got.len(), 1000);
    for (p, offset, _, _, value, _) in &got {
        assert_eq!(
            value.as_deref(),
            Some(format!("v{}", offset * 2 + *p as i64).as_bytes())
        );
    }
    server.shutdown().await.unwrap();
}

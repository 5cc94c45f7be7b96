//! librdkafka (the `rdkafka` crate, built from its bundled source) against the Kafka
//! listener: admin, metadata, produce with and without idempotence, consume by
//! assignment, commit and resume, offsets by timestamp, and records crossing between the
//! native and Kafka listeners field for field; group consumers (classic protocol) with
//! the `range` and `cooperative-sticky` assignors as members come and go, static
//! membership, a consumer with client defaults getting records at once, and members of
//! the consumer protocol (KIP-848, `group.protocol=consumer`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Offset as KOffset, TopicPartitionList};
use runnel_broker::server::Server;
use runnel_client::{Consumer, ConsumerConfig, Offset, Producer, ProducerConfig, ProducerRecord};

mod common;
use common::{config, create_topic, start, TIMEOUT};

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

    // CreatePartitions: grow, validate only, and never shrink.
    let grow = NewTopic::new("rk-grow", 1, TopicReplication::Fixed(1));
    assert!(admin.create_topics([&grow], &opts).await.unwrap()[0].is_ok());
    let r = admin
        .create_partitions([&NewPartitions::new("rk-grow", 3)], &opts)
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let dry = AdminOptions::new().operation_timeout(Some(TIMEOUT)).validate_only(true);
    let r = admin
        .create_partitions([&NewPartitions::new("rk-grow", 5)], &dry)
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let r = admin
        .create_partitions([&NewPartitions::new("rk-grow", 2)], &opts)
        .await
        .unwrap();
    assert!(
        matches!(&r[0], Err((_, e)) if *e == rdkafka::types::RDKafkaErrorCode::InvalidPartitions),
        "{r:?}"
    );
    let md = admin.inner().fetch_metadata(Some("rk-grow"), TIMEOUT).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 3);

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

/// Counts revocations of a non-empty set of partitions (a member losing work).
#[derive(Default, Clone)]
struct Counting {
    revoked: Arc<AtomicUsize>,
}

impl ClientContext for Counting {}

impl ConsumerContext for Counting {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            if tpl.count() > 0 {
                self.revoked.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

type GroupConsumer = BaseConsumer<Counting>;

fn group_consumer(server: &Server, group: &str, assignor: &str, instance: Option<&str>) -> GroupConsumer {
    let mut c = config(server);
    c.set("group.id", group)
        .set("partition.assignment.strategy", assignor)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "200");
    if let Some(i) = instance {
        c.set("group.instance.id", i);
    }
    let consumer: GroupConsumer = c.create_with_context(Counting::default()).unwrap();
    consumer.subscribe(&["grp"]).unwrap();
    consumer
}

fn assigned(c: &GroupConsumer) -> BTreeSet<i32> {
    c.assignment()
        .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

/// Polls every consumer (which drives their rebalances), keeping what each reads and
/// committing it, until `done` holds; panics after `TIMEOUT`.
fn poll_until(
    consumers: &[&GroupConsumer],
    seen: &mut BTreeSet<(i32, i64)>,
    what: &str,
    done: impl Fn(&BTreeSet<(i32, i64)>) -> bool,
) {
    let deadline = Instant::now() + TIMEOUT;
    while !done(seen) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        poll_once(consumers, seen);
    }
}

/// One poll of each consumer: what it reads is kept, its offset stored and committed.
fn poll_once(consumers: &[&GroupConsumer], seen: &mut BTreeSet<(i32, i64)>) {
    for c in consumers {
        if let Some(m) = c.poll(Duration::from_millis(20)) {
            let m = m.unwrap();
            seen.insert((m.partition(), m.offset()));
            c.store_offset_from_message(&m).unwrap();
        }
        // Commits fail harmlessly while a rebalance is in progress or when nothing new
        // was read; the next one carries the same offsets.
        let _ = c.commit_consumer_state(CommitMode::Async);
    }
}

async fn produce_grp(server: &Server, partitions: i32, per_partition: usize) {
    let producer: FutureProducer = config(server).create().unwrap();
    let sends = (0..partitions as usize * per_partition).map(|i| {
        let value = format!("r{i}");
        let producer = producer.clone();
        async move {
            let record = FutureRecord::<(), _>::to("grp")
                .payload(&value)
                .partition((i % partitions as usize) as i32);
            producer.send(record, TIMEOUT).await.unwrap();
        }
    });
    futures::future::join_all(sends).await;
}

/// Members of one group, with `assignor`: one alone gets every partition; a second
/// splits them 3/3 with no partition held twice; records are read exactly where the
/// group committed; when the second leaves, the first gets all six back at once (not
/// after a session timeout), and the group's commits cover every record.
async fn members_come_and_go(assignor: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    create_topic(&server, "grp", 6).await;
    produce_grp(&server, 6, 50).await;
    let group = format!("g-{assignor}");
    tokio::task::block_in_place(|| {
        let mut seen = BTreeSet::new();
        let a = group_consumer(&server, &group, assignor, None);
        poll_until(&[&a], &mut seen, "the first member to read", |s| s.len() >= 30);
        assert_eq!(assigned(&a).len(), 6);

        let b = group_consumer(&server, &group, assignor, None);
        poll_until(&[&a, &b], &mut seen, "a 3/3 split", |_| {
            let (pa, pb) = (assigned(&a), assigned(&b));
            pa.len() == 3 && pb.len() == 3 && pa.is_disjoint(&pb)
        });
        poll_until(&[&a, &b], &mut seen, "all 300 records", |s| s.len() == 300);
        // The native admin sees the classic group: its protocol, members and what each holds.
        // (Described once the group is stable; the members are polled meanwhile, since
        // a cooperative assignor may still be finishing its second round.)
        let native = server.local_addr().to_string();
        let admin = tokio::runtime::Handle::current()
            .block_on(runnel_client::Admin::connect(&native))
            .unwrap();
        let deadline = Instant::now() + TIMEOUT;
        let d = loop {
            let d = tokio::runtime::Handle::current()
                .block_on(admin.describe_group(&group))
                .unwrap();
            if d.state == "Stable" || Instant::now() > deadline {
                break d;
            }
            poll_once(&[&a, &b], &mut seen);
        };
        assert_eq!((d.state.as_str(), d.assignor.as_str()), ("Stable", assignor));
        assert_eq!(d.members.len(), 2);
        for m in &d.members {
            assert_eq!(m.subscribed_topics, vec!["grp".to_string()]);
            assert_eq!(m.owned.len(), 3, "{m:?}");
        }

        // b leaves (LeaveGroup on close): a gets everything back well before b's
        // 6 s session would have expired.
        let left = Instant::now();
        drop(b);
        poll_until(&[&a], &mut seen, "a to hold all six again", |_| assigned(&a).len() == 6);
        assert!(left.elapsed() < Duration::from_secs(5), "took {:?}", left.elapsed());
        // a resumes b's partitions from b's last accepted commit (commits sent during a
        // rebalance are refused, as in Kafka) and reads on to the end; then the group's
        // commits cover every record.
        let mut tpl = TopicPartitionList::new();
        for p in 0..6 {
            tpl.add_partition("grp", p);
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            for _ in 0..20 {
                poll_once(&[&a], &mut seen);
            }
            a.commit_consumer_state(CommitMode::Sync).ok();
            let committed = a.committed_offsets(tpl.clone(), TIMEOUT).unwrap();
            let offsets: Vec<KOffset> = committed.elements().iter().map(|e| e.offset()).collect();
            if offsets.iter().all(|o| *o == KOffset::Offset(50)) {
                break;
            }
            assert!(Instant::now() < deadline, "commits stuck at {offsets:?}");
        }
    });
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_group_members_come_and_go() {
    members_come_and_go("range").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_group_members_come_and_go() {
    members_come_and_go("cooperative-sticky").await;
}

/// Static members (`group.instance.id`) that restart within their session come back to
/// their own partitions without a rebalance, the leader too: the other member never
/// loses any.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_members_restart_without_a_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    create_topic(&server, "grp", 4).await;
    tokio::task::block_in_place(|| {
        let mut seen = BTreeSet::new();
        let a = group_consumer(&server, "static", "range", Some("a"));
        let b = group_consumer(&server, "static", "range", Some("b"));
        poll_until(&[&a, &b], &mut seen, "a 2/2 split", |_| {
            assigned(&a).len() == 2 && assigned(&b).len() == 2
        });
        let (a_had, b_had) = (assigned(&a), assigned(&b));
        let revoked_before = a.context().revoked.load(Ordering::Relaxed);
        drop(b);
        let b = group_consumer(&server, "static", "range", Some("b"));
        poll_until(&[&a, &b], &mut seen, "b back", |_| assigned(&b).len() == 2);
        settle(&[&a, &b]);
        assert_eq!((assigned(&a), assigned(&b)), (a_had.clone(), b_had.clone()));
        assert_eq!(
            a.context().revoked.load(Ordering::Relaxed),
            revoked_before,
            "a lost nothing"
        );
        // Now a restarts: one of the two led the group, so one of these restarts was
        // the leader's (KIP-814), and it too costs the other member nothing.
        let b_revoked = b.context().revoked.load(Ordering::Relaxed);
        drop(a);
        let a = group_consumer(&server, "static", "range", Some("a"));
        poll_until(&[&a, &b], &mut seen, "a back", |_| assigned(&a).len() == 2);
        settle(&[&a, &b]);
        assert_eq!((assigned(&a), assigned(&b)), (a_had, b_had));
        assert_eq!(b.context().revoked.load(Ordering::Relaxed), b_revoked, "b lost nothing");
    });
    server.shutdown().await.unwrap();
}

/// Polls the consumers for 1.5 s: time for a rebalance, were one coming, to show.
fn settle(consumers: &[&GroupConsumer]) {
    let until = Instant::now() + Duration::from_millis(1_500);
    while Instant::now() < until {
        for c in consumers {
            c.poll(Duration::from_millis(20));
        }
    }
}

/// A group consumer with librdkafka's defaults (only `group.id` and where to start)
/// reads its first record within a few seconds of subscribing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_group_consumer_gets_records_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    create_topic(&server, "grp", 3).await;
    produce_grp(&server, 3, 1).await;
    tokio::task::block_in_place(|| {
        let consumer: BaseConsumer = config(&server)
            .set("group.id", "defaults")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        let started = Instant::now();
        consumer.subscribe(&["grp"]).unwrap();
        let first = loop {
            assert!(started.elapsed() < TIMEOUT, "no record");
            if let Some(m) = consumer.poll(Duration::from_millis(50)) {
                m.unwrap();
                break started.elapsed();
            }
        };
        assert!(first < Duration::from_secs(4), "first record after {first:?}");
        eprintln!("first record after {first:?}");
    });
    server.shutdown().await.unwrap();
}

/// KIP-848 members (`group.protocol=consumer`): the coordinator assigns; a second
/// member takes half the partitions once the first releases them; when it leaves, the
/// first gets them back; commits carry member epochs (OffsetCommit v9).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_protocol_members_share_and_hand_back_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    create_topic(&server, "grp", 4).await;
    produce_grp(&server, 4, 25).await;
    let member = || -> GroupConsumer {
        let consumer: GroupConsumer = config(&server)
            .set("group.id", "kip848")
            .set("group.protocol", "consumer")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create_with_context(Counting::default())
            .unwrap();
        consumer.subscribe(&["grp"]).unwrap();
        consumer
    };
    tokio::task::block_in_place(|| {
        let mut seen = BTreeSet::new();
        let a = member();
        poll_until(&[&a], &mut seen, "the first member to read", |s| !s.is_empty());
        let b = member();
        poll_until(&[&a, &b], &mut seen, "a 2/2 split", |_| {
            let (pa, pb) = (assigned(&a), assigned(&b));
            pa.len() == 2 && pb.len() == 2 && pa.is_disjoint(&pb)
        });
        poll_until(&[&a, &b], &mut seen, "all 100 records", |s| s.len() == 100);
        drop(b);
        poll_until(&[&a], &mut seen, "a to hold all four again", |_| {
            assigned(&a).len() == 4
        });
        a.commit_consumer_state(CommitMode::Sync).ok();
        let mut tpl = TopicPartitionList::new();
        for p in 0..4 {
            tpl.add_partition("grp", p);
        }
        let committed = a.committed_offsets(tpl, TIMEOUT).unwrap();
        for e in committed.elements() {
            assert_eq!(e.offset(), KOffset::Offset(25), "partition {}", e.partition());
        }
    });
    server.shutdown().await.unwrap();
}

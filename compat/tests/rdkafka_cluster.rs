//! librdkafka against a cluster of three brokers (in this process, each with its own data
//! directory, native and Kafka listeners): it bootstraps from one broker, learns every
//! broker and each partition's leader from Metadata, produces to and fetches from the
//! leaders; a broker asked for a partition it does not lead says NOT_LEADER_OR_FOLLOWER,
//! which librdkafka handles by refreshing its metadata. A subscribed group member is sent
//! by FindCoordinator to the broker leading the group's offsets partition, which alone
//! serves its commits. Every replica of a partition ends up holding its records.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use runnel_broker::cluster::ClusterConfig;
use runnel_broker::server::{Server, ServerConfig};
use runnel_broker::storage::{LogManager, StorageConfig};

const TIMEOUT: Duration = Duration::from_secs(20);

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn kafka_config(bootstrap: SocketAddr) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap.to_string())
        .set("broker.address.family", "v4")
        .set("log_level", "4");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_bootstraps_from_one_broker_and_follows_the_leaders() {
    let root = tempfile::tempdir().unwrap();
    let native: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
    let voters = native
        .iter()
        .enumerate()
        .map(|(i, a)| (i as i32 + 1, a.to_string()))
        .collect();
    let mut servers = Vec::new();
    for (i, addr) in native.iter().enumerate() {
        let storage = LogManager::open(StorageConfig::new(root.path().join(format!("b{i}")))).unwrap();
        let cfg = ServerConfig {
            listen: *addr,
            kafka_listen: Some("127.0.0.1:0".parse().unwrap()),
            cluster: ClusterConfig {
                node_id: i as i32 + 1,
                voters: std::collections::BTreeMap::clone(&voters),
                ..ClusterConfig::default()
            },
            ..ServerConfig::default()
        };
        servers.push(Server::bind(storage, cfg).await.unwrap());
    }
    let kafka: Vec<SocketAddr> = servers.iter().map(|s| s.kafka_addr().unwrap()).collect();
    let start = Instant::now();
    loop {
        let live = servers[0].broker().cluster.image().live_brokers().len();
        if live == 3 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the cluster did not form");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // CreateTopics through broker 2's Kafka listener: partitions over all three.
    let admin: AdminClient<DefaultClientContext> = kafka_config(kafka[1]).create().unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let r = admin
        .create_topics([&NewTopic::new("rkc", 6, TopicReplication::Fixed(2))], &opts)
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    // The creation was answered by broker 2; librdkafka may ask another broker, which
    // applies it a moment later.
    let start = Instant::now();
    let md = loop {
        let md = admin.inner().fetch_metadata(Some("rkc"), TIMEOUT).unwrap();
        let t = &md.topics()[0];
        if t.error().is_none() && t.partitions().len() == 6 && t.partitions().iter().all(|p| p.leader() >= 0) {
            break md;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "topic rkc never appeared everywhere"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(md.brokers().len(), 3);
    let leaders: BTreeSet<i32> = md.topics()[0].partitions().iter().map(|p| p.leader()).collect();
    assert_eq!(leaders, BTreeSet::from([1, 2, 3]));
    assert!(md.topics()[0].partitions().iter().all(|p| p.replicas().len() == 2));

    // Produce through broker 1's listener: every partition, wherever its leader is.
    let producer: FutureProducer = kafka_config(kafka[0]).create().unwrap();
    for i in 0..60i32 {
        let v = format!("v{i}");
        let d = producer
            .send(FutureRecord::<(), _>::to("rkc").partition(i % 6).payload(&v), TIMEOUT)
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        assert_eq!(d.partition, i % 6);
    }
    // Consume by assignment through broker 3's listener.
    let consumer: BaseConsumer = kafka_config(kafka[2])
        .set("group.id", "runnel-cluster")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..6 {
        tpl.add_partition_offset("rkc", p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let mut got = BTreeSet::new();
    while got.len() < 60 && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            got.insert(String::from_utf8_lossy(m.payload().unwrap()).into_owned());
        }
    }
    assert_eq!(got.len(), 60, "every record read back once");

    // A subscribed group member, bootstrapped from broker 2: FindCoordinator sends it to
    // the broker leading the group's offsets partition, which assigns it every
    // partition and takes its commits; the other brokers say they do not coordinate it.
    let member: BaseConsumer = kafka_config(kafka[1])
        .set("group.id", "rk-sub")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    member.subscribe(&["rkc"]).unwrap();
    let mut got = BTreeSet::new();
    let deadline = Instant::now() + TIMEOUT;
    while got.len() < 60 && Instant::now() < deadline {
        if let Some(m) = member.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            got.insert(String::from_utf8_lossy(m.payload().unwrap()).into_owned());
        }
    }
    assert_eq!(got.len(), 60, "the group member read every record");
    member
        .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        .unwrap();
    let offsets_partition = runnel_broker::group::partition_for("rk-sub");
    let coordinator = servers[0].broker().cluster.image().topics[runnel_broker::group::OFFSETS_LOG].partitions
        [offsets_partition as usize]
        .leader;
    for (i, s) in servers.iter().enumerate() {
        let id = i as i32 + 1;
        let committed = runnel_broker::service::groups::fetch_offsets(s.broker(), "rk-sub", None);
        match committed {
            Ok(c) if id == coordinator => {
                let total: i64 = c.iter().filter_map(|(_, o)| o.as_ref()).map(|o| o.offset).sum();
                assert_eq!(total, 60, "the coordinator (broker {id}) holds the group's commits");
            }
            Ok(_) => panic!("broker {id} answered for a group broker {coordinator} coordinates"),
            Err(f) => assert_eq!(f.code, runnel_protocol::ErrorCode::NotCoordinator, "broker {id}"),
        }
    }
    member.unsubscribe();
    // Every replica of a partition holds its records (followers copy them from the
    // leader within moments), and a broker that is not a replica holds none.
    let start = Instant::now();
    loop {
        let mut behind = Vec::new();
        for (i, s) in servers.iter().enumerate() {
            let id = i as i32 + 1;
            let image = s.broker().cluster.image();
            for (p, part) in image.topics["rkc"].partitions.iter().enumerate() {
                let end = s.broker().storage.partition("rkc", p as u32).unwrap().end_offset();
                if !part.replicas.contains(&id) {
                    assert_eq!(end, 0, "broker {id} holds records of partition {p} it is no replica of");
                } else if end != 10 {
                    behind.push((id, p, end));
                }
            }
        }
        if behind.is_empty() {
            break;
        }
        assert!(start.elapsed() < TIMEOUT, "replicas without every record: {behind:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

//! A cluster of `runnel-broker` processes on loopback (each with its own ports and data
//! directory): forming a metadata quorum, placing partitions, moving leaderships when a
//! broker is killed, shut down or returns, and refusing what must be refused. Data is not
//! replicated yet: these tests check leadership and epochs, not records. Every wait is
//! bounded.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::wire::Wire;
use runnel_protocol::messages::*;
use runnel_protocol::ErrorCode;

struct Node {
    id: i32,
    addr: SocketAddr,
    kafka: SocketAddr,
    dir: PathBuf,
    child: Option<Child>,
}

struct Cluster {
    _root: tempfile::TempDir,
    voters: String,
    nodes: Vec<Node>,
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn spawn(id: i32, addr: SocketAddr, kafka: SocketAddr, dir: &Path, voters: &str, extra: &[&str]) -> Child {
    let log = std::fs::File::create(dir.with_extension("log")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_runnel-broker"))
        .args(["--node-id", &id.to_string(), "--controller-voters", voters])
        .args(["--listen", &addr.to_string(), "--kafka-listen", &kafka.to_string()])
        .args(["--metrics-listen", "off", "--data-dir"])
        .arg(dir)
        .args(["--controller-timeout-ms", "3000"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

impl Cluster {
    fn start(n: i32) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let nodes: Vec<Node> = (1..=n)
            .map(|id| Node {
                id,
                addr: free_addr(),
                kafka: free_addr(),
                dir: root.path().join(format!("broker-{id}")),
                child: None,
            })
            .collect();
        let voters = nodes
            .iter()
            .map(|n| format!("{}@{}", n.id, n.addr))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = Cluster {
            _root: root,
            voters,
            nodes,
        };
        for id in 1..=n {
            c.restart(id);
        }
        c
    }

    fn node(&mut self, id: i32) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    fn restart(&mut self, id: i32) {
        let voters = self.voters.clone();
        let n = self.node(id);
        n.child = Some(spawn(n.id, n.addr, n.kafka, &n.dir, &voters, &[]));
    }

    fn kill9(&mut self, id: i32) {
        let mut child = self.node(id).child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM; waits (bounded) for the exit.
    fn stop(&mut self, id: i32) -> std::process::ExitStatus {
        let mut child = Reaped(self.node(id).child.take().unwrap());
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        wait_exit(&mut child.0, Duration::from_secs(20)).expect("exits after SIGTERM")
    }

    fn live_ids(&self) -> Vec<i32> {
        self.nodes.iter().filter(|n| n.child.is_some()).map(|n| n.id).collect()
    }

    /// A native connection to a running broker.
    fn wire(&self, id: i32) -> Wire {
        Wire::connect(self.nodes[(id - 1) as usize].addr)
    }

    fn describe(&self, via: i32) -> DescribeClusterResponse {
        self.wire(via).call(&DescribeClusterRequest {}, &[]).0
    }

    /// Polls `check` against broker `via` every 100 ms until it holds; panics after
    /// `limit` with the last description.
    fn wait_for(
        &self,
        via: i32,
        limit: Duration,
        what: &str,
        check: impl Fn(&DescribeClusterResponse) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            // Not listening yet (just started): ask again.
            let d = std::net::TcpStream::connect(self.nodes[(via - 1) as usize].addr)
                .ok()
                .map(|_| self.describe(via));
            if d.as_ref().is_some_and(&check) {
                return start.elapsed();
            }
            assert!(start.elapsed() < limit, "{what}: not within {limit:?}; last: {d:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn metadata(&self, via: i32, topic: &str) -> TopicMetadata {
        let (r, _) = self.wire(via).call(
            &MetadataRequest {
                topics: vec![topic.into()],
                ..Default::default()
            },
            &[],
        );
        r.topics.into_iter().next().unwrap()
    }

    fn create(&self, via: i32, name: &str, partitions: i32, rf: i32) -> TopicResult {
        let (r, _) = self.wire(via).call(
            &CreateTopicsRequest {
                topics: vec![NewTopic {
                    name: name.into(),
                    partitions,
                    replication_factor: rf,
                    ..Default::default()
                }],
                ..Default::default()
            },
            &[],
        );
        if r.error_code != 0 {
            return TopicResult {
                name: name.into(),
                error_code: r.error_code,
                error_message: r.error_message,
            };
        }
        r.topics.into_iter().next().unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// A broker process outside a `Cluster`, killed when the test ends however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn all_live(n: usize) -> impl Fn(&DescribeClusterResponse) -> bool {
    move |d| d.controller_id >= 0 && d.brokers.len() == n && d.brokers.iter().all(|b| !b.fenced)
}

fn leaders(t: &TopicMetadata) -> Vec<i32> {
    t.partitions.iter().map(|p| p.leader_id).collect()
}

const FORM: Duration = Duration::from_secs(30);

#[test]
fn a_cluster_places_partitions_and_moves_leaders_when_brokers_die_stop_and_return() {
    let mut c = Cluster::start(3);
    c.wait_for(1, FORM, "three live brokers", all_live(3));

    // Placement: 6 partitions, 2 replicas each, spread round-robin.
    let r = c.create(2, "t", 6, 2);
    assert_eq!(r.error_code, 0, "{}", r.error_message);
    let start = Instant::now();
    let t = loop {
        // Broker 3 applies the creation a moment after broker 2, which answered.
        let t = c.metadata(3, "t");
        if t.partitions.len() == 6 {
            break t;
        }
        assert!(start.elapsed() < FORM, "broker 3 never saw the topic: {t:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(t.partitions.len(), 6);
    let mut led = BTreeMap::new();
    for p in &t.partitions {
        let distinct: BTreeSet<i32> = p.replicas.iter().copied().collect();
        assert_eq!((p.replicas.len(), distinct.len()), (2, 2), "{p:?}");
        assert_eq!(p.leader_id, p.replicas[0], "the preferred replica leads");
        assert_eq!(p.isr, p.replicas, "every replica starts in sync");
        *led.entry(p.leader_id).or_insert(0) += 1;
    }
    assert_eq!(led.values().copied().collect::<Vec<_>>(), vec![2, 2, 2], "{led:?}");
    // Every broker has the topic's partition directories.
    for n in &c.nodes {
        for p in 0..6 {
            assert!(n.dir.join(format!("t-{p}")).is_dir(), "{} t-{p}", n.dir.display());
        }
    }
    let too_many = c.create(1, "wide", 1, 4);
    assert_eq!(
        ErrorCode::from_i32(too_many.error_code),
        ErrorCode::InvalidReplicationFactor
    );

    // Grow and delete a topic through different brokers: every broker follows.
    assert_eq!(c.create(3, "grown", 2, 2).error_code, 0);
    let (r, _) = c.wire(1).call(
        &CreatePartitionsRequest {
            topics: vec![PartitionsIncrease {
                topic: "grown".into(),
                count: 5,
            }],
        },
        &[],
    );
    assert_eq!(r.topics[0].error_code, 0, "{}", r.topics[0].error_message);
    let start = Instant::now();
    while c.nodes.iter().any(|n| !n.dir.join("grown-4").is_dir()) || c.metadata(2, "grown").partitions.len() != 5 {
        assert!(start.elapsed() < FORM, "not every broker has the new partitions");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (r, _) = c.wire(2).call(
        &DeleteTopicsRequest {
            topics: vec!["grown".into()],
        },
        &[],
    );
    assert_eq!(r.topics[0].error_code, 0, "{}", r.topics[0].error_message);
    let start = Instant::now();
    while c.nodes.iter().any(|n| n.dir.join("grown-0").exists()) {
        assert!(start.elapsed() < FORM, "a broker kept the deleted topic's files");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_ne!(c.metadata(3, "grown").error_code, 0, "gone everywhere");

    // Produce goes to the leader; another broker says NOT_LEADER_OR_FOLLOWER.
    let p0 = &t.partitions[0];
    let other = (1..=3).find(|b| *b != p0.leader_id).unwrap();
    let batch = common::batch(1, 3, 10, 1_700_000_000_000);
    let (refused, _) = c.wire(other).call(
        &common::wire::produce_request("t", 0, Acks::Leader, batch.len()),
        &batch,
    );
    let code = ErrorCode::from_i32(refused.topics[0].partitions[0].error_code);
    assert_eq!(code, ErrorCode::NotLeaderOrFollower);
    let ok = c.wire(p0.leader_id).produce("t", 0, Acks::Leader, &batch);
    assert_eq!(ok.error_code, 0);

    // Kafka Metadata from any broker lists all three at their Kafka addresses.
    let mut k = common::kafka::Kafka::connect(c.nodes[0].kafka);
    let meta: kafka_protocol::messages::MetadataResponse = k.call(
        kafka_protocol::messages::ApiKey::Metadata,
        12,
        &kafka_protocol::messages::MetadataRequest::default().with_topics(None),
    );
    let mut ports: Vec<i32> = meta.brokers.iter().map(|b| b.port).collect();
    ports.sort();
    let mut want: Vec<i32> = c.nodes.iter().map(|n| i32::from(n.kafka.port())).collect();
    want.sort();
    assert_eq!(ports, want);
    let dc: kafka_protocol::messages::DescribeClusterResponse = k.call(
        kafka_protocol::messages::ApiKey::DescribeCluster,
        1,
        &kafka_protocol::messages::DescribeClusterRequest::default(),
    );
    assert_eq!((dc.error_code, dc.brokers.len()), (0, 3));
    assert_eq!(dc.controller_id.0, c.describe(1).controller_id);
    assert!(!dc.cluster_id.is_empty());

    // kill -9 the controller: a new one is elected and topic admin works again.
    let controller = c.describe(1).controller_id;
    let before = c.metadata(controller % 3 + 1, "t");
    c.kill9(controller);
    let survivor = c.live_ids()[0];
    let elected = c.wait_for(survivor, FORM, "a new controller", |d| {
        d.controller_id >= 0 && d.controller_id != controller
    });
    let r = c.create(survivor, "after", 2, 1);
    assert_eq!(r.error_code, 0, "admin after a controller kill: {}", r.error_message);
    eprintln!("controller kill -9 -> new controller in {elected:?}");

    // ... and once fenced, its partitions are led by the other replica, epoch raised.
    let moved = c.wait_for(survivor, FORM, "the dead broker fenced", |d| {
        d.brokers.iter().any(|b| b.node_id == controller && b.fenced)
    });
    eprintln!("controller kill -9 -> fenced in {moved:?} (after election)");
    let after = c.metadata(survivor, "t");
    for (b, a) in before.partitions.iter().zip(&after.partitions) {
        if b.leader_id == controller {
            assert_ne!(a.leader_id, controller);
            assert!(a.replicas.contains(&a.leader_id));
            assert!(a.leader_epoch > b.leader_epoch, "{b:?} -> {a:?}");
        } else {
            assert_eq!((a.leader_id, a.leader_epoch), (b.leader_id, b.leader_epoch));
        }
    }

    // It returns: registered again (epoch 1), unfenced, and — once it has caught up and
    // its leaders put it back in the ISR — leads what it prefers.
    c.restart(controller);
    c.wait_for(survivor, FORM, "the broker back", all_live(3));
    let start = Instant::now();
    loop {
        let back = c.metadata(survivor, "t");
        if leaders(&back) == leaders(&before) {
            assert!(back.partitions.iter().all(|p| p.isr.len() == 2), "{back:?}");
            break;
        }
        assert!(start.elapsed() < FORM, "preferred leaders not restored: {back:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let d = c.describe(survivor);
    assert_eq!(d.brokers.iter().find(|b| b.node_id == controller).unwrap().epoch, 1);

    // SIGTERM: leaderships are moved before the process exits.
    let leaving = (1..=3).find(|b| *b != c.describe(1).controller_id).unwrap();
    assert!(leaders(&c.metadata(leaving, "t")).contains(&leaving));
    let status = c.stop(leaving);
    assert!(status.success(), "{status:?}");
    let asked = c.live_ids()[0];
    let now = c.metadata(asked, "t");
    assert!(!leaders(&now).contains(&leaving), "{:?}", leaders(&now));
    assert!(c
        .describe(asked)
        .brokers
        .iter()
        .any(|b| b.node_id == leaving && b.fenced));
}

#[test]
fn bad_starts_are_refused_and_a_lost_quorum_fails_admin_but_leaders_keep_serving() {
    let mut c = Cluster::start(3);
    c.wait_for(1, FORM, "three live brokers", all_live(3));
    let r = c.create(1, "t", 3, 1);
    assert_eq!(r.error_code, 0, "{}", r.error_message);

    // A second process with a taken node id: refused, exits non-zero, says why.
    let dup_dir = c._root.path().join("duplicate");
    let mut dup = Reaped(spawn(2, free_addr(), free_addr(), &dup_dir, &c.voters, &[]));
    let status = wait_exit(&mut dup.0, Duration::from_secs(30)).expect("the duplicate exits");
    assert!(!status.success());
    let log = std::fs::read_to_string(dup_dir.with_extension("log")).unwrap();
    assert!(log.contains("node id 2"), "{log}");
    c.wait_for(1, FORM, "the real broker 2 untouched", all_live(3));

    // A restart with another voter list: refused at once, nothing written.
    c.stop(3);
    let n3 = &c.nodes[2];
    let other_voters = format!("3@{}", n3.addr);
    let mut wrong = Reaped(spawn(3, n3.addr, n3.kafka, &n3.dir, &other_voters, &[]));
    let status = wait_exit(&mut wrong.0, Duration::from_secs(20)).expect("refused at start");
    assert!(!status.success());
    let log = std::fs::read_to_string(n3.dir.with_extension("log")).unwrap();
    assert!(log.contains("differs from the voters"), "{log}");
    c.restart(3);
    c.wait_for(1, FORM, "broker 3 back", all_live(3));

    // Two of three gone: no quorum. Topic admin fails with a clear timeout; the survivor
    // still serves the partitions it leads.
    let t = c.metadata(1, "t");
    c.kill9(2);
    c.kill9(3);
    let started = Instant::now();
    let r = c.create(1, "nope", 1, 1);
    assert_eq!(ErrorCode::from_i32(r.error_code), ErrorCode::RequestTimedOut, "{r:?}");
    assert!(r.error_message.contains("quorum"), "{}", r.error_message);
    assert!(started.elapsed() < Duration::from_secs(15));
    let mine = t
        .partitions
        .iter()
        .find(|p| p.leader_id == 1)
        .expect("broker 1 leads one");
    let batch = common::batch(7, 2, 10, 1_700_000_000_000);
    let ok = c.wire(1).produce("t", mine.partition, Acks::Leader, &batch);
    assert_eq!(ok.error_code, 0);
}

/// A data directory written by the release before clusters (`fixtures/single-node-v0`,
/// made by that release's broker and CLI: topic `kept` with 2 partitions and 5 records,
/// group `g` having consumed and committed all 5) starts as a one-node cluster with its
/// topic, records and committed offsets intact, and the topic recorded in the metadata.
#[test]
fn a_data_directory_from_before_clusters_upgrades_in_place() {
    let root = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/single-node-v0.tar.gz");
    let untar = Command::new("tar")
        .arg("xzf")
        .arg(&fixture)
        .arg("-C")
        .arg(root.path())
        .status()
        .unwrap();
    assert!(untar.success());
    let dir = root.path().join("single-node-v0");
    assert!(!dir.join("__cluster_raft").exists(), "the fixture predates clusters");
    let addr = free_addr();
    let child = Command::new(env!("CARGO_BIN_EXE_runnel-broker"))
        .args([
            "--listen",
            &addr.to_string(),
            "--kafka-listen",
            "off",
            "--metrics-listen",
            "off",
        ])
        .arg("--data-dir")
        .arg(&dir)
        .stderr(std::fs::File::create(root.path().join("broker.log")).unwrap())
        .spawn()
        .unwrap();
    let mut child = Reaped(child);
    let start = Instant::now();
    let mut wire = loop {
        if let Ok(s) = std::net::TcpStream::connect(addr) {
            drop(s);
            break Wire::connect(addr);
        }
        assert!(start.elapsed() < FORM, "the broker did not start");
        std::thread::sleep(Duration::from_millis(100));
    };
    // The topic is recorded in the cluster's metadata (its partitions led by node 0).
    let m = loop {
        let (m, _) = wire.call(
            &MetadataRequest {
                topics: vec!["kept".into()],
                ..Default::default()
            },
            &[],
        );
        if m.topics.first().is_some_and(|t| t.error_code == 0) {
            break m;
        }
        assert!(start.elapsed() < FORM, "topic not imported: {m:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let (d, _) = wire.call(&DescribeClusterRequest {}, &[]);
    assert!(!d.cluster_id.is_empty());
    let t = &m.topics[0];
    assert_eq!((t.error_code, t.partitions.len()), (0, 2), "{t:?}");
    let end: i64 = t.partitions.iter().map(|p| p.log_end_offset).sum();
    assert_eq!(end, 5, "records kept");
    assert!(t.partitions.iter().all(|p| p.leader_id == 0 && p.replicas == vec![0]));
    let (o, _) = wire.call(
        &OffsetFetchRequest {
            group_id: "g".into(),
            topics: Vec::new(),
        },
        &[],
    );
    let committed: i64 = o
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.offset.max(0))
        .sum();
    assert_eq!(committed, 5, "committed offsets kept: {o:?}");
    // And it still takes writes.
    let batch = common::batch(1, 1, 10, 1_700_000_000_000);
    assert_eq!(wire.produce("kept", 0, Acks::Leader, &batch).error_code, 0);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(wait_exit(&mut child.0, Duration::from_secs(20)).unwrap().success());
}

/// Five brokers: replication factor 3 placed over all five, and a leader's death moves
/// each of its partitions to another of its replicas.
#[test]
fn five_brokers_place_three_replicas_and_move_a_dead_leaders_partitions() {
    let mut c = Cluster::start(5);
    c.wait_for(1, FORM, "five live brokers", all_live(5));
    let r = c.create(4, "t5", 10, 3);
    assert_eq!(r.error_code, 0, "{}", r.error_message);
    // Broker 2 applies the creation a moment after broker 4, which answered.
    let start = Instant::now();
    let t = loop {
        let t = c.metadata(2, "t5");
        if t.partitions.len() == 10 {
            break t;
        }
        assert!(start.elapsed() < FORM, "broker 2 never saw the topic: {t:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut led = BTreeMap::new();
    for p in &t.partitions {
        let distinct: BTreeSet<i32> = p.replicas.iter().copied().collect();
        assert_eq!(distinct.len(), 3, "{p:?}");
        *led.entry(p.leader_id).or_insert(0) += 1;
    }
    assert_eq!(led.len(), 5, "every broker leads: {led:?}");
    let controller = c.describe(1).controller_id;
    let victim = (1..=5).find(|b| *b != controller).unwrap();
    c.kill9(victim);
    let witness = c.live_ids()[0];
    c.wait_for(witness, FORM, "the dead broker fenced", |d| {
        d.brokers.iter().any(|b| b.node_id == victim && b.fenced)
    });
    let after = c.metadata(witness, "t5");
    for (b, a) in t.partitions.iter().zip(&after.partitions) {
        if b.leader_id == victim {
            assert!(
                a.leader_id != victim && b.replicas.contains(&a.leader_id),
                "{b:?} -> {a:?}"
            );
            assert_eq!(a.leader_epoch, b.leader_epoch + 1);
        }
    }
    assert!(
        c.create(witness, "after", 3, 3).error_code == 0,
        "RF 3 over the four live brokers"
    );
    let too_many = c.create(witness, "wide", 1, 5);
    assert_eq!(
        ErrorCode::from_i32(too_many.error_code),
        ErrorCode::InvalidReplicationFactor
    );
}

fn retention_on(c: &Cluster, via: i32, topic: &str) -> Option<String> {
    let (r, _) = c.wire(via).call(
        &DescribeConfigsRequest {
            topics: vec![topic.into()],
        },
        &[],
    );
    let t = r.topics.into_iter().next()?;
    t.entries.into_iter().find(|e| e.key == "retention.ms").map(|e| e.value)
}

/// A broker outside the voter list joins as a learner and sees the metadata; more than
/// a snapshot's worth of metadata records (1000) leave a snapshot and a bounded log; a
/// voter whose data directory was wiped catches up from the snapshot (its topics and
/// configs restored locally).
#[test]
fn a_non_voter_joins_snapshots_bound_the_log_and_a_wiped_broker_catches_up() {
    let mut c = Cluster::start(3);
    c.wait_for(1, FORM, "three live brokers", all_live(3));
    // Broker 4: not a voter.
    let (addr4, kafka4) = (free_addr(), free_addr());
    let dir4 = c._root.path().join("broker-4");
    let _b4 = Reaped(spawn(4, addr4, kafka4, &dir4, &c.voters, &[]));
    c.wait_for(1, FORM, "the learner registered", |d| {
        d.brokers.iter().any(|b| b.node_id == 4 && !b.fenced && !b.voter)
    });
    let r = c.create(1, "cfg", 4, 1);
    assert_eq!(r.error_code, 0, "{}", r.error_message);
    // The learner applies the metadata log too: it knows the topic and leads one of its
    // partitions (placement spreads over four brokers).
    let start = Instant::now();
    let seen = loop {
        let (m, _) = Wire::connect(addr4).call(
            &MetadataRequest {
                topics: vec!["cfg".into()],
                ..Default::default()
            },
            &[],
        );
        if m.topics[0].error_code == 0 {
            break m;
        }
        assert!(start.elapsed() < FORM, "the learner never saw the topic");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(seen.topics[0].partitions.iter().any(|p| p.leader_id == 4), "{seen:?}");
    assert!(dir4.join("cfg-0").is_dir());

    // 1050 config changes: more than one snapshot's worth of records (through the
    // broker that created the topic, which has it).
    let mut w = c.wire(1);
    for i in 0..1050 {
        let (r, _) = w.call(
            &AlterConfigsRequest {
                topics: vec![TopicConfigChange {
                    name: "cfg".into(),
                    set: [("retention.ms".to_string(), (100_000 + i).to_string())].into(),
                    delete: Vec::new(),
                }],
            },
            &[],
        );
        assert_eq!(r.topics[0].error_code, 0, "{}", r.topics[0].error_message);
    }
    let raft1 = c.nodes[0].dir.join("__cluster_raft");
    let wait_snapshot = Instant::now();
    while !raft1.join("snapshot.json").exists() {
        assert!(wait_snapshot.elapsed() < FORM, "no snapshot after 1050 records");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        raft1.join("purged.json").exists(),
        "the log was purged up to the snapshot"
    );
    let start = Instant::now();
    while retention_on(&c, 3, "cfg").as_deref() != Some("101049") {
        assert!(start.elapsed() < FORM, "broker 3 never applied the last change");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Broker 3 loses its data directory; it comes back empty and catches up.
    c.kill9(3);
    std::fs::remove_dir_all(&c.nodes[2].dir).unwrap();
    c.restart(3);
    c.wait_for(1, FORM, "the wiped broker back", |d| {
        d.brokers.iter().filter(|b| !b.fenced).count() == 4 && d.brokers.iter().any(|b| b.node_id == 3 && b.epoch >= 1)
    });
    let start = Instant::now();
    while retention_on(&c, 3, "cfg").as_deref() != Some("101049") {
        assert!(start.elapsed() < FORM, "the wiped broker never caught up");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        c.nodes[2].dir.join("cfg-0").is_dir(),
        "its local copy of the topic restored"
    );
}

/// A broker whose data directory belongs to an earlier cluster (the others were
/// re-created from empty directories) is refused — its Raft messages by the voters that
/// know the new cluster's id, its registration by the controller — and exits.
#[test]
fn a_data_directory_from_another_cluster_is_refused() {
    let mut c = Cluster::start(3);
    c.wait_for(1, FORM, "three live brokers", all_live(3));
    let old_id = c.describe(1).cluster_id;
    for id in 1..=3 {
        assert!(c.stop(id).success());
    }
    for id in 1..=2 {
        std::fs::remove_dir_all(&c.nodes[(id - 1) as usize].dir).unwrap();
        c.restart(id);
    }
    c.wait_for(1, FORM, "a new cluster of two", |d| {
        d.controller_id >= 0 && d.brokers.len() == 2 && !d.cluster_id.is_empty()
    });
    let new_id = c.describe(1).cluster_id;
    assert_ne!(old_id, new_id);
    c.wait_for(2, FORM, "both new brokers know the new cluster id", |d| {
        d.cluster_id == new_id
    });
    c.restart(3);
    let mut child = Reaped(c.node(3).child.take().unwrap());
    let exited = wait_exit(&mut child.0, Duration::from_secs(30));
    let log = std::fs::read_to_string(c.nodes[2].dir.with_extension("log")).unwrap();
    let status = exited.unwrap_or_else(|| panic!("the old broker did not exit: {log}"));
    assert!(!status.success());
    assert!(
        log.contains(&old_id) && log.contains(&new_id),
        "names both clusters: {log}"
    );
    // Asked of whichever new broker answers (a port freed by the stop may have been taken
    // meanwhile by another test's process on a loaded machine).
    let d = (1..=2)
        .find_map(|id| {
            std::net::TcpStream::connect(c.nodes[(id - 1) as usize].addr)
                .ok()
                .map(|_| c.describe(id))
        })
        .expect("a new broker answers");
    assert!(d.brokers.iter().all(|b| b.node_id != 3), "never registered");
}

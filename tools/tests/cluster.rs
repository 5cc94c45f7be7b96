//! The native client and the CLI against a cluster of three `runnel-broker` processes
//! (the binary cargo built beside this test): produce and consume through any bootstrap
//! broker, each request going to its partition's leader, and carrying on when a leader is
//! killed (its partitions get new leaders, which hold every acknowledged record: the
//! test checks that everything sent before and after the kill is readable, once). Every
//! wait is bounded.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use runnel_client::{
    Admin, Consumer, ConsumerConfig, GroupConfig, OffsetReset, Producer, ProducerConfig, ProducerRecord,
};

fn broker_bin() -> PathBuf {
    // target/debug/deps/cluster-HASH -> target/debug/runnel-broker
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("runnel-broker");
    assert!(
        bin.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        bin.display()
    );
    bin
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

struct Brokers {
    root: tempfile::TempDir,
    addrs: Vec<SocketAddr>,
    voters: String,
    children: Vec<Option<Child>>,
}

impl Brokers {
    fn start(n: usize) -> Brokers {
        let root = tempfile::tempdir().unwrap();
        let addrs: Vec<SocketAddr> = (0..n).map(|_| free_addr()).collect();
        let voters = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}@{a}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut b = Brokers {
            root,
            addrs,
            voters,
            children: (0..n).map(|_| None).collect(),
        };
        for id in 1..=n as i32 {
            b.spawn(id);
        }
        b
    }

    /// Starts broker `id` (again), on its address and data directory.
    fn spawn(&mut self, id: i32) {
        let i = (id - 1) as usize;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join(format!("broker-{id}.log")))
            .unwrap();
        let child = Command::new(broker_bin())
            .args(["--node-id", &id.to_string(), "--controller-voters", &self.voters])
            .args([
                "--listen",
                &self.addrs[i].to_string(),
                "--kafka-listen",
                "off",
                "--metrics-listen",
                "off",
            ])
            .arg("--data-dir")
            .arg(self.root.path().join(format!("broker-{id}")))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        assert!(self.children[i].replace(child).is_none(), "broker {id} is running");
    }

    fn addr(&self, id: i32) -> String {
        self.addrs[(id - 1) as usize].to_string()
    }

    fn kill9(&mut self, id: i32) {
        let mut c = self.children[(id - 1) as usize].take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }
}

impl Drop for Brokers {
    fn drop(&mut self) {
        for c in self.children.iter_mut().filter_map(Option::take) {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn runnel(broker: &str, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .arg("--broker")
        .arg(broker)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// Waits until the broker `admin` talks to has applied topic `name` (bounded: 30 s):
/// a creation answered by one broker reaches the others a moment later.
async fn wait_topic(admin: &Admin, name: &str) -> runnel_client::TopicDescription {
    let start = Instant::now();
    loop {
        match admin.describe_topic(name).await {
            Ok(d) if d.partitions.iter().all(|p| p.leader >= 0) => return d,
            other => assert!(start.elapsed() < Duration::from_secs(30), "topic {name}: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_live(admin: &Admin, n: usize) {
    let start = Instant::now();
    loop {
        if let Ok(d) = admin.describe_cluster().await {
            if d.controller_id >= 0 && d.brokers.iter().filter(|b| !b.fenced).count() == n {
                return;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the cluster did not form");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads `topic` from the beginning until `done` says it has enough (bounded: 30 s).
async fn read_until(bootstrap: &str, topic: &str, partitions: u32, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let config = ConsumerConfig {
        auto_offset_reset: OffsetReset::Earliest,
        ..Default::default()
    };
    let mut consumer = Consumer::connect(bootstrap, config).await.unwrap();
    consumer
        .assign((0..partitions).map(|p| (topic.to_owned(), p)))
        .await
        .unwrap();
    let mut values = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(&values) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, consumer.next()).await {
            Ok(Some(Ok(r))) => {
                values.push(String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
            }
            Ok(Some(Err(e))) => {
                assert!(Instant::now() < deadline, "consumer error: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(None) | Err(_) => panic!("read {} records, not all that were wanted", values.len()),
        }
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_client_and_cli_follow_partition_leaders_and_carry_on_after_a_leader_dies() {
    let mut b = Brokers::start(3);
    let started = Instant::now();
    let admin = loop {
        // The brokers are starting: not listening yet.
        match Admin::connect(b.addr(2)).await {
            Ok(a) => break a,
            Err(e) => assert!(started.elapsed() < Duration::from_secs(30), "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    wait_live(&admin, 3).await;
    let out = runnel(&b.addr(3), &["topic", "create", "t", "-p", "6", "-r", "2"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let leaders: BTreeSet<i32> = wait_topic(&admin, "t")
        .await
        .partitions
        .iter()
        .map(|p| p.leader)
        .collect();
    assert_eq!(leaders.len(), 3, "partitions led by every broker: {leaders:?}");

    // A producer bootstrapped from broker 1 writes to every partition's leader.
    let producer = Producer::connect(b.addr(1), ProducerConfig::default()).await.unwrap();
    let mut sent = Vec::new();
    for i in 0..600 {
        let v = format!("a{i}");
        sent.push(
            producer
                .send(ProducerRecord::new("t", v.clone()).partition(i % 6))
                .await
                .unwrap(),
        );
    }
    for d in sent.drain(..) {
        d.await.unwrap();
    }
    // A consumer bootstrapped from broker 3 reads them all, once.
    let got = read_until(&b.addr(3), "t", 6, |v| v.len() >= 600).await;
    let unique: BTreeSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), 600);

    // The CLI, bootstrapped from a list or any one broker, produces and consumes the same
    // way.
    let created = runnel(
        &format!("{},{}", b.addr(2), b.addr(1)),
        &["topic", "create", "cli2", "-p", "3"],
        None,
    );
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    wait_topic(&Admin::connect(b.addr(1)).await.unwrap(), "cli2").await;
    wait_topic(&Admin::connect(b.addr(2)).await.unwrap(), "cli2").await;
    for p in 0..3 {
        let out = runnel(
            &b.addr(2),
            &["produce", "cli2", "-p", &p.to_string()],
            Some(&format!("line{p}\n")),
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = runnel(&b.addr(1), &["consume", "cli2", "--from", "beginning", "-e"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    assert_eq!(lines, vec!["line0", "line1", "line2"]);

    // Kill -9 a broker that leads partitions (not the one the producer bootstrapped
    // from): the producer's next records go to the new leaders, acknowledged, none lost.
    let victim = 3;
    b.kill9(victim);
    let started = Instant::now();
    let mut after = Vec::new();
    for i in 0..600 {
        let v = format!("b{i}");
        after.push(
            producer
                .send(ProducerRecord::new("t", v.clone()).partition(i % 6))
                .await
                .unwrap(),
        );
    }
    for d in after {
        tokio::time::timeout(Duration::from_secs(60), d)
            .await
            .expect("acknowledged in time")
            .expect("acknowledged after the leader moved");
    }
    eprintln!(
        "600 records acknowledged across a leader kill in {:?}",
        started.elapsed()
    );
    producer.close().await;
    let d = admin.describe_topic("t").await.unwrap();
    assert!(
        d.partitions.iter().all(|p| p.leader != victim && p.leader >= 0),
        "{:?}",
        d.partitions
    );
    // Everything acknowledged is there, once: what the dead leader held was on its
    // in-sync follower too.
    let got = read_until(&b.addr(1), "t", 6, |v| v.len() >= 1200).await;
    let unique: BTreeSet<&String> = got.iter().collect();
    assert_eq!(got.len(), unique.len(), "no record read twice");
    assert_eq!(
        unique.len(),
        1200,
        "every record acknowledged before and after the kill is readable"
    );
}

/// Polls `admin` until `group`'s coordinator satisfies `want` (bounded: 60 s).
async fn wait_coordinator(admin: &Admin, group: &str, what: &str, want: impl Fn(i32) -> bool) -> i32 {
    let start = Instant::now();
    loop {
        match admin.find_coordinator(group).await {
            Ok(c) if want(c.node_id) => return c.node_id,
            other => assert!(start.elapsed() < Duration::from_secs(60), "{what}: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `n` records `{prefix}{i}` to the two partitions of `topic`, all acknowledged.
async fn send_all(producer: &Producer, topic: &str, prefix: &str, n: u32) -> BTreeSet<String> {
    let mut pending = Vec::new();
    let mut values = BTreeSet::new();
    for i in 0..n {
        let v = format!("{prefix}{i}");
        values.insert(v.clone());
        pending.push(
            producer
                .send(ProducerRecord::new(topic, v).partition(i % 2))
                .await
                .unwrap(),
        );
    }
    for d in pending {
        tokio::time::timeout(Duration::from_secs(60), d)
            .await
            .expect("acknowledged in time")
            .expect("acknowledged");
    }
    values
}

/// Reads from the group member until every value in `wanted` has been delivered
/// (bounded: 90 s, which covers the dead coordinator's fencing and a rejoin). Records
/// delivered again after the group lost its offsets are counted, not refused.
async fn consume_all(consumer: &mut Consumer, wanted: &BTreeSet<String>, phase: &str) -> usize {
    let mut missing = wanted.clone();
    let mut delivered = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    while !missing.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, consumer.next()).await {
            Ok(Some(Ok(r))) => {
                delivered += 1;
                missing.remove(String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).as_ref());
            }
            Ok(Some(Err(e))) => {
                // A coordinator or leader moving surfaces here; the member carries on.
                eprintln!("{phase}: consumer error (retrying): {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(None) | Err(_) => panic!("{phase}: {} of {} records never delivered", missing.len(), wanted.len()),
        }
    }
    delivered
}

/// Commits the member's positions, retrying while the coordinator does not know it yet
/// (after a coordinator moved, the member's next heartbeat makes it rejoin; bounded: 60 s).
async fn commit_eventually(consumer: &mut Consumer, phase: &str) {
    let start = Instant::now();
    loop {
        match consumer.commit().await {
            Ok(()) => return,
            Err(e) => {
                assert!(start.elapsed() < Duration::from_secs(60), "{phase}: commit: {e}");
                eprintln!("{phase}: commit refused (retrying): {e}");
            }
        }
        // Records keep arriving meanwhile; reading them keeps the member polling.
        let _ = tokio::time::timeout(Duration::from_millis(200), consumer.next()).await;
    }
}

/// A consumer group keeps consuming while the broker coordinating it is killed -9 (the
/// offsets partition's leadership moves, the new coordinator answers, the member rejoins
/// there) and restarted (it takes its preferred leadership back, loads the group from its
/// log, and the member carries on against it). The topic's partitions are led by the
/// other two brokers, so what is tested is the group, not the data's availability.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_keeps_consuming_while_its_coordinator_is_killed_and_restarted() {
    let mut b = Brokers::start(3);
    let started = Instant::now();
    let admin = loop {
        match Admin::connect(b.addr(1)).await {
            Ok(a) => break a,
            Err(e) => assert!(started.elapsed() < Duration::from_secs(30), "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    wait_live(&admin, 3).await;
    admin
        .create_replicated_topic("gt", 2, 1, Default::default())
        .await
        .unwrap();
    let data_leaders: BTreeSet<i32> = wait_topic(&admin, "gt")
        .await
        .partitions
        .iter()
        .map(|p| p.leader)
        .collect();
    assert_eq!(data_leaders.len(), 2, "two partitions on two brokers");
    let victim = (1..=3).find(|id| !data_leaders.contains(id)).unwrap();
    let survivor = *data_leaders.iter().next().unwrap();
    // A group the victim coordinates (the offsets log's leaderships are spread over
    // the three brokers, so one of the first names will do).
    let mut group = None;
    for i in 0..64 {
        let g = format!("g{i}");
        if wait_coordinator(&admin, &g, "a coordinator", |_| true).await == victim {
            group = Some(g);
            break;
        }
    }
    let group = group.expect("a group coordinated by the victim");
    let admin = Admin::connect(b.addr(survivor)).await.unwrap();

    let producer = Producer::connect(b.addr(survivor), ProducerConfig::default())
        .await
        .unwrap();
    let config = ConsumerConfig {
        auto_offset_reset: OffsetReset::Earliest,
        fetch_max_wait: Duration::from_millis(100),
        group: GroupConfig {
            // Commits only where the test makes them, so what the group holds is known.
            auto_commit_interval: Duration::from_secs(3600),
            session_timeout: Duration::from_secs(6),
            ..GroupConfig::default()
        },
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::connect(b.addr(survivor), config).await.unwrap();
    consumer.subscribe(&group, ["gt"]).await.unwrap();

    let first = send_all(&producer, "gt", "a", 200).await;
    consume_all(&mut consumer, &first, "before the kill").await;
    commit_eventually(&mut consumer, "before the kill").await;

    // Kill -9 the coordinator: the group is served by another broker, which has the
    // commits (the offsets log is replicated), and the member goes on receiving what is
    // produced, nothing twice.
    b.kill9(victim);
    let killed = Instant::now();
    let interim = wait_coordinator(&admin, &group, "a new coordinator", |id| id != victim).await;
    let committed = admin.committed_offsets(&group).await.unwrap();
    assert_eq!(
        committed.values().sum::<i64>(),
        200,
        "the commits made on the killed coordinator, on the new one: {committed:?}"
    );
    let second = send_all(&producer, "gt", "b", 200).await;
    let delivered = consume_all(&mut consumer, &second, "coordinator killed").await;
    assert_eq!(
        delivered, 200,
        "no record delivered twice across the coordinator's failover"
    );
    eprintln!(
        "coordinator {victim} killed: group moved to {interim}, 200 new records consumed ({delivered} deliveries) in {:?}",
        killed.elapsed()
    );
    commit_eventually(&mut consumer, "coordinator killed").await;

    // Restart it: it takes its preferred leadership back and coordinates the group
    // again, and the member carries on.
    b.spawn(victim);
    wait_live(&admin, 3).await;
    wait_coordinator(&admin, &group, "the restarted coordinator", |id| id == victim).await;
    let committed = admin.committed_offsets(&group).await.unwrap();
    assert_eq!(
        committed.values().sum::<i64>(),
        400,
        "the commit made on the interim coordinator, on the restarted one: {committed:?}"
    );
    let restarted = Instant::now();
    let third = send_all(&producer, "gt", "c", 200).await;
    let delivered = consume_all(&mut consumer, &third, "coordinator restarted").await;
    eprintln!(
        "coordinator {victim} back: 200 new records consumed ({delivered} deliveries) in {:?}",
        restarted.elapsed()
    );
    // The commit made on the interim coordinator is on the restarted one (it copied the
    // offsets log while it followed), and its new commits land there: once the member
    // has read to the end, what it commits is the end of both partitions.
    let start = Instant::now();
    loop {
        while let Ok(Some(r)) = tokio::time::timeout(Duration::from_millis(300), consumer.next()).await {
            r.unwrap();
        }
        commit_eventually(&mut consumer, "coordinator restarted").await;
        let committed = admin.committed_offsets(&group).await.unwrap();
        if committed.values().sum::<i64>() == 600 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "committed on the restarted coordinator: {committed:?}"
        );
    }
    assert_eq!(
        admin.find_coordinator(&group).await.unwrap().node_id,
        victim,
        "the restarted broker coordinates the group"
    );
    consumer.close().await.unwrap();
    producer.close().await;
}

/// Reads a child's stdout lines on a thread of its own, into a channel.
fn lines_of(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits for `child` to exit, at most `limit` (killed then, and the test fails).
fn exit_within(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{what} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_produce_and_consume_carry_on_across_a_leader_kill() {
    use std::io::Write;
    let mut b = Brokers::start(3);
    let started = Instant::now();
    let admin = loop {
        match Admin::connect(b.addr(1)).await {
            Ok(a) => break a,
            Err(e) => assert!(started.elapsed() < Duration::from_secs(30), "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    wait_live(&admin, 3).await;
    let out = runnel(&b.addr(1), &["topic", "create", "lines", "-p", "1", "-r", "3"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let leader = wait_topic(&admin, "lines").await.partitions[0].leader;
    // Both CLI processes bootstrap from every broker but the leader about to die.
    let bootstrap = (1..=3)
        .filter(|id| *id != leader)
        .map(|id| b.addr(id))
        .collect::<Vec<_>>()
        .join(",");
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_runnel"))
            .arg("--broker")
            .arg(&bootstrap)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut consumer = cli(&["consume", "lines", "--from", "beginning"]);
    let consumed = lines_of(&mut consumer);
    let mut producer = cli(&["produce", "lines"]);
    let mut input = producer.stdin.take().unwrap();

    // Lines before the kill, read back by the consumer as they come.
    for i in 0..300 {
        writeln!(input, "line-{i}").unwrap();
    }
    input.flush().unwrap();
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 300 {
        let left = deadline.saturating_duration_since(Instant::now());
        seen.push(
            consumed
                .recv_timeout(left)
                .expect("the consumer printed the first lines"),
        );
    }

    // The leader dies; the same producer and consumer processes carry on.
    b.kill9(leader);
    for i in 300..600 {
        writeln!(input, "line-{i}").unwrap();
        if i % 50 == 0 {
            input.flush().unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    drop(input);
    // Exit 0 only if every line was acknowledged (acks=all: by every in-sync replica).
    let status = exit_within(&mut producer, Duration::from_secs(90), "runnel produce");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut producer.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "runnel produce failed across the kill: {err}");

    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 600 {
        let left = deadline.saturating_duration_since(Instant::now());
        match consumed.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = consumer.kill();
                let _ = consumer.wait();
                let mut err = String::new();
                std::io::Read::read_to_string(&mut consumer.stderr.take().unwrap(), &mut err).unwrap();
                panic!("the consumer printed {} of 600 lines: {err}", seen.len())
            }
        }
    }
    let _ = consumer.kill();
    let _ = consumer.wait();
    // Once each, in the order written: the idempotent producer's retries did not
    // duplicate, and the consumer resumed at its position on the new leader.
    let want: Vec<String> = (0..600).map(|i| format!("line-{i}")).collect();
    assert_eq!(seen, want);
    let d = admin.describe_topic("lines").await.unwrap();
    assert_ne!(d.partitions[0].leader, leader, "leadership moved off the killed broker");
}

//! Consumer groups end to end: handover exclusivity and exactly-once across joins and
//! leaves, a killed member, a broker restart, static membership, admin operations.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runnel_client::{
    Admin, Consumer, ConsumerConfig, GroupConfig, Offset, OffsetReset, Producer, ProducerConfig, ProducerRecord,
    TopicPartition,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(60);

/// What the test sees across all members: who holds which partition (from the
/// callbacks), and every record delivered.
#[derive(Default)]
struct Tracker {
    owner: Mutex<HashMap<TopicPartition, String>>,
    violations: Mutex<Vec<String>>,
    seen: Mutex<BTreeMap<(u32, i64), Vec<String>>>,
    revocations: Mutex<HashMap<String, usize>>,
}

impl Tracker {
    fn violation(&self, v: String) {
        self.violations.lock().unwrap().push(v);
    }

    fn records(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

fn member_config(instance: Option<&str>, session_ms: u64) -> ConsumerConfig {
    ConsumerConfig {
        auto_offset_reset: OffsetReset::Earliest,
        fetch_max_wait: Duration::from_millis(100),
        group: GroupConfig {
            session_timeout: Duration::from_millis(session_ms),
            instance_id: instance.map(str::to_owned),
            auto_commit_interval: Duration::from_millis(200),
            ..GroupConfig::default()
        },
        ..ConsumerConfig::default()
    }
}

/// A member that records everything into `tracker` until told to stop, then closes
/// (commit and leave).
async fn spawn_member(
    addr: &str,
    name: &str,
    tracker: Arc<Tracker>,
    config: ConsumerConfig,
) -> (JoinHandle<()>, watch::Sender<bool>) {
    let mut c = Consumer::connect(addr, config).await.unwrap();
    c.subscribe("g", ["t"]).await.unwrap();
    let (t, n) = (tracker.clone(), name.to_owned());
    c.on_assigned(move |parts| {
        let mut owner = t.owner.lock().unwrap();
        for tp in parts {
            if let Some(prev) = owner.insert(tp.clone(), n.clone()) {
                t.violation(format!("{n} got {tp:?} while {prev} held it"));
            }
        }
    });
    let (t, n) = (tracker.clone(), name.to_owned());
    c.on_revoked(move |parts| {
        *t.revocations.lock().unwrap().entry(n.clone()).or_default() += parts.len();
        let mut owner = t.owner.lock().unwrap();
        for tp in parts {
            if owner.remove(tp).as_ref() != Some(&n) {
                t.violation(format!("{n} gave up {tp:?} it did not hold"));
            }
        }
    });
    let (stop_tx, mut stop) = watch::channel(false);
    let name = name.to_owned();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                r = c.next() => match r {
                    Some(Ok(r)) => {
                        let tp = (r.topic.to_string(), r.partition);
                        if tracker.owner.lock().unwrap().get(&tp) != Some(&name) {
                            tracker.violation(format!("{name} read {tp:?}@{} without holding it", r.offset));
                        }
                        tracker.seen.lock().unwrap().entry((r.partition, r.offset)).or_default().push(name.clone());
                    }
                    Some(Err(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
                    None => break,
                },
            }
        }
        // The member stops reading here; `close` commits and leaves, and the coordinator
        // may hand its partitions on the moment the leave arrives (the revoke callback
        // does not run for a leave), so they are released first.
        {
            let mut owner = tracker.owner.lock().unwrap();
            for tp in c.assignment() {
                owner.remove(&tp);
            }
        }
        c.close().await.unwrap();
    });
    (task, stop_tx)
}

/// Records `from..from + n`, spread round-robin over the topic's partitions.
async fn produce(addr: &str, topic: &str, from: usize, n: usize) {
    let p = Producer::connect(addr, ProducerConfig::default()).await.unwrap();
    let partitions = Admin::connect(addr)
        .await
        .unwrap()
        .describe_topic(topic)
        .await
        .unwrap()
        .partitions
        .len();
    let mut acks = Vec::new();
    for i in from..from + n {
        let r = ProducerRecord::new(topic, format!("r{i}")).partition((i % partitions) as u32);
        acks.push(p.send(r).await.unwrap());
    }
    for a in acks {
        a.await.unwrap();
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn create(addr: &str, topic: &str, partitions: u32) -> Admin {
    let admin = Admin::connect(addr).await.unwrap();
    admin.create_topic(topic, partitions, BTreeMap::new()).await.unwrap();
    admin
}

fn assert_exactly_once(tracker: &Tracker, total: usize) {
    let v = tracker.violations.lock().unwrap();
    assert!(v.is_empty(), "ownership violations: {v:#?}");
    let seen = tracker.seen.lock().unwrap();
    assert_eq!(seen.len(), total, "every record delivered");
    let dup: Vec<_> = seen.iter().filter(|(_, who)| who.len() > 1).take(5).collect();
    assert!(dup.is_empty(), "records delivered more than once: {dup:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_joins_and_leaves_hand_over_exclusively_and_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_broker_on(dir.path(), "127.0.0.1:0").await;
    let addr = common::addr(&server);
    create(&addr, "t", 6).await;
    let tracker = Arc::new(Tracker::default());
    let mut members = HashMap::new();
    let mut produced = 0;
    let steps: &[(&str, bool)] = &[("a", true), ("b", true), ("c", true), ("a", false), ("b", false)];
    for (name, join) in steps {
        if *join {
            let m = spawn_member(&addr, name, tracker.clone(), member_config(None, 5_000)).await;
            members.insert(*name, m);
        } else {
            let (task, stop) = members.remove(name).unwrap();
            stop.send(true).unwrap();
            task.await.unwrap();
        }
        // Records flow while the group changes.
        produce(&addr, "t", produced, 300).await;
        produced += 300;
    }
    wait_until("every record", || tracker.records() >= produced).await;
    let (task, stop) = members.remove("c").unwrap();
    stop.send(true).unwrap();
    task.await.unwrap();
    assert_exactly_once(&tracker, produced);
    // Everything the group read is committed: no lag.
    let d = Admin::connect(&addr).await.unwrap().describe_group("g").await.unwrap();
    assert_eq!(d.state, "empty");
    assert_eq!(d.partitions.len(), 6);
    for p in &d.partitions {
        assert_eq!(p.lag, Some(0), "{p:?}");
        assert_eq!(p.committed, Some(p.log_end_offset));
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_loses_its_partitions_after_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_broker_on(dir.path(), "127.0.0.1:0").await;
    let addr = common::addr(&server);
    let admin = create(&addr, "t", 4).await;
    let tracker = Arc::new(Tracker::default());
    let survivor = spawn_member(&addr, "s", tracker.clone(), member_config(None, 5_000)).await;

    // The victim runs on its own runtime: dropping that runtime kills it mid-flight —
    // no commit, no leave, sockets just close. It commits by hand every 40 records, so
    // the last 20 of its 500 stay uncommitted.
    let seen_by_victim: Arc<Mutex<BTreeSet<(u32, i64)>>> = Arc::default();
    let victim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    {
        let (addr, seen) = (addr.clone(), seen_by_victim.clone());
        victim_rt.spawn(async move {
            let mut cfg = member_config(None, 1_000);
            cfg.group.auto_commit = false;
            cfg.group.commit_on_revoke = false;
            let mut c = Consumer::connect(&addr, cfg).await.unwrap();
            c.subscribe("g", ["t"]).await.unwrap();
            let mut n = 0;
            while let Some(r) = c.next().await {
                let Ok(r) = r else { continue };
                seen.lock().unwrap().insert((r.partition, r.offset));
                n += 1;
                if n % 40 == 0 {
                    c.commit().await.unwrap();
                }
            }
        });
    }
    // Wait until the victim holds two partitions, then feed both members.
    wait_until("the victim to join", || tracker.owner.lock().unwrap().len() == 2).await;
    produce(&addr, "t", 0, 1000).await;
    wait_until("every record", || {
        tracker.records() + seen_by_victim.lock().unwrap().len() >= 1000
    })
    .await;
    let victim_parts: Vec<u32> = (0..4)
        .filter(|p| !tracker.owner.lock().unwrap().contains_key(&("t".to_string(), *p)))
        .collect();
    assert_eq!(victim_parts.len(), 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    victim_rt.shutdown_background();
    let committed = admin.committed_offsets("g").await.unwrap();

    // After the victim's 1 s session, the survivor holds everything and re-reads only
    // the victim's uncommitted tail.
    wait_until("the handover", || tracker.owner.lock().unwrap().len() == 4).await;
    let victim_seen = seen_by_victim.lock().unwrap().clone();
    wait_until("the tail re-read", || {
        let seen = tracker.seen.lock().unwrap();
        victim_parts.iter().all(|p| {
            let end = victim_seen
                .iter()
                .filter(|(q, _)| q == p)
                .map(|(_, o)| o + 1)
                .max()
                .unwrap_or(0);
            (committed.get(&("t".to_string(), *p)).copied().unwrap_or(0)..end).all(|o| seen.contains_key(&(*p, o)))
        })
    })
    .await;
    {
        let seen = tracker.seen.lock().unwrap();
        let mut tail = 0;
        for p in &victim_parts {
            let c = committed.get(&("t".to_string(), *p)).copied().unwrap_or(0);
            let end = 250;
            let first = seen.keys().filter(|(q, _)| q == p).map(|(_, o)| *o).min();
            assert_eq!(
                first,
                (c < end).then_some(c),
                "partition {p}: the survivor starts at the committed offset"
            );
            assert!(c > 0, "the victim committed something on partition {p}");
            tail += end - c;
        }
        assert!(
            tail >= 20,
            "the victim left an uncommitted tail ({tail}), re-read by the survivor"
        );
        let v = tracker.violations.lock().unwrap();
        assert!(v.is_empty(), "{v:?}");
    }
    let (task, stop) = survivor;
    stop.send(true).unwrap();
    task.await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_and_membership_survive_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_broker_on(dir.path(), "127.0.0.1:0").await;
    let addr = common::addr(&server);
    let admin = create(&addr, "t", 4).await;
    let tracker = Arc::new(Tracker::default());
    let a = spawn_member(&addr, "a", tracker.clone(), member_config(None, 20_000)).await;
    let b = spawn_member(&addr, "b", tracker.clone(), member_config(None, 20_000)).await;
    produce(&addr, "t", 0, 400).await;
    wait_until("every record", || tracker.records() >= 400).await;
    let admin_ref = &admin;
    let lag_zero = || async move {
        let d = admin_ref.describe_group("g").await.unwrap();
        d.partitions.iter().all(|p| p.lag == Some(0)) && d.state == "stable"
    };
    let start = Instant::now();
    while !lag_zero().await {
        assert!(
            start.elapsed() < DEADLINE,
            "{:#?}",
            admin.describe_group("g").await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = admin.describe_group("g").await.unwrap();
    drop(admin);
    server.shutdown().await.unwrap();

    let server = common::start_broker_on(dir.path(), &addr).await;
    let admin = Admin::connect(&addr).await.unwrap();
    let after = admin.describe_group("g").await.unwrap();
    assert_eq!(
        after.members, before.members,
        "members, epochs and assignments recovered"
    );
    assert_eq!(after.group_epoch, before.group_epoch);
    let committed = |d: &runnel_client::GroupDescription| {
        d.partitions
            .iter()
            .map(|p| (p.partition, p.committed))
            .collect::<Vec<_>>()
    };
    assert_eq!(committed(&after), committed(&before));

    // The members carry on where they were, through the restart.
    produce(&addr, "t", 400, 400).await;
    wait_until("the new records", || tracker.records() >= 800).await;
    for (task, stop) in [a, b] {
        stop.send(true).unwrap();
        task.await.unwrap();
    }
    assert_exactly_once(&tracker, 800);
    let d = admin.describe_group("g").await.unwrap();
    assert!(d.members.is_empty());
    assert!(d.partitions.iter().all(|p| p.committed == Some(p.log_end_offset)));

    // A new member resumes at the committed offsets: it sees only newer records.
    let fresh = Arc::new(Tracker::default());
    let c = spawn_member(&addr, "c", fresh.clone(), member_config(None, 5_000)).await;
    produce(&addr, "t", 800, 20).await;
    wait_until("the newest records", || fresh.records() >= 20).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fresh.records(), 20);
    let (task, stop) = c;
    stop.send(true).unwrap();
    task.await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_restart_causes_no_reassignment() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_broker_on(dir.path(), "127.0.0.1:0").await;
    let addr = common::addr(&server);
    let admin = create(&addr, "t", 6).await;
    let tracker = Arc::new(Tracker::default());
    let a = spawn_member(&addr, "a", tracker.clone(), member_config(Some("pod-a"), 10_000)).await;
    let b = spawn_member(&addr, "b", tracker.clone(), member_config(Some("pod-b"), 10_000)).await;
    let stable = || async {
        let d = admin.describe_group("g").await.unwrap();
        (d.state == "stable" && d.members.len() == 2).then_some(d)
    };
    let start = Instant::now();
    let before = loop {
        if let Some(d) = stable().await {
            break d;
        }
        assert!(start.elapsed() < DEADLINE);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let revocations_before = tracker.revocations.lock().unwrap().clone();

    // pod-a restarts: close (a static leave), then a new process with the same id.
    let (task, stop) = a;
    stop.send(true).unwrap();
    task.await.unwrap();
    let d = admin.describe_group("g").await.unwrap();
    let left = d
        .members
        .iter()
        .find(|m| m.instance_id.as_deref() == Some("pod-a"))
        .unwrap();
    assert!(left.left, "pod-a's partitions wait for it");
    let a2 = spawn_member(&addr, "a2", tracker.clone(), member_config(Some("pod-a"), 10_000)).await;
    let start = Instant::now();
    let after = loop {
        if let Some(d) = stable().await.filter(|d| d.members.iter().all(|m| !m.left)) {
            break d;
        }
        assert!(start.elapsed() < DEADLINE);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        after.group_epoch, before.group_epoch,
        "no new group epoch: no reassignment"
    );
    let by_instance = |d: &runnel_client::GroupDescription| {
        d.members
            .iter()
            .map(|m| (m.instance_id.clone(), m.owned.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(by_instance(&after), by_instance(&before));
    assert_eq!(
        *tracker.revocations.lock().unwrap(),
        revocations_before,
        "nobody gave up a partition"
    );
    for (task, stop) in [a2, b] {
        stop.send(true).unwrap();
        task.await.unwrap();
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_lists_describes_resets_and_deletes_groups() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_broker_on(dir.path(), "127.0.0.1:0").await;
    let addr = common::addr(&server);
    let admin = create(&addr, "t", 2).await;
    produce(&addr, "t", 0, 100).await;
    let before_ms = runnel_client_now_ms();

    // A group that read everything from partition 0 only (reset by an admin).
    let reset = admin
        .reset_offsets("g", "t", Some(vec![0]), Offset::Latest)
        .await
        .unwrap();
    assert_eq!(reset.len(), 1);
    let listed = admin.list_groups().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].group_id.as_str(), listed[0].state.as_str()), ("g", "empty"));
    let d = admin.describe_group("g").await.unwrap();
    assert_eq!(d.partitions.len(), 1);
    assert_eq!(d.partitions[0].lag, Some(0));

    // Reset to earliest: lag in records and in time (the oldest unread record's age).
    tokio::time::sleep(Duration::from_millis(50)).await;
    admin.reset_offsets("g", "t", None, Offset::Earliest).await.unwrap();
    let d = admin.describe_group("g").await.unwrap();
    let total: i64 = d.partitions.iter().map(|p| p.lag.unwrap()).sum();
    assert_eq!(total, 100);
    for p in &d.partitions {
        let age = p.lag_ms.unwrap();
        assert!(age >= 50 && age <= runnel_client_now_ms() - before_ms + 5_000, "{p:?}");
    }
    // By timestamp: the future means the end.
    admin
        .reset_offsets("g", "t", None, Offset::Timestamp(runnel_client_now_ms() + 60_000))
        .await
        .unwrap();
    let d = admin.describe_group("g").await.unwrap();
    assert!(d.partitions.iter().all(|p| p.lag == Some(0)));
    admin
        .reset_offsets("g", "t", Some(vec![1]), Offset::At(3))
        .await
        .unwrap();
    assert_eq!(admin.committed_offsets("g").await.unwrap()[&("t".to_string(), 1)], 3);

    // Not while members are in it.
    let mut c = Consumer::connect(&addr, member_config(None, 5_000)).await.unwrap();
    c.subscribe("g", ["t"]).await.unwrap();
    let err = admin.reset_offsets("g", "t", None, Offset::Earliest).await.unwrap_err();
    assert_eq!(err.code(), Some(runnel_client::ErrorCode::NonEmptyGroup), "{err}");
    let err = admin.delete_group("g").await.unwrap_err();
    assert_eq!(err.code(), Some(runnel_client::ErrorCode::NonEmptyGroup), "{err}");
    // It starts at the committed offsets: partition 0 is at its end, partition 1 at 3.
    let r = loop {
        match tokio::time::timeout(Duration::from_secs(30), c.next())
            .await
            .unwrap()
            .unwrap()
        {
            Ok(r) => break r,
            Err(_) => continue,
        }
    };
    assert_eq!((r.partition, r.offset), (1, 3));
    c.close().await.unwrap();
    admin.delete_group("g").await.unwrap();
    assert!(admin.list_groups().await.unwrap().is_empty());
    let err = admin.describe_group("g").await.unwrap_err();
    assert_eq!(err.code(), Some(runnel_client::ErrorCode::GroupIdNotFound));
    server.shutdown().await.unwrap();
}

fn runnel_client_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regex_subscription_follows_new_topics_and_manual_commits_stick() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_broker_on(dir.path(), "127.0.0.1:0").await;
    let addr = common::addr(&server);
    let admin = create(&addr, "orders.eu", 2).await;
    admin.create_topic("other", 1, BTreeMap::new()).await.unwrap();
    let mut cfg = member_config(None, 5_000);
    cfg.group.auto_commit = false;
    let mut c = Consumer::connect(&addr, cfg).await.unwrap();
    c.subscribe_regex("rx", r"orders\..*").await.unwrap();
    produce(&addr, "other", 0, 5).await;
    produce(&addr, "orders.eu", 0, 10).await;
    // A topic created after joining is picked up too.
    admin.create_topic("orders.us", 3, BTreeMap::new()).await.unwrap();
    produce(&addr, "orders.us", 10, 9).await;
    let mut got = BTreeSet::new();
    while got.len() < 19 {
        let r = tokio::time::timeout(Duration::from_secs(30), c.next())
            .await
            .unwrap()
            .unwrap();
        let Ok(r) = r else { continue };
        assert_ne!(&*r.topic, "other");
        got.insert((r.topic.to_string(), r.partition, r.offset));
    }
    assert_eq!(c.assignment().len(), 5);
    c.commit_async().unwrap().await.unwrap().unwrap();
    let committed = admin.committed_offsets("rx").await.unwrap();
    assert_eq!(committed.values().sum::<i64>(), 19);
    // Manual commit of one position: what an application does after its own processing.
    c.commit_offsets(BTreeMap::from([(
        ("orders.eu".to_string(), 0),
        (1, "note".to_string()),
    )]))
    .await
    .unwrap();
    let d = admin.describe_group("rx").await.unwrap();
    let p = d
        .partitions
        .iter()
        .find(|p| p.topic == "orders.eu" && p.partition == 0)
        .unwrap();
    assert_eq!((p.committed, p.metadata.as_str(), p.lag), (Some(1), "note", Some(4)));
    assert_eq!(d.members[0].subscribed_topic_regex.as_deref(), Some(r"orders\..*"));
    c.close().await.unwrap();
    server.shutdown().await.unwrap();
}

/// Partitions added to a subscribed topic are assigned and read without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_gets_partitions_added_to_its_topic() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_broker_on(dir.path(), "127.0.0.1:0").await;
    let addr = common::addr(&server);
    let admin = create(&addr, "widening", 1).await;
    let mut c = Consumer::connect(&addr, member_config(None, 5_000)).await.unwrap();
    c.subscribe("wide", ["widening"]).await.unwrap();
    produce(&addr, "widening", 0, 3).await;
    let mut got = BTreeSet::new();
    while got.len() < 3 {
        let r = tokio::time::timeout(Duration::from_secs(30), c.next())
            .await
            .unwrap()
            .unwrap();
        if let Ok(r) = r {
            got.insert((r.partition, r.offset));
        }
    }
    admin.create_partitions("widening", 3).await.unwrap();
    // Records on the new partitions only (keyless records spread over all three).
    let producer = Producer::connect(&addr, ProducerConfig::default()).await.unwrap();
    let topic: std::sync::Arc<str> = "widening".into();
    for p in 1..3 {
        producer
            .send(ProducerRecord::new(topic.clone(), bytes::Bytes::from_static(b"new")).partition(p))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mut new = BTreeSet::new();
    while new.len() < 2 {
        let r = tokio::time::timeout(Duration::from_secs(30), c.next())
            .await
            .unwrap()
            .unwrap();
        if let Ok(r) = r {
            new.insert(r.partition);
        }
    }
    assert_eq!(new, BTreeSet::from([1, 2]));
    assert_eq!(c.assignment().len(), 3);
    producer.close().await;
    c.close().await.unwrap();
    server.shutdown().await.unwrap();
}

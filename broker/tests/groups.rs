//! The coordinator over its offsets log, without the network: the log stays bounded
//! under a long commit loop, and state written before compaction comes back on reopen.

use std::sync::Arc;
use std::time::Duration;

use runnel_broker::group::{Coordinator, GroupConfig, Heartbeat, OffsetCommit, OFFSETS_PARTITIONS};
use runnel_broker::storage::{LogManager, StorageConfig};

fn config() -> GroupConfig {
    GroupConfig {
        offsets_segment_bytes: 4096,
        min_session_timeout_ms: 100,
        ..GroupConfig::default()
    }
}

fn commit(c: &Coordinator, group: &str, partition: u32, offset: i64) {
    let (results, wait) = c
        .commit(
            group,
            "",
            -1,
            None,
            vec![OffsetCommit {
                tp: ("t".into(), partition),
                offset,
                metadata: format!("m{offset}"),
            }],
        )
        .unwrap();
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
    wait.wait_blocking().unwrap();
}

fn offsets_log_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for p in 0..OFFSETS_PARTITIONS {
        for e in std::fs::read_dir(dir.join(format!("__consumer_offsets-{p}"))).unwrap() {
            let e = e.unwrap();
            if e.file_name().to_string_lossy().ends_with(".log") {
                total += e.metadata().unwrap().len();
            }
        }
    }
    total
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Storage and coordinator over `dir`, creating topic `t` with this many partitions.
fn open(dir: &std::path::Path, create: Option<i64>) -> (Arc<LogManager>, Arc<Coordinator>) {
    let storage = LogManager::open(StorageConfig::new(dir)).unwrap();
    if let Some(n) = create {
        storage.create_topic("t", n, &Default::default()).unwrap();
    }
    let c = Coordinator::open(storage.clone(), config()).unwrap();
    (storage, c)
}

#[test]
fn the_offsets_log_stays_bounded_under_a_long_commit_loop() {
    let (dir, rt) = (tempfile::tempdir().unwrap(), runtime());
    let (storage, c) = open(dir.path(), Some(4));
    // A member too, so membership records are part of what is snapshotted.
    let (joined, wait) = c.heartbeat(
        "members",
        Heartbeat {
            member_epoch: 0,
            session_timeout_ms: 60_000,
            topics: ["t".to_string()].into(),
            ..Heartbeat::default()
        },
    );
    wait.wait_blocking().unwrap();
    let (reply, _) = joined.unwrap();
    assert_eq!(reply.assignment.len(), 4);

    let groups = ["a", "b", "c"];
    let mut largest = 0;
    let mut written = 0u64;
    for i in 0..6_000i64 {
        for (k, g) in groups.iter().enumerate() {
            commit(&c, g, (i % 4) as u32, i * 10 + k as i64);
            written += 1;
        }
        if i % 200 == 0 {
            // The peak is just before a maintenance pass (which snapshots and trims).
            largest = largest.max(offsets_log_bytes(dir.path()));
            rt.block_on(c.tick());
        }
    }
    rt.block_on(c.tick());
    // Each commit record is ~60 bytes: 18 000 of them is ~1 MB unbounded. Bounded: a
    // few segments of 4 KiB per offsets partition.
    let bound = OFFSETS_PARTITIONS as u64 * 4 * 4096;
    eprintln!("offsets log: at most {largest} bytes over {written} commits");
    assert!(
        largest <= bound,
        "offsets log reached {largest} bytes (bound {bound}) after {written} commits"
    );

    // Reopen: the latest commits, metadata and the member are all there.
    drop(c);
    storage.shutdown().unwrap();
    drop(storage);
    let (storage, c) = open(dir.path(), None);
    for (k, g) in groups.iter().enumerate() {
        let committed = c.committed(g, None).unwrap();
        assert_eq!(committed.len(), 4, "{g}");
        for p in 0..4u32 {
            // The last i with i % 4 == p.
            let last_i = 5_996 + p as i64;
            let v = &committed[&("t".to_string(), p)];
            assert_eq!(v.offset, last_i * 10 + k as i64, "{g}-{p}");
            assert_eq!(v.metadata, format!("m{}", v.offset));
        }
    }
    let d = c.describe("members").unwrap().unwrap();
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].id, reply.member_id);
    assert_eq!(d.members[0].owned.len(), 4);
    storage.shutdown().unwrap();
}

#[test]
fn deleted_groups_stay_deleted_and_expired_members_are_removed() {
    let (dir, rt) = (tempfile::tempdir().unwrap(), runtime());
    let (storage, c) = open(dir.path(), Some(2));
    commit(&c, "gone", 0, 5);
    c.delete("gone").unwrap().wait_blocking().unwrap();
    let (r, w) = c.heartbeat(
        "short",
        Heartbeat {
            session_timeout_ms: 100,
            topics: ["t".to_string()].into(),
            ..Heartbeat::default()
        },
    );
    w.wait_blocking().unwrap();
    r.unwrap();
    std::thread::sleep(Duration::from_millis(150));
    rt.block_on(c.tick());
    assert!(
        c.describe("short").unwrap().is_none(),
        "the expired member's empty group is gone"
    );
    drop(c);
    storage.shutdown().unwrap();
    drop(storage);
    let (storage, c) = open(dir.path(), None);
    assert!(c.list().is_empty(), "{:?}", c.list());
    storage.shutdown().unwrap();
}

#[test]
fn offsets_expire_after_the_retention_from_empty_groups_and_unread_topics() {
    let (dir, rt) = (tempfile::tempdir().unwrap(), runtime());
    let retention = GroupConfig {
        offsets_retention_ms: 300,
        offsets_retention_check_interval_ms: 0,
        ..config()
    };
    let open_with = |create| {
        let storage = LogManager::open(StorageConfig::new(dir.path())).unwrap();
        if let Some(n) = create {
            storage.create_topic("t", n, &Default::default()).unwrap();
            // Commits name existing partitions only.
            storage.create_topic("other", 1, &Default::default()).unwrap();
        }
        let c = Coordinator::open(storage.clone(), retention.clone()).unwrap();
        (storage, c)
    };
    let (storage, c) = open_with(Some(2));
    commit(&c, "idle", 0, 5);
    commit(&c, "idle", 1, 7);
    commit(&c, "busy", 0, 3);
    // A topic the busy group's member will not subscribe to.
    let (results, wait) = c
        .commit(
            "busy",
            "",
            -1,
            None,
            vec![OffsetCommit {
                tp: ("other".into(), 0),
                offset: 9,
                metadata: String::new(),
            }],
        )
        .unwrap();
    assert!(results.iter().all(|(_, r)| r.is_ok()));
    wait.wait_blocking().unwrap();
    let (r, w) = c.heartbeat(
        "busy",
        Heartbeat {
            session_timeout_ms: 60_000,
            topics: ["t".to_string()].into(),
            ..Heartbeat::default()
        },
    );
    w.wait_blocking().unwrap();
    r.unwrap();
    // The first tick notes when "idle" was found empty, and that is stored: a restart
    // does not start its retention again.
    rt.block_on(c.tick());
    drop(c);
    storage.shutdown().unwrap();
    drop(storage);
    std::thread::sleep(Duration::from_millis(400));
    let (storage, c) = open_with(None);
    rt.block_on(c.tick());
    assert!(c.committed("idle", None).unwrap().is_empty(), "expired");
    assert!(c.describe("idle").unwrap().is_none(), "the group went with its offsets");
    let busy: Vec<String> = c.committed("busy", None).unwrap().into_keys().map(|(t, _)| t).collect();
    assert_eq!(busy, ["t"], "a group with a member keeps the offsets of what it reads");
    drop(c);
    storage.shutdown().unwrap();
    drop(storage);
    // Expired for good: the tombstones are in the offsets log.
    let (storage, c) = open_with(None);
    assert!(c.committed("idle", None).unwrap().is_empty());
    assert_eq!(c.committed("busy", None).unwrap().len(), 1, "expired for good");
    storage.shutdown().unwrap();
}

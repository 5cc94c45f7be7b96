//! Topic registry: create, alter, delete, validation, persistence through the metadata
//! log, and crash safety of topic changes.

mod common;

use std::collections::BTreeMap;

use common::{batch, read_all};
use runnel_broker::storage::manager::{CrashPoint, CLEAN_SHUTDOWN_FILE};
use runnel_broker::storage::{FlushPolicy, LogManager, StorageConfig};
use runnel_broker::Error;

fn cfg(dir: &std::path::Path) -> StorageConfig {
    StorageConfig::new(dir)
}

fn configs(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn topics_survive_clean_and_unclean_restarts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let m = LogManager::open(cfg(dir.path())).unwrap();
        m.create_topic(
            "orders",
            3,
            &configs(&[("flush.policy", "os"), ("segment.bytes", "2048")]),
        )
        .unwrap();
        m.create_topic("gone", 1, &BTreeMap::new()).unwrap();
        m.delete_topic("gone").unwrap();
        let p1 = m.partition("orders", 1).unwrap();
        for tag in 0..40 {
            p1.append(&mut batch(tag, 2, 50, 0)).unwrap();
        }
        m.alter_topic_config(
            "orders",
            &configs(&[("flush.policy", "interval"), ("segment.bytes", "2048")]),
        )
        .unwrap();
        m.shutdown().unwrap();
        assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    }
    for clean in [true, false] {
        let m = LogManager::open(cfg(dir.path())).unwrap();
        assert!(
            !dir.path().join(CLEAN_SHUTDOWN_FILE).exists(),
            "marker is consumed at open"
        );
        let names: Vec<_> = m.topics().iter().map(|t| t.name.clone()).collect();
        assert_eq!(names, vec!["orders".to_string()]);
        let t = m.topic("orders").unwrap();
        assert_eq!(t.partitions.len(), 3);
        assert_eq!(t.config.flush_policy, FlushPolicy::Interval);
        assert_eq!(t.config.segment_bytes, 2048);
        assert_eq!(read_all(&t.partitions[1], 0, 1 << 20).len(), 80, "clean={clean}");
        assert!(!dir.path().join("gone-0").exists());
        if clean {
            drop(m); // unclean: no shutdown
        } else {
            m.shutdown().unwrap();
        }
    }
}

#[test]
fn validation_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(cfg(dir.path())).unwrap();
    let e = m.create_topic("bad name", 1, &BTreeMap::new()).unwrap_err();
    assert!(matches!(e, Error::InvalidTopicName { .. }), "{e}");
    assert!(matches!(
        m.create_topic("t", 0, &BTreeMap::new()),
        Err(Error::InvalidPartitions { .. })
    ));
    assert!(matches!(
        m.create_topic("t", 1_000_000, &BTreeMap::new()),
        Err(Error::InvalidPartitions { .. })
    ));
    let e = m
        .create_topic("t", 1, &configs(&[("retention.ms", "soon")]))
        .unwrap_err();
    assert_eq!(e.to_string(), "invalid config retention.ms=soon: not an integer");
    m.create_topic("t", 1, &BTreeMap::new()).unwrap();
    assert!(matches!(
        m.create_topic("t", 1, &BTreeMap::new()),
        Err(Error::TopicExists(_))
    ));
    assert!(matches!(m.delete_topic("nope"), Err(Error::UnknownTopic(_))));
    assert!(matches!(m.partition("t", 1), Err(Error::UnknownPartition { .. })));
    assert!(m
        .alter_topic_config("t", &configs(&[("flush.policy", "never")]))
        .is_err());
    // Nothing half-made by the failures.
    let dirs: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(dirs.iter().all(|d| !d.to_string_lossy().starts_with("bad")));
}

#[test]
fn a_second_broker_cannot_open_the_same_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let _m = LogManager::open(cfg(dir.path())).unwrap();
    let e = LogManager::open(cfg(dir.path())).err().unwrap();
    assert!(e.to_string().contains("another broker"), "{e}");
}

#[test]
fn crash_during_create_leaves_no_half_topic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let m = LogManager::open(cfg(dir.path())).unwrap();
        m.inject_crash(CrashPoint::CreateAfterDirs);
        assert!(m.create_topic("half", 4, &BTreeMap::new()).is_err());
        assert!(dir.path().join("half-3").exists(), "the crash left directories behind");
    }
    let m = LogManager::open(cfg(dir.path())).unwrap();
    assert!(m.topic("half").is_none());
    assert!(!dir.path().join("half-0").exists());
    // The name is free again, and the new topic starts empty.
    let t = m.create_topic("half", 2, &BTreeMap::new()).unwrap();
    assert_eq!(t.partitions[0].end_offset(), 0);
}

#[test]
fn crash_during_delete_leaves_no_half_topic() {
    for point in [CrashPoint::DeleteAfterRecord, CrashPoint::DeleteAfterRename] {
        let dir = tempfile::tempdir().unwrap();
        {
            let m = LogManager::open(cfg(dir.path())).unwrap();
            let t = m.create_topic("t", 2, &BTreeMap::new()).unwrap();
            t.partitions[0].append(&mut batch(0, 1, 10, 0)).unwrap();
            m.inject_crash(point);
            assert!(m.delete_topic("t").is_err());
        }
        let m = LogManager::open(cfg(dir.path())).unwrap();
        assert!(m.topic("t").is_none(), "{point:?}");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("t-"))
            .collect();
        assert!(left.is_empty(), "{point:?}: {left:?}");
        // Re-creating the name does not adopt the old files.
        let t = m.create_topic("t", 2, &BTreeMap::new()).unwrap();
        assert_eq!(t.partitions[0].end_offset(), 0);
    }
}

#[test]
fn recreated_topic_does_not_adopt_a_stale_directory() {
    let dir = tempfile::tempdir().unwrap();
    {
        let m = LogManager::open(cfg(dir.path())).unwrap();
        let t = m.create_topic("t", 1, &BTreeMap::new()).unwrap();
        t.partitions[0].append(&mut batch(0, 1, 10, 0)).unwrap();
        m.shutdown().unwrap();
    }
    // Someone copies a directory of another incarnation in place of t-0.
    std::fs::write(
        dir.path().join("t-0/partition.metadata"),
        "version: 0\ntopic_id: other\n",
    )
    .unwrap();
    let m = LogManager::open(cfg(dir.path())).unwrap();
    let t = m.topic("t").unwrap();
    assert_eq!(t.partitions[0].end_offset(), 0, "the stranger's data is not served");
}

#[test]
fn retention_runs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.retention_check_interval_ms = 10;
    c.maintenance_interval_ms = 5;
    let m = LogManager::open(c).unwrap();
    let t = m
        .create_topic(
            "t",
            1,
            &configs(&[("segment.bytes", "1024"), ("retention.bytes", "2048")]),
        )
        .unwrap();
    for tag in 0..100 {
        t.partitions[0].append(&mut batch(tag, 1, 100, 0)).unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // A pass deletes segments one by one: wait for the bound, not for the first deletion.
    while t.partitions[0].size_bytes() >= 4096 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        t.partitions[0].size_bytes() < 4096,
        "retention did not bound the log in 10 s"
    );
    assert!(t.partitions[0].start_offset() > 0);
}

#[test]
fn interval_policy_syncs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.maintenance_interval_ms = 5;
    let m = LogManager::open(c).unwrap();
    let t = m
        .create_topic("t", 1, &configs(&[("flush.policy", "interval"), ("flush.ms", "20")]))
        .unwrap();
    let p = &t.partitions[0];
    let (info, wait) = p.append_durable(&mut batch(0, 1, 100, 0)).unwrap();
    wait.wait_blocking().unwrap(); // interval: acknowledged without waiting for a sync
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while p.durable_offset() <= info.last_offset && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(p.durable_offset() > info.last_offset);
}

#[test]
fn topics_grow_durably_and_a_crash_mid_growth_leaves_the_old_count() {
    let dir = tempfile::tempdir().unwrap();
    {
        let m = LogManager::open(cfg(dir.path())).unwrap();
        let t = m
            .create_topic("grow", 2, &configs(&[("segment.bytes", "4096")]))
            .unwrap();
        t.partitions[1].append(&mut batch(0, 3, 10, 0)).unwrap();
        for bad in [2, 1, 0] {
            let e = m.create_partitions("grow", bad).err().unwrap();
            assert!(matches!(e, Error::PartitionsCannotShrink { current: 2, .. }), "{e}");
        }
        assert!(matches!(
            m.create_partitions("missing", 3).err().unwrap(),
            Error::UnknownTopic(_)
        ));
        let t = m.create_partitions("grow", 4).unwrap();
        assert_eq!(t.partitions.len(), 4);
        assert_eq!(t.config.segment_bytes, 4096, "new partitions take the topic's config");
        t.partitions[3].append(&mut batch(0, 2, 10, 0)).unwrap();
        assert_eq!(m.topic("grow").unwrap().partitions.len(), 4);
        // A crash between the new directories and the record: the growth never happened.
        m.inject_crash(CrashPoint::CreateAfterDirs);
        assert!(m.create_partitions("grow", 6).is_err());
        assert!(dir.path().join("grow-5").exists());
    }
    let m = LogManager::open(cfg(dir.path())).unwrap();
    let t = m.topic("grow").unwrap();
    assert_eq!(t.partitions.len(), 4);
    assert!(!dir.path().join("grow-4").exists() && !dir.path().join("grow-5").exists());
    assert_eq!(t.partitions[1].end_offset(), 3);
    assert_eq!(t.partitions[3].end_offset(), 2);
    assert_eq!(t.partitions[3].config().segment_bytes, 4096);
}

/// Topics created together share one metadata sync; each succeeds or fails on its own
/// (a bad name, a name twice in the request, a name that exists), and what succeeded
/// survives an unclean restart.
#[test]
fn topics_created_together_share_one_metadata_sync_and_fail_alone() {
    use runnel_broker::storage::NewTopic;
    let dir = tempfile::tempdir().unwrap();
    let none = BTreeMap::new();
    let names: Vec<String> = (0..100).map(|i| format!("batch-{i}")).collect();
    {
        let m = LogManager::open(cfg(dir.path())).unwrap();
        m.create_topic("exists", 1, &none).unwrap();
        let mut new: Vec<NewTopic<'_>> = names
            .iter()
            .map(|n| NewTopic {
                name: n,
                id: None,
                partitions: 2,
                overrides: &none,
            })
            .collect();
        for name in ["bad/name", "batch-7", "exists"] {
            new.push(NewTopic {
                name,
                id: None,
                partitions: 1,
                overrides: &none,
            });
        }
        let syncs = m.stats().fsyncs.get();
        let results = m.create_topics(&new);
        assert_eq!(m.stats().fsyncs.get() - syncs, 1, "one metadata sync for the batch");
        assert!(results[..100].iter().all(Result::is_ok));
        assert!(matches!(results[100], Err(Error::InvalidTopicName { .. })));
        assert!(matches!(&results[101], Err(Error::TopicExists(n)) if n == "batch-7"));
        assert!(matches!(&results[102], Err(Error::TopicExists(n)) if n == "exists"));
        // Dropped without shutdown: an unclean stop.
    }
    let m = LogManager::open(cfg(dir.path())).unwrap();
    for n in &names {
        assert_eq!(m.topic(n).unwrap().partitions.len(), 2, "{n}");
    }
    assert_eq!(m.topics().len(), 101);
}

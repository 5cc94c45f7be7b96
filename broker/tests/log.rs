//! Partition log behaviour: append, read, roll, timestamps, truncation, retention, flush.

mod common;

use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use common::{batch, open, read_all, small_config};
use runnel_broker::storage::{FlushPolicy, LogConfig, PartitionLog, TimestampType};
use runnel_broker::Error;
use runnel_protocol::{BatchBuilder, BatchOptions, Record};

#[test]
fn append_assigns_offsets_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), false);
    let mut expected = Vec::new();
    for tag in 0..50u64 {
        let mut b = batch(tag, 3, 40, 1_000 + tag as i64);
        let info = log.append(&mut b).unwrap();
        assert_eq!(info.base_offset, tag * 3);
        assert_eq!(info.last_offset, tag * 3 + 2);
        for i in 0..3 {
            expected.push((tag * 3 + i, format!("{tag}:{i}:")));
        }
    }
    assert_eq!(log.end_offset(), 150);
    assert!(
        log.segment_base_offsets().len() >= 3,
        "small segments roll: {:?} {}",
        log.segment_base_offsets(),
        log.size_bytes()
    );
    for max_bytes in [1, 300, 5_000, u64::MAX] {
        let got = read_all(&log, 0, max_bytes);
        assert_eq!(got.len(), expected.len());
        for ((off, v), (eoff, ev)) in got.iter().zip(&expected) {
            assert_eq!(off, eoff);
            assert!(v.starts_with(ev.as_bytes()));
        }
    }
    // Reading from the middle of a batch returns the batch that holds it.
    let mid = read_all(&log, 73, 1000);
    assert_eq!(mid[0].0, 73);
    // Out of range.
    assert!(matches!(log.read(151, 100), Err(Error::OffsetOutOfRange { .. })));
    assert!(log.read(150, 100).unwrap().region.is_none());
}

#[test]
fn regions_hold_whole_batches_within_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            index_interval_bytes: 0,
            ..LogConfig::default()
        },
        false,
    );
    let one = batch(0, 1, 100, 0).len() as u64;
    for tag in 0..20 {
        log.append(&mut batch(tag, 1, 100, 0)).unwrap();
    }
    let r = log.read(0, one * 5 + one / 2).unwrap().region.unwrap();
    assert_eq!(r.len, one * 5);
    let r = log.read(3, 1).unwrap().region.unwrap();
    assert_eq!(
        (r.position, r.len),
        (one * 3, one),
        "one batch even when it exceeds max_bytes"
    );
}

#[test]
fn rejects_bad_batches_without_touching_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            max_message_bytes: 500,
            ..LogConfig::default()
        },
        false,
    );
    let mut good = batch(0, 1, 10, 0);
    log.append(&mut good).unwrap();
    let mut bad_crc = batch(1, 1, 10, 0);
    let n = bad_crc.len();
    bad_crc[n - 1] ^= 1;
    assert!(matches!(log.append(&mut bad_crc), Err(Error::InvalidBatch(_))));
    let mut bad_magic = batch(1, 1, 10, 0);
    bad_magic[16] = 1;
    assert!(log.append(&mut bad_magic).unwrap_err().to_string().contains("magic"));
    let mut torn = batch(1, 1, 10, 0);
    let mut torn = torn.split_to(30);
    assert!(log.append(&mut torn).is_err());
    assert!(matches!(
        log.append(&mut batch(1, 1, 600, 0)),
        Err(Error::RecordTooLarge { .. })
    ));
    // Two good batches and one bad: nothing is written.
    let mut mixed = batch(2, 1, 10, 0);
    mixed.extend_from_slice(&bad_crc);
    assert!(log.append(&mut mixed).is_err());
    assert!(log.append(&mut Vec::<u8>::new()).is_err());
    assert_eq!(log.end_offset(), 1);
    assert_eq!(read_all(&log, 0, 1 << 20).len(), 1);
}

#[test]
fn offset_for_timestamp_finds_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), false);
    // Batch tag t holds records with timestamps 10_000 + 100 t + i.
    for tag in 0..60u64 {
        log.append(&mut batch(tag, 4, 30, 10_000 + 100 * tag as i64)).unwrap();
    }
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 10_000)));
    assert_eq!(log.offset_for_timestamp(10_102).unwrap(), Some((6, 10_102)));
    assert_eq!(log.offset_for_timestamp(10_104).unwrap(), Some((8, 10_200)));
    assert_eq!(log.offset_for_timestamp(15_003).unwrap(), Some((50 * 4 + 3, 15_003)));
    assert_eq!(log.offset_for_timestamp(16_000).unwrap(), None);
}

#[test]
fn log_append_time_stamps_broker_time() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let log = open(dir.path(), cfg, false);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let info = log.append(&mut batch(0, 2, 10, 5)).unwrap();
    let t = info.log_append_time_ms.unwrap();
    assert!(t >= before);
    let region = log.read(0, 1 << 20).unwrap().region.unwrap();
    let b = runnel_protocol::RecordBatch::new(region.read_to_vec().unwrap().into()).unwrap();
    assert!(b.records().unwrap().iter().all(|r| r.timestamp == t));
}

#[test]
fn roll_by_age_uses_batch_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            segment_ms: 1_000,
            ..LogConfig::default()
        },
        false,
    );
    log.append(&mut batch(0, 1, 10, 10_000)).unwrap();
    log.append(&mut batch(1, 1, 10, 10_900)).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0]);
    log.append(&mut batch(2, 1, 10, 11_001)).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
}

#[test]
fn truncate_cuts_at_batch_boundary_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), false);
    for tag in 0..40u64 {
        log.append(&mut batch(tag, 2, 50, 0)).unwrap();
    }
    let segs = log.segment_base_offsets().len();
    assert_eq!(
        log.truncate_to(31).unwrap(),
        30,
        "mid-batch offset cuts its whole batch"
    );
    assert!(log.segment_base_offsets().len() < segs);
    assert_eq!(log.end_offset(), 30);
    log.append(&mut batch(100, 2, 50, 0)).unwrap();
    let all = read_all(&log, 0, 1 << 20);
    assert_eq!(all.len(), 32);
    assert!(all[30].1.starts_with(b"100:0:"));
    assert!(all.iter().enumerate().all(|(i, (o, _))| *o == i as u64));
    assert!(log.truncate_to(0).is_ok());
    assert_eq!(log.end_offset(), 0);
    assert!(read_all(&log, 0, 1 << 20).is_empty());
}

#[test]
fn retention_by_size_and_time_deletes_whole_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), false);
    for tag in 0..200u64 {
        log.append(&mut batch(tag, 2, 50, 1_000 * tag as i64)).unwrap();
    }
    let segs = log.segment_base_offsets();
    assert!(segs.len() > 5);
    let mut cfg = small_config();
    cfg.retention_bytes = 3 * 4096;
    log.set_config(cfg);
    let deleted = log.apply_retention(0).unwrap();
    assert!(!deleted.is_empty());
    assert!(
        log.size_bytes() >= 3 * 4096 && log.size_bytes() < 5 * 4096,
        "{}",
        log.size_bytes()
    );
    let start = log.start_offset();
    assert_eq!(start, log.segment_base_offsets()[0]);
    assert!(matches!(log.read(start - 1, 100), Err(Error::OffsetOutOfRange { .. })));
    assert_eq!(read_all(&log, start, 1 << 20).len() as u64, 400 - start);
    for base in &deleted {
        assert!(!dir.path().join(format!("{base:020}.log")).exists());
    }
    // By time: everything older than the last batch's time by more than 1s, except the
    // active segment, which is never deleted.
    let mut cfg = small_config();
    cfg.retention_ms = 1;
    log.set_config(cfg);
    log.apply_retention(1_000_000_000).unwrap();
    assert_eq!(log.segment_base_offsets().len(), 1);
    assert_eq!(log.end_offset(), 400);
}

#[test]
fn always_policy_acknowledges_after_sync() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            flush_policy: FlushPolicy::Always,
            ..small_config()
        },
        false,
    );
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..20 {
                    let (info, wait) = log.append_durable(&mut batch(t * 100 + i, 2, 100, 0)).unwrap();
                    wait.wait_blocking().unwrap();
                    assert!(log.durable_offset() > info.last_offset);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(log.durable_offset(), log.end_offset());
}

#[test]
fn clean_close_and_reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), small_config(), false);
        for tag in 0..30 {
            log.append(&mut batch(tag, 2, 60, tag as i64)).unwrap();
        }
        log.close().unwrap();
        assert!(matches!(log.append(&mut batch(0, 1, 1, 0)), Err(Error::ShuttingDown)));
    }
    let log = open(dir.path(), small_config(), true);
    assert_eq!(log.end_offset(), 60);
    assert_eq!(read_all(&log, 0, 1 << 20).len(), 60);
    // Tag 28 holds timestamps 28 and 29: offset 57 is the first at 29.
    assert_eq!(log.offset_for_timestamp(29).unwrap(), Some((57, 29)));
    log.append(&mut batch(99, 1, 10, 0)).unwrap();
    assert_eq!(read_all(&log, 0, 1 << 20).len(), 61);
}

#[test]
fn durable_appends_complete_on_a_single_threaded_runtime() {
    // The syncs run on the flusher's threads: tasks on a one-thread runtime await them
    // without that thread ever calling fdatasync (if it did, or had to, this would hang).
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            flush_policy: FlushPolicy::Always,
            ..small_config()
        },
        false,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..32u64)
            .map(|t| {
                let log = log.clone();
                tokio::spawn(async move {
                    for i in 0..10 {
                        let (info, wait) = log.append_durable(&mut batch(t * 100 + i, 1, 50, 0)).unwrap();
                        wait.wait().await.unwrap();
                        assert!(log.durable_offset() > info.last_offset);
                    }
                })
            })
            .collect();
        for t in tasks {
            tokio::time::timeout(std::time::Duration::from_secs(30), t)
                .await
                .unwrap()
                .unwrap();
        }
    });
    assert_eq!(log.end_offset(), 320);
}

/// A batch of `n` records from idempotent producer `pid` (epoch 0), sequences from `seq`.
fn idempotent(pid: i64, seq: i32, n: usize) -> BytesMut {
    let mut b = BatchBuilder::new(BatchOptions {
        producer_id: pid,
        producer_epoch: 0,
        base_sequence: seq,
        ..BatchOptions::default()
    });
    for i in 0..n {
        b.push(&Record::new(
            1_000 + i as i64,
            None,
            Some(format!("{pid}:{seq}:{i}").as_bytes()),
        ));
    }
    b.finish().unwrap()
}

/// Base offsets of the producer-state snapshots in `dir`.
fn snapshots(dir: &Path) -> Vec<u64> {
    let mut found: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".producers").map(|stem| stem.parse().unwrap())
        })
        .collect();
    found.sort_unstable();
    found
}

/// Producer 1 (offsets 3–4 its last batch) and 2 (offset 6) are known to `log`: their
/// retries get the original offsets, gaps are refused, and nothing is appended.
fn knows_producers(log: &Arc<PartitionLog>, when: &str) {
    let end = log.end_offset();
    let dup = log.append(&mut idempotent(1, 3, 2)).unwrap();
    assert_eq!((dup.base_offset, dup.last_offset), (3, 4), "{when}: producer 1's retry");
    let dup = log.append(&mut idempotent(2, 1, 1)).unwrap();
    assert_eq!((dup.base_offset, dup.last_offset), (6, 6), "{when}: producer 2's retry");
    for (pid, seq) in [(1, 9), (2, 5)] {
        assert!(
            matches!(
                log.append(&mut idempotent(pid, seq, 1)),
                Err(Error::OutOfOrderSequence { .. })
            ),
            "{when}: producer {pid}'s gap"
        );
    }
    assert_eq!(log.end_offset(), end, "{when}: nothing appended");
}

#[test]
fn idempotent_producer_state_survives_rolls_restarts_and_damaged_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default(), false);
    log.append(&mut idempotent(1, 0, 3)).unwrap(); // offsets 0-2
    log.append(&mut idempotent(1, 3, 2)).unwrap(); // 3-4
    log.force_roll().unwrap();
    log.append(&mut idempotent(2, 0, 1)).unwrap(); // 5
    log.force_roll().unwrap();
    log.append(&mut idempotent(2, 1, 1)).unwrap(); // 6
    log.force_roll().unwrap();
    log.append(&mut batch(0, 2, 10, 0)).unwrap(); // 7-8, no producer id
    assert_eq!(log.segment_base_offsets(), [0, 5, 6, 7]);
    knows_producers(&log, "before any restart");
    assert_eq!(snapshots(dir.path()), [6, 7], "one per roll, the newest two kept");

    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), LogConfig::default(), true);
    knows_producers(&log, "after a clean restart");
    drop(log);
    let log = open(dir.path(), LogConfig::default(), false);
    knows_producers(&log, "after an unclean restart");
    drop(log);

    // A torn newest snapshot: the one before it and the segments after.
    let newest = dir.path().join(format!("{:020}.producers", 7));
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&newest, bytes).unwrap();
    let log = open(dir.path(), LogConfig::default(), false);
    knows_producers(&log, "with the newest snapshot torn");
    drop(log);
    // No snapshots at all: the whole log's headers.
    for offset in snapshots(dir.path()) {
        std::fs::remove_file(dir.path().join(format!("{offset:020}.producers"))).unwrap();
    }
    let log = open(dir.path(), LogConfig::default(), false);
    knows_producers(&log, "without snapshots");

    // Truncation forgets the cut batches: producer 2's sequence 1 is new again, and the
    // snapshot past the new end goes.
    log.force_roll().unwrap();
    assert_eq!(snapshots(dir.path()), [9]);
    assert_eq!(log.truncate_to(6).unwrap(), 6);
    assert!(snapshots(dir.path()).is_empty());
    let again = log.append(&mut idempotent(2, 1, 1)).unwrap();
    assert_eq!(
        (again.base_offset, log.end_offset()),
        (6, 7),
        "appended, not a duplicate"
    );
}

/// `compression.type` names a codec: batches arriving in another are stored in it, every
/// record exactly as sent; batches already in it are stored as they are.
#[test]
fn a_topic_codec_recompresses_other_batches_and_keeps_their_records() {
    use runnel_broker::storage::config::CompressionType;
    use runnel_protocol::{Compression, RecordBatch};
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        compression_type: CompressionType::Zstd,
        ..LogConfig::default()
    };
    let log = common::open(dir.path(), cfg, false);
    let mut sent = Vec::new();
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Zstd,
        Compression::Lz4,
    ] {
        let mut b = BatchBuilder::new(BatchOptions {
            compression: codec,
            ..BatchOptions::default()
        });
        for i in 0..50 {
            b.push(&Record::new(
                i,
                Some(b"key"),
                Some(format!("{codec:?} record {i}").repeat(4).as_bytes()),
            ));
        }
        let mut batch = b.finish().unwrap();
        sent.extend(RecordBatch::new(batch.clone().freeze()).unwrap().records().unwrap());
        log.append(&mut batch).unwrap();
    }
    let region = log.read(0, 1 << 20).unwrap().region.unwrap();
    let stored = RecordBatch::split_all(region.read_to_vec().unwrap().into()).unwrap();
    assert_eq!(stored.len(), 4);
    let mut got = Vec::new();
    for b in &stored {
        assert_eq!(b.header().compression().unwrap(), Compression::Zstd);
        got.extend(b.records().unwrap());
    }
    let strip = |r: &Vec<Record>| {
        r.iter()
            .map(|r| (r.timestamp, r.key.clone(), r.value.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&got), strip(&sent));
    assert_eq!(
        got.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..200).collect::<Vec<_>>()
    );
}

/// DeleteRecords: the log start moves forward durably (a restart, clean or not, keeps
/// it), whole segments below it go, reads below it are out of range, retention never
/// moves it back, and an offset past the end is refused.
#[test]
fn deleted_records_stay_deleted_across_restarts_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config();
    {
        let log = open(dir.path(), cfg.clone(), false);
        for tag in 0..40 {
            log.append(&mut batch(tag, 2, 150, 0)).unwrap();
        }
        assert_eq!(log.end_offset(), 80);
        let segments = || {
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "log"))
                .count()
        };
        let segments_before = segments();
        assert!(segments_before >= 3, "{segments_before}");
        assert_eq!(log.delete_records_before(33).unwrap(), 33);
        assert!(segments() < segments_before, "whole segments below go");
        assert_eq!(log.start_offset(), 33);
        assert!(matches!(log.read(32, 1 << 20), Err(Error::OffsetOutOfRange { .. })));
        let first = read_all(&log, 33, 1 << 20);
        assert!(first.iter().any(|(o, _)| *o == 33), "offset 33 is still there");
        // Lower: nothing changes; past the end: refused.
        assert_eq!(log.delete_records_before(10).unwrap(), 33);
        assert!(matches!(
            log.delete_records_before(81),
            Err(Error::OffsetOutOfRange { .. })
        ));
        // Dropped without close: an unclean stop.
    }
    for clean in [false, true] {
        let log = open(dir.path(), cfg.clone(), clean);
        assert_eq!(log.start_offset(), 33, "clean={clean}");
        assert_eq!(log.end_offset(), 80);
        // Retention that deletes nothing keeps it.
        log.apply_retention(0).unwrap();
        assert_eq!(log.start_offset(), 33);
        log.close().unwrap();
    }
    // Retention may move it on (whole segments), never back.
    let log = open(dir.path(), cfg.clone(), true);
    log.apply_retention(i64::MAX).unwrap();
    let after_retention = log.start_offset();
    assert!(after_retention > 33, "{after_retention}");
    log.close().unwrap();
    let log = open(dir.path(), cfg.clone(), true);
    assert_eq!(log.start_offset(), after_retention);
    log.close().unwrap();
    // Everything: the log is empty from the end on, and takes appends after it.
    let log = open(dir.path(), cfg, true);
    assert_eq!(log.start_offset(), after_retention);
    assert_eq!(log.delete_records_before(log.end_offset()).unwrap(), 80);
    assert!(log.read(80, 1 << 20).unwrap().region.is_none());
    let info = log.append(&mut batch(99, 1, 10, 0)).unwrap();
    assert_eq!(info.base_offset, 80);
}

#[test]
fn a_follower_append_fetched_under_an_earlier_leader_epoch_is_refused() {
    // A fetch answered by the previous leader, processed after this replica moved to the
    // next leader (and cut its log to that leader's), must not land after the cut.
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), false);
    log.become_follower(1);
    let mut first = batch(1, 3, 40, 1_000);
    log.append_as_follower(&mut first, 1).unwrap();
    assert_eq!(log.end_offset(), 3);
    log.become_follower(2);
    let mut late = batch(2, 3, 40, 1_000);
    // The batch continues the log exactly; only its epoch is stale.
    late[..8].copy_from_slice(&3i64.to_be_bytes());
    match log.append_as_follower(&mut late.clone(), 1) {
        Err(Error::NotLeader(m)) => assert!(m.contains("epoch 2"), "{m}"),
        other => panic!("a stale follower append was taken: {other:?}"),
    }
    assert_eq!(log.end_offset(), 3);
    log.append_as_follower(&mut late, 2).unwrap();
    assert_eq!(log.end_offset(), 6);
}

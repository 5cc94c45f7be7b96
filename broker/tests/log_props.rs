//! Property test: any interleaving of appends, rolls, retention, truncation, clean and
//! unclean restarts, and reads returns exactly the records appended, at their offsets,
//! in whole batches with valid CRCs.

mod common;

use std::sync::Arc;

use common::{batch, read_all};
use proptest::prelude::*;
use runnel_broker::storage::{FlushPolicy, Flusher, LogConfig, PartitionLog};
use runnel_protocol::RecordBatch;

#[derive(Debug, Clone)]
enum Op {
    Append { records: usize, value_bytes: usize },
    Roll,
    Retain { keep_bytes: u64 },
    Truncate { at: prop::sample::Index },
    CleanRestart,
    UncleanRestart,
    Read { at: prop::sample::Index, max_bytes: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1usize..6, 0usize..300).prop_map(|(records, value_bytes)| Op::Append { records, value_bytes }),
        1 => Just(Op::Roll),
        1 => (0u64..6000).prop_map(|keep_bytes| Op::Retain { keep_bytes }),
        1 => any::<prop::sample::Index>().prop_map(|at| Op::Truncate { at }),
        1 => Just(Op::CleanRestart),
        1 => Just(Op::UncleanRestart),
        3 => (any::<prop::sample::Index>(), 1u64..5000).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
    ]
}

/// What the log must hold: every record still in it, by offset, and where batches start.
struct Model {
    records: Vec<(u64, Vec<u8>)>,
    batch_starts: Vec<u64>,
    start: u64,
    end: u64,
}

fn config(policy: FlushPolicy) -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 200,
        segment_index_bytes: 1024,
        flush_policy: policy,
        ..LogConfig::default()
    }
}

fn check_read(log: &PartitionLog, model: &Model, offset: u64, max_bytes: u64) {
    let r = log.read(offset, max_bytes).unwrap();
    assert_eq!((r.start_offset, r.end_offset), (model.start, model.end));
    let Some(region) = r.region else {
        assert_eq!(offset, model.end, "no data returned below the end offset");
        return;
    };
    let batches = RecordBatch::split_all(region.read_to_vec().unwrap().into()).expect("whole batches, valid CRCs");
    let first = batches[0].header();
    assert!(
        first.base_offset as u64 <= offset && offset <= first.last_offset() as u64,
        "first batch holds the offset"
    );
    if batches.len() > 1 {
        assert!(region.len <= max_bytes, "more than one batch only within max_bytes");
    }
    for b in &batches {
        for rec in b.records().unwrap() {
            let i = model
                .records
                .binary_search_by_key(&(rec.offset as u64), |r| r.0)
                .expect("offset in model");
            assert_eq!(rec.value.as_deref().unwrap(), &model.records[i].1[..]);
        }
    }
}

fn run(ops: Vec<Op>, policy: FlushPolicy) {
    let dir = tempfile::tempdir().unwrap();
    // Each incarnation gets its own flusher, stopped (its queued passes finished) before
    // the next opens: a crashed process runs no sync passes after it dies.
    let open = |clean| {
        let flusher = Flusher::start(1);
        (
            PartitionLog::open(dir.path(), config(policy), flusher.clone(), clean).unwrap(),
            flusher,
        )
    };
    let (mut log, mut flusher): (Arc<PartitionLog>, Arc<Flusher>) = open(false);
    let mut model = Model {
        records: Vec::new(),
        batch_starts: Vec::new(),
        start: 0,
        end: 0,
    };
    let mut tag = 0u64;
    for op in ops {
        match op {
            Op::Append { records, value_bytes } => {
                tag += 1;
                let mut b = batch(tag, records, value_bytes, 1_000 + tag as i64);
                let values: Vec<Vec<u8>> = RecordBatch::new(b.clone().freeze())
                    .unwrap()
                    .records()
                    .unwrap()
                    .into_iter()
                    .map(|r| r.value.unwrap().to_vec())
                    .collect();
                let (info, wait) = log.append_durable(&mut b).unwrap();
                wait.wait_blocking().unwrap();
                assert_eq!(info.base_offset, model.end);
                model.batch_starts.push(model.end);
                for v in values {
                    model.records.push((model.end, v));
                    model.end += 1;
                }
                assert_eq!(info.last_offset + 1, model.end);
            }
            Op::Roll => log.force_roll().unwrap(),
            Op::Retain { keep_bytes } => {
                let mut cfg = config(policy);
                cfg.retention_bytes = keep_bytes as i64;
                log.set_config(cfg);
                log.apply_retention(0).unwrap();
                log.set_config(config(policy));
                let start = log.start_offset();
                assert!(start >= model.start);
                assert!(
                    start == model.end || model.batch_starts.contains(&start),
                    "start {start} on a batch boundary"
                );
                model.start = start;
                model.records.retain(|r| r.0 >= start);
                model.batch_starts.retain(|&s| s >= start);
            }
            Op::Truncate { at } => {
                let target = model.start + at.index((model.end - model.start + 1) as usize) as u64;
                let new_end = log.truncate_to(target).unwrap();
                let expected = if target >= model.end {
                    model.end
                } else {
                    *model
                        .batch_starts
                        .iter()
                        .filter(|&&s| s <= target)
                        .max()
                        .unwrap_or(&model.start)
                };
                assert_eq!(new_end, expected);
                model.end = new_end;
                model.records.retain(|r| r.0 < new_end);
                model.batch_starts.retain(|&s| s < new_end);
            }
            Op::CleanRestart => {
                log.close().unwrap();
                drop(log);
                flusher.shutdown();
                (log, flusher) = open(true);
            }
            Op::UncleanRestart => {
                drop(log);
                flusher.shutdown();
                (log, flusher) = open(false);
            }
            Op::Read { at, max_bytes } => {
                let offset = model.start + at.index((model.end - model.start + 1) as usize) as u64;
                check_read(&log, &model, offset, max_bytes);
            }
        }
        assert_eq!((log.start_offset(), log.end_offset()), (model.start, model.end));
    }
    let all = read_all(&log, model.start, 3000);
    assert_eq!(all, model.records);
}

proptest! {
    #[test]
    fn log_returns_exactly_what_was_appended(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops, FlushPolicy::Os);
    }

    #[test]
    fn log_with_group_commit_returns_exactly_what_was_appended(ops in proptest::collection::vec(op(), 1..30)) {
        run(ops, FlushPolicy::Always);
    }
}

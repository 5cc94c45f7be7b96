//! Helpers shared by the storage integration tests.
#![allow(dead_code)]

pub mod kafka;
pub mod wire;

use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use runnel_broker::storage::{Flusher, LogConfig, PartitionLog};
use runnel_protocol::{BatchBuilder, BatchOptions, Record, RecordBatch};

/// A batch of `n` records whose values encode `tag` and the record's index, so a test can
/// tell exactly which append a record came from.
pub fn batch(tag: u64, n: usize, value_bytes: usize, timestamp: i64) -> BytesMut {
    let mut b = BatchBuilder::new(BatchOptions::default());
    for i in 0..n {
        let mut v = format!("{tag}:{i}:").into_bytes();
        v.resize(value_bytes.max(v.len()), b'x');
        b.push(&Record::new(
            timestamp + i as i64,
            Some(format!("k{i}").as_bytes()),
            Some(&v),
        ));
    }
    b.finish().unwrap()
}

pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        segment_index_bytes: 4096,
        ..LogConfig::default()
    }
}

pub fn open(dir: &Path, cfg: LogConfig, clean: bool) -> Arc<PartitionLog> {
    PartitionLog::open(dir, cfg, Flusher::start(1), clean).unwrap()
}

/// Every record from `from` to the end, read through `read` in `max_bytes` steps, each
/// batch checked (CRC) as it would be by a consumer.
pub fn read_all(log: &PartitionLog, from: u64, max_bytes: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let r = log.read(next, max_bytes).unwrap();
        let Some(region) = r.region else { break };
        let bytes = region.read_to_vec().unwrap();
        let batches = RecordBatch::split_all(bytes.into()).expect("whole, valid batches");
        assert!(!batches.is_empty());
        for b in batches {
            for rec in b.records().unwrap() {
                if rec.offset as u64 >= next {
                    out.push((rec.offset as u64, rec.value.unwrap().to_vec()));
                }
            }
            next = b.header().next_offset() as u64;
        }
    }
    out
}

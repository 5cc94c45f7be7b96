//! Reads and appends run concurrently: writers append (and roll small segments) while
//! readers follow the log and retention deletes from the front. Every read returns whole,
//! CRC-valid batches whose records are exactly the ones appended at those offsets, or a
//! clear out-of-range error once retention has passed the reader. Bounded in count.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::batch;
use runnel_broker::storage::{FlushPolicy, LogConfig};
use runnel_broker::Error;
use runnel_protocol::RecordBatch;

const WRITERS: u64 = 3;
const APPENDS_PER_WRITER: u64 = 1500;
const READERS: usize = 3;

#[test]
fn readers_see_only_whole_valid_batches_while_writers_append_and_retention_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 16 * 1024,
        index_interval_bytes: 512,
        retention_bytes: 64 * 1024,
        flush_policy: FlushPolicy::Os,
        ..LogConfig::default()
    };
    let log = common::open(dir.path(), cfg, false);
    let done = Arc::new(AtomicBool::new(false));

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..APPENDS_PER_WRITER {
                    // Value "tag:index:" with tag = writer * 1e6 + sequence: a reader can
                    // check each record belongs to the batch it came in.
                    log.append(&mut batch(
                        w * 1_000_000 + i,
                        1 + (i % 3) as usize,
                        40 + (i % 50) as usize,
                        0,
                    ))
                    .unwrap();
                }
            })
        })
        .collect();
    let retention = {
        let (log, done) = (log.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                log.apply_retention(0).unwrap();
                std::thread::yield_now();
            }
        })
    };
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let (log, done) = (log.clone(), done.clone());
            std::thread::spawn(move || {
                let mut next = 0u64;
                let mut batches_seen = 0u64;
                let max_bytes = [1u64, 700, 5000][r];
                while !(done.load(Ordering::Acquire) && next == log.end_offset()) {
                    let result = match log.read(next, max_bytes) {
                        Ok(result) => result,
                        Err(Error::OffsetOutOfRange { start, .. }) => {
                            assert!(next < start, "out of range only below the log start");
                            next = start;
                            continue;
                        }
                        Err(e) => panic!("read failed: {e}"),
                    };
                    let Some(region) = result.region else {
                        std::thread::yield_now();
                        continue;
                    };
                    let bytes = region.read_to_vec().unwrap();
                    let batches = RecordBatch::split_all(bytes.into()).expect("whole, CRC-valid batches");
                    assert!(batches[0].header().base_offset as u64 <= next);
                    for b in &batches {
                        let records = b.records().unwrap();
                        let tag = std::str::from_utf8(records[0].value.as_ref().unwrap())
                            .unwrap()
                            .split(':')
                            .next()
                            .unwrap()
                            .to_owned();
                        for (i, rec) in records.iter().enumerate() {
                            assert_eq!(rec.offset as u64, b.header().base_offset as u64 + i as u64);
                            let want = format!("{tag}:{i}:");
                            assert!(rec.value.as_ref().unwrap().starts_with(want.as_bytes()));
                        }
                        next = b.header().next_offset() as u64;
                        batches_seen += 1;
                    }
                }
                batches_seen
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Release);
    retention.join().unwrap();
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert!(log.start_offset() > 0, "retention ran");
    assert!(log.segment_base_offsets().len() >= 2);
}

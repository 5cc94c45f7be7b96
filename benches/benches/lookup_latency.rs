//! Read region lookup latency on a log of 100 segments, as a distribution: each lookup is
//! timed on its own and recorded in an HDR histogram (criterion reports means only).
//!
//! `cargo bench -p runnel-bench --bench lookup_latency`

use std::time::Instant;

use hdrhistogram::Histogram;
use runnel_bench::{build_log, pick, rng};

const LOOKUPS: usize = 1_000_000;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists; nothing to list here.
    }
    for (record, batch) in [(100usize, 1usize << 10), (1024, 16 << 10)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = build_log(dir.path(), 100, 1 << 20, record, batch);
        let segments = log.segment_base_offsets().len();
        let end = log.end_offset();
        let mut r = rng(9);
        let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).expect("histogram");
        for _ in 0..LOOKUPS / 10 {
            let _ = log.read(pick(&mut r, 0..end), 1 << 20);
        }
        for _ in 0..LOOKUPS {
            let offset = pick(&mut r, 0..end);
            let t = Instant::now();
            let region = log.read(offset, 1 << 20).expect("read");
            let ns = t.elapsed().as_nanos() as u64;
            assert!(region.region.is_some());
            hist.record(ns.max(1)).expect("record");
        }
        println!(
            "read region lookup, {segments} segments, {record} B records in {} KiB batches, max 1 MiB: \
             p50 {:.2} µs  p90 {:.2} µs  p99 {:.2} µs  p99.9 {:.2} µs  max {:.2} µs  ({LOOKUPS} lookups)",
            batch >> 10,
            hist.value_at_quantile(0.50) as f64 / 1e3,
            hist.value_at_quantile(0.90) as f64 / 1e3,
            hist.value_at_quantile(0.99) as f64 / 1e3,
            hist.value_at_quantile(0.999) as f64 / 1e3,
            hist.max() as f64 / 1e3,
        );
    }
}

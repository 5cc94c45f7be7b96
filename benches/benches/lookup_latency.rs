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
        report(
            &format!(
                "random offsets, {segments} segments, {record} B records in {} KiB batches, max 1 MiB",
                batch >> 10
            ),
            &hist,
        );
        // A sequential consumer: each read starts where the previous region ended.
        hist.reset();
        let (mut next, mut n) = (log.start_offset(), 0);
        while n < LOOKUPS {
            let t = Instant::now();
            let region = log.read(next, 64 << 10).expect("read").region;
            let ns = t.elapsed().as_nanos() as u64;
            hist.record(ns.max(1)).expect("record");
            n += 1;
            match region {
                Some(r) => next = next_offset_after(&r),
                None => next = log.start_offset(),
            }
        }
        report(
            &format!(
                "sequential consumer, {record} B records in {} KiB batches, max 64 KiB",
                batch >> 10
            ),
            &hist,
        );
    }
}

/// The offset after the last batch of a region, from its batch headers only (outside the
/// timing; reading the whole region would evict the caches the next lookup uses, which a
/// consumer's `sendfile` does not do).
fn next_offset_after(region: &runnel_broker::storage::FileRegion) -> u64 {
    use std::os::unix::fs::FileExt;
    let mut header = [0u8; runnel_protocol::batch::HEADER_BYTES];
    let (mut at, mut next) = (0, 0);
    while at < region.len {
        region
            .file
            .read_exact_at(&mut header, region.position + at)
            .expect("read header");
        let h = runnel_protocol::BatchHeader::parse(&header).expect("header");
        next = h.next_offset() as u64;
        at += h.total_bytes() as u64;
    }
    next
}

fn report(what: &str, hist: &Histogram<u64>) {
    println!(
        "read region lookup, {what}: p50 {:.2} µs  p90 {:.2} µs  p99 {:.2} µs  p99.9 {:.2} µs  max {:.2} µs  ({} lookups)",
        hist.value_at_quantile(0.50) as f64 / 1e3,
        hist.value_at_quantile(0.90) as f64 / 1e3,
        hist.value_at_quantile(0.99) as f64 / 1e3,
        hist.value_at_quantile(0.999) as f64 / 1e3,
        hist.max() as f64 / 1e3,
        hist.len(),
    );
}

//! Storage hot paths: append throughput by record size, batch size, flush policy and
//! writer count; read region lookup on a log of 100 segments.
//!
//! Each append iteration writes at least 16 MiB of random batches; every writer appends
//! its share in order and, under `always`, waits for durability with at most `in_flight`
//! appends outstanding (1: each append waits for its sync before the next is sent; 4: as a
//! pipelining producer). Retention keeps the log under 1 GiB between iterations, outside
//! the timed region. `RUNNEL_BENCH_POLICY=os|always` runs one policy only; criterion's own
//! filter selects cases, e.g. `cargo bench --bench storage -- 16KiB_batches/16_writers`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use runnel_bench::{build_log, pick, random_batch, records_per_batch, rng};
use runnel_broker::storage::{FlushPolicy, Flusher, LogConfig, PartitionLog};
use runnel_protocol::Compression;

const ITER_BYTES_MIN: usize = 16 << 20;

fn append_config(policy: FlushPolicy) -> LogConfig {
    LogConfig {
        flush_policy: policy,
        segment_bytes: 256 << 20,
        retention_bytes: 768 << 20,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

/// Each writer appends its batches in order with up to `in_flight` appends awaiting
/// durability (a producer's `max.in.flight.requests`); under `os` nothing is awaited.
fn run_writers(
    log: &Arc<PartitionLog>,
    work: Vec<Vec<bytes::BytesMut>>,
    policy: FlushPolicy,
    in_flight: usize,
) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for batches in work {
            let log = log.clone();
            s.spawn(move || {
                let mut pending = std::collections::VecDeque::with_capacity(in_flight);
                for mut b in batches {
                    let (_, wait) = log.append_durable(&mut b).expect("append");
                    if policy == FlushPolicy::Always {
                        pending.push_back(wait);
                        if pending.len() >= in_flight {
                            pending.pop_front().expect("pending").wait_blocking().expect("durable");
                        }
                    }
                }
                for wait in pending {
                    wait.wait_blocking().expect("durable");
                }
            });
        }
    });
    start.elapsed()
}

fn append(c: &mut Criterion) {
    let only = std::env::var("RUNNEL_BENCH_POLICY").ok();
    for (policy, name) in [(FlushPolicy::Os, "os"), (FlushPolicy::Always, "always")] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let mut g = c.benchmark_group(format!("append_flush_{name}"));
        g.sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
        for record in [100usize, 1024] {
            for batch_bytes in [16usize << 10, 256 << 10] {
                let template: Vec<bytes::BytesMut> = {
                    let mut r = rng(11);
                    (0..8)
                        .map(|_| random_batch(&mut r, record, batch_bytes, Compression::None))
                        .collect()
                };
                let one = template[0].len();
                let mut cases: Vec<(usize, usize)> = vec![(1, 1), (4, 1), (16, 1)];
                if policy == FlushPolicy::Always && batch_bytes == 16 << 10 {
                    cases.push((16, 4));
                }
                for (writers, in_flight) in cases {
                    let per_writer = (ITER_BYTES_MIN / (one * writers)).max(1);
                    let bytes = (per_writer * writers * one) as u64;
                    let dir = tempfile::tempdir().expect("tempdir");
                    let log =
                        PartitionLog::open(dir.path(), append_config(policy), Flusher::start(2), false).expect("open");
                    g.throughput(Throughput::Bytes(bytes));
                    let id = format!(
                        "{record}B_records/{}KiB_batches/{writers}_writers/{in_flight}_in_flight/{}_records_per_batch",
                        batch_bytes >> 10,
                        records_per_batch(record, batch_bytes)
                    );
                    g.bench_function(BenchmarkId::from_parameter(id), |b| {
                        b.iter_custom(|iters| {
                            let mut total = Duration::ZERO;
                            for _ in 0..iters {
                                let work: Vec<Vec<bytes::BytesMut>> = (0..writers)
                                    .map(|w| {
                                        (0..per_writer)
                                            .map(|i| template[(w + i) % template.len()].clone())
                                            .collect()
                                    })
                                    .collect();
                                total += run_writers(&log, work, policy, in_flight);
                                log.apply_retention(i64::MAX).expect("retention");
                            }
                            total
                        })
                    });
                }
            }
        }
        g.finish();
    }
}

fn read_lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    // 100 segments of 1 MiB holding 1 KiB batches: a few headers per index interval.
    let log = build_log(dir.path(), 100, 1 << 20, 100, 1 << 10);
    assert!(log.segment_base_offsets().len() > 100);
    let end = log.end_offset();
    let mut r = rng(5);
    let mut g = c.benchmark_group("read_region_lookup");
    g.sample_size(50);
    g.bench_function("100_segments_1KiB_batches_max_1MiB", |b| {
        b.iter(|| {
            let offset = pick(&mut r, 0..end);
            log.read(offset, 1 << 20).expect("read").region.expect("region")
        })
    });
    g.finish();
}

criterion_group!(benches, read_lookup, append);
criterion_main!(benches);

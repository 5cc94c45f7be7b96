//! Codec hot paths: CRC-32C, batch validation (what the broker runs on every append),
//! batch encode and decode (what clients run).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::RngCore;
use runnel_bench::{random_batch, rng};
use runnel_protocol::{batch, Compression, RecordBatch};

fn crc(c: &mut Criterion) {
    let mut data = vec![0u8; 1 << 20];
    rng(1).fill_bytes(&mut data);
    let mut g = c.benchmark_group("crc32c_1MiB");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("crc-fast", |b| {
        b.iter(|| runnel_protocol::crc::crc32c(black_box(&data)))
    });
    g.bench_function("crc32c-crate", |b| b.iter(|| crc32c::crc32c(black_box(&data))));
    g.finish();
}

fn validate(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch_validate");
    for (record, size) in [(100usize, 16 << 10), (1024, 256 << 10), (1024, 1 << 20)] {
        let b = random_batch(&mut rng(2), record, size, Compression::None);
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{record}B_records_{}KiB", size >> 10)),
            &b,
            |bench, b| bench.iter(|| batch::validate(black_box(b)).expect("valid")),
        );
    }
    g.finish();
}

fn encode_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch_encode_64KiB_of_100B_records");
    let mut r = rng(3);
    let values: Vec<Vec<u8>> = (0..600)
        .map(|_| {
            let mut v = vec![0u8; 100];
            r.fill_bytes(&mut v);
            v
        })
        .collect();
    g.throughput(Throughput::Bytes(600 * 100));
    for codec in Compression::ALL {
        g.bench_function(codec.name(), |b| {
            b.iter(|| {
                let mut builder = runnel_protocol::BatchBuilder::new(runnel_protocol::BatchOptions {
                    compression: codec,
                    ..Default::default()
                });
                for (i, v) in values.iter().enumerate() {
                    builder.push_parts(i as i64, None, Some(v), &[]);
                }
                builder.finish().expect("batch")
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("batch_decode_64KiB_of_100B_records");
    g.throughput(Throughput::Bytes(600 * 100));
    for codec in Compression::ALL {
        let mut builder = runnel_protocol::BatchBuilder::new(runnel_protocol::BatchOptions {
            compression: codec,
            ..Default::default()
        });
        for (i, v) in values.iter().enumerate() {
            builder.push_parts(i as i64, None, Some(v), &[]);
        }
        let batch = RecordBatch::new(builder.finish().expect("batch").freeze()).expect("valid");
        g.bench_function(codec.name(), |b| {
            b.iter(|| black_box(&batch).records().expect("decode"))
        });
    }
    g.finish();
}

criterion_group!(benches, crc, validate, encode_decode);
criterion_main!(benches);

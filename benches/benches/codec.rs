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

/// The native frame codec around a produce request and a fetch response of 4 partitions,
/// each carrying 64 KiB of records in the trailer: what the broker and client run once per
/// request. The trailer is never copied by the codec (the broker splices fetched records
/// from the segment files; a parsed frame's trailer is a view of the frame).
fn frame(c: &mut Criterion) {
    use bytes::BytesMut;
    use prost::Message;
    use runnel_protocol::frame::{self, RequestHeader, REQUEST_HEADER_BYTES, RESPONSE_HEADER_BYTES};
    use runnel_protocol::messages::{
        FetchPartitionResult, FetchResponse, FetchTopicResult, ProducePartition, ProduceRequest, ProduceTopic,
    };
    const TRAILER: usize = 4 * 64 * 1024;
    let mut trailer = vec![0u8; TRAILER];
    rng(4).fill_bytes(&mut trailer);
    let produce = ProduceRequest {
        acks: 1,
        timeout_ms: 30_000,
        topics: vec![ProduceTopic {
            name: "runnel-bench".into(),
            partitions: (0..4)
                .map(|p| ProducePartition {
                    partition: p,
                    records_bytes: (TRAILER / 4) as u32,
                })
                .collect(),
        }],
    };
    let fetch = FetchResponse {
        error_code: 0,
        error_message: String::new(),
        topics: vec![FetchTopicResult {
            name: "runnel-bench".into(),
            partitions: (0..4)
                .map(|p| FetchPartitionResult {
                    partition: p,
                    error_code: 0,
                    error_message: String::new(),
                    high_watermark: 1 << 40,
                    log_start_offset: 0,
                    records_bytes: (TRAILER / 4) as u32,
                })
                .collect(),
        }],
    };
    let header = RequestHeader {
        api_key: 0,
        api_version: 0,
        correlation_id: 7,
    };
    let mut g = c.benchmark_group("frame_4_partitions");
    g.bench_function("produce_request_encode", |b| {
        let mut dst = BytesMut::with_capacity(1024);
        b.iter(|| {
            dst.clear();
            frame::encode_request(&mut dst, header, black_box(&produce), TRAILER);
            black_box(dst.len())
        })
    });
    let mut whole = BytesMut::new();
    frame::encode_request(&mut whole, header, &produce, TRAILER);
    whole.extend_from_slice(&trailer);
    g.bench_function("produce_request_check_parse_decode", |b| {
        b.iter_batched(
            || whole.clone(),
            |f| {
                let n = frame::check_frame(&f, REQUEST_HEADER_BYTES, 100 << 20)
                    .expect("valid")
                    .expect("whole");
                assert_eq!(n, f.len());
                let parsed = frame::parse_request(f).expect("parses");
                let req = ProduceRequest::decode(parsed.body).expect("decodes");
                // Returned, so the frame's memory is freed outside the timed part.
                (req, parsed.trailer)
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("fetch_response_encode", |b| {
        let mut dst = BytesMut::with_capacity(1024);
        b.iter(|| {
            dst.clear();
            frame::encode_response(&mut dst, 7, black_box(&fetch), TRAILER);
            black_box(dst.len())
        })
    });
    let mut whole = BytesMut::new();
    frame::encode_response(&mut whole, 7, &fetch, TRAILER);
    whole.extend_from_slice(&trailer);
    let whole = whole.freeze();
    g.bench_function("fetch_response_check_parse_decode", |b| {
        b.iter(|| {
            let f = black_box(&whole).clone();
            let n = frame::check_frame(&f, RESPONSE_HEADER_BYTES, 100 << 20)
                .expect("valid")
                .expect("whole");
            assert_eq!(n, f.len());
            let parsed = frame::parse_response(f).expect("parses");
            let resp = FetchResponse::decode(parsed.body).expect("decodes");
            black_box((resp, parsed.trailer.len()))
        })
    });
    g.finish();
}

criterion_group!(benches, crc, validate, encode_decode, frame);
criterion_main!(benches);

//! `listener-bench`: the native and the Kafka listener under the same load, from the
//! same minimal client, so the difference is the listener's.
//!
//! - `produce`: pre-built frames (one random batch of `--batch-bytes` for one partition
//!   each, partitions in turn) are written back to back on one connection with
//!   `--in-flight` requests outstanding; a reader thread checks every response's error
//!   codes. The client's per-request cost is one `write` of a ready frame.
//! - `consume`: one connection reads every partition from offset 0 to its end, one fetch
//!   request (all partitions, `--fetch-bytes` each) in flight at a time, as Kafka
//!   consumers do, walking batch headers for the next offsets.
//!
//! Both protocols send identical record batches; Kafka requests are Produce v9 and
//! Fetch v12, encoded by the `kafka-protocol` crate. Run it against a broker with both
//! listeners (`--broker-pid` adds the broker's CPU time per GB).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use clap::{Parser, ValueEnum};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use prost::Message;
use runnel_protocol::{frame, messages as native, Compression};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Produce,
    Consume,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    Native,
    Kafka,
}

#[derive(Debug, Parser)]
#[command(
    name = "listener-bench",
    about = "The native and Kafka listeners under the same load"
)]
struct Args {
    mode: Mode,
    #[arg(long, value_enum)]
    protocol: Protocol,
    /// The listener's address (native or Kafka, as --protocol says)
    #[arg(long)]
    broker: String,
    /// An existing topic with --partitions partitions
    #[arg(long, default_value = "listener-bench")]
    topic: String,
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    #[arg(long, default_value_t = 1024)]
    message_size: usize,
    #[arg(long, default_value_t = 64 * 1024)]
    batch_bytes: usize,
    /// Produce: bytes of batches to send in all
    #[arg(long, default_value_t = 2_000_000_000)]
    bytes: u64,
    /// Produce: requests outstanding on the connection
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
    /// Produce: 1 (leader) or -1 (all)
    #[arg(long, default_value_t = 1, allow_hyphen_values = true)]
    acks: i16,
    /// Consume: bytes per partition per fetch
    #[arg(long, default_value_t = 1 << 20)]
    fetch_bytes: u32,
    /// The broker's process id: its CPU time during the run
    #[arg(long)]
    broker_pid: Option<u32>,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("listener-bench: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let sock = TcpStream::connect(&args.broker).map_err(|e| format!("connect {}: {e}", args.broker))?;
    sock.set_nodelay(true).map_err(|e| e.to_string())?;
    let cpu0 = args.broker_pid.map(runnel_bench::process_cpu_secs).transpose()?;
    let start = Instant::now();
    let bytes = match args.mode {
        Mode::Produce => produce(args, sock)?,
        Mode::Consume => consume(args, sock)?,
    };
    let secs = start.elapsed().as_secs_f64();
    let cpu = match (args.broker_pid, cpu0) {
        (Some(pid), Some(before)) => Some(runnel_bench::process_cpu_secs(pid)? - before),
        _ => None,
    };
    print!(
        "{:?} {:?}: {:.2} GB in {secs:.2} s: {:.0} MB/s",
        args.protocol,
        args.mode,
        bytes as f64 / 1e9,
        bytes as f64 / secs / 1e6
    );
    if let Some(cpu) = cpu {
        print!(", broker {cpu:.2} CPU-s, {:.3} CPU-s/GB", cpu / (bytes as f64 / 1e9));
    }
    println!();
    Ok(())
}

fn kafka_frame<T: Encodable + HeaderVersion>(key: ApiKey, version: i16, body: &T) -> BytesMut {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("listener-bench")));
    let mut buf = BytesMut::new();
    buf.put_u32(0);
    header.encode(&mut buf, T::header_version(version)).expect("header");
    body.encode(&mut buf, version).expect("body");
    let len = (buf.len() - 4) as u32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf
}

fn native_frame(key: runnel_protocol::ApiKey, body: &impl Message, trailer: &[u8]) -> BytesMut {
    let header = frame::RequestHeader {
        api_key: key as i16,
        api_version: 0,
        correlation_id: 1,
    };
    let mut buf = BytesMut::new();
    frame::encode_request(&mut buf, header, body, trailer.len());
    buf.extend_from_slice(trailer);
    buf
}

fn read_frame(sock: &mut TcpStream) -> Result<Bytes, String> {
    let mut len = [0u8; 4];
    sock.read_exact(&mut len).map_err(|e| format!("read: {e}"))?;
    let mut frame = vec![0u8; 4 + u32::from_be_bytes(len) as usize];
    frame[..4].copy_from_slice(&len);
    sock.read_exact(&mut frame[4..]).map_err(|e| format!("read: {e}"))?;
    Ok(Bytes::from(frame))
}

fn produce(args: &Args, mut sock: TcpStream) -> Result<u64, String> {
    let mut rng = runnel_bench::rng(7);
    let batches: Vec<BytesMut> = (0..16)
        .map(|_| runnel_bench::random_batch(&mut rng, args.message_size, args.batch_bytes, Compression::None))
        .collect();
    let batch_len = batches[0].len() as u64;
    let frames: Vec<BytesMut> = (0..args.partitions)
        .flat_map(|p| batches.iter().map(move |b| (p, b)))
        .map(|(p, b)| match args.protocol {
            Protocol::Native => {
                let req = native::ProduceRequest {
                    acks: if args.acks == -1 {
                        native::Acks::All as i32
                    } else {
                        native::Acks::Leader as i32
                    },
                    timeout_ms: 30_000,
                    topics: vec![native::ProduceTopic {
                        name: args.topic.clone(),
                        partitions: vec![native::ProducePartition {
                            partition: p,
                            records_bytes: b.len() as u32,
                        }],
                    }],
                };
                native_frame(runnel_protocol::ApiKey::Produce, &req, b)
            }
            Protocol::Kafka => {
                let req = ProduceRequest::default()
                    .with_acks(args.acks)
                    .with_timeout_ms(30_000)
                    .with_topic_data(vec![TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_string(args.topic.clone())))
                        .with_partition_data(vec![PartitionProduceData::default()
                            .with_index(p as i32)
                            .with_records(Some(Bytes::copy_from_slice(b)))])]);
                kafka_frame(ApiKey::Produce, 9, &req)
            }
        })
        .collect();
    let requests = (args.bytes / batch_len).max(1);
    let (tokens, take) = sync_channel::<()>(args.in_flight.max(1));
    for _ in 0..args.in_flight.max(1) {
        tokens.send(()).expect("room");
    }
    let mut rd = sock.try_clone().map_err(|e| e.to_string())?;
    let protocol = args.protocol;
    let reader = std::thread::spawn(move || -> Result<(), String> {
        for _ in 0..requests {
            let frame = read_frame(&mut rd)?;
            check_produce(protocol, frame)?;
            let _ = tokens.send(());
        }
        Ok(())
    });
    for i in 0..requests as usize {
        take.recv().map_err(|_| "the response reader stopped".to_string())?;
        // Partitions in turn, a different batch each round.
        let f = &frames[(i % args.partitions as usize) * 16 + (i / args.partitions as usize) % 16];
        if let Err(e) = sock.write_all(f) {
            drop(take);
            return Err(reader
                .join()
                .map_err(|_| "reader panicked")?
                .err()
                .unwrap_or(format!("write: {e}")));
        }
    }
    reader.join().map_err(|_| "reader panicked".to_string())??;
    Ok(requests * batch_len)
}

fn check_produce(protocol: Protocol, mut frame: Bytes) -> Result<(), String> {
    let codes: Vec<i32> = match protocol {
        Protocol::Native => {
            let f = frame::parse_response(frame).map_err(|e| e.to_string())?;
            let r = native::ProduceResponse::decode(f.body).map_err(|e| e.to_string())?;
            std::iter::once(r.error_code)
                .chain(r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)))
                .collect()
        }
        Protocol::Kafka => {
            frame.advance(4);
            ResponseHeader::decode(&mut frame, ProduceResponse::header_version(9)).map_err(|e| e.to_string())?;
            let r = ProduceResponse::decode(&mut frame, 9).map_err(|e| e.to_string())?;
            r.responses
                .iter()
                .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code as i32))
                .collect()
        }
    };
    match codes.iter().find(|c| **c != 0) {
        Some(c) => Err(format!("produce failed with error code {c}")),
        None => Ok(()),
    }
}

/// Offset after the last whole batch in `records`, if any, and the bytes of whole
/// batches.
fn next_offset(mut records: &[u8]) -> Option<(i64, u64)> {
    let mut next = None;
    let mut whole = 0u64;
    while records.len() >= 27 {
        let base = i64::from_be_bytes(records[..8].try_into().expect("8 bytes"));
        let len = i32::from_be_bytes(records[8..12].try_into().expect("4 bytes")) as usize;
        if records.len() < 12 + len {
            break;
        }
        let last_delta = i32::from_be_bytes(records[23..27].try_into().expect("4 bytes"));
        whole += 12 + len as u64;
        next = Some((base + last_delta as i64 + 1, whole));
        records = &records[12 + len..];
    }
    next
}

fn consume(args: &Args, mut sock: TcpStream) -> Result<u64, String> {
    let mut offsets = vec![0i64; args.partitions as usize];
    let mut ends = vec![i64::MAX; args.partitions as usize];
    let mut total = 0u64;
    while offsets.iter().zip(&ends).any(|(o, e)| o < e) {
        let req = match args.protocol {
            Protocol::Native => native_frame(
                runnel_protocol::ApiKey::Fetch,
                &native::FetchRequest {
                    max_wait_ms: 500,
                    min_bytes: 1,
                    max_bytes: 50 << 20,
                    topics: vec![native::FetchTopic {
                        name: args.topic.clone(),
                        partitions: (0..args.partitions)
                            .map(|p| native::FetchPartition {
                                partition: p,
                                fetch_offset: offsets[p as usize],
                                max_bytes: args.fetch_bytes,
                                current_leader_epoch: None,
                            })
                            .collect(),
                    }],
                    replica_id: None,
                },
                &[],
            ),
            Protocol::Kafka => kafka_frame(
                ApiKey::Fetch,
                12,
                &FetchRequest::default()
                    .with_max_wait_ms(500)
                    .with_min_bytes(1)
                    .with_max_bytes(50 << 20)
                    .with_session_epoch(-1)
                    .with_topics(vec![FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(args.topic.clone())))
                        .with_partitions(
                            (0..args.partitions)
                                .map(|p| {
                                    FetchPartition::default()
                                        .with_partition(p as i32)
                                        .with_fetch_offset(offsets[p as usize])
                                        .with_partition_max_bytes(args.fetch_bytes as i32)
                                })
                                .collect(),
                        )]),
            ),
        };
        sock.write_all(&req).map_err(|e| format!("write: {e}"))?;
        let mut frame = read_frame(&mut sock)?;
        // (partition, high watermark, records)
        let parts: Vec<(usize, i64, Bytes)> = match args.protocol {
            Protocol::Native => {
                let f = frame::parse_response(frame).map_err(|e| e.to_string())?;
                let r = native::FetchResponse::decode(f.body).map_err(|e| e.to_string())?;
                let mut trailer = f.trailer;
                let mut out = Vec::new();
                for p in r.topics.iter().flat_map(|t| &t.partitions) {
                    if p.error_code != 0 {
                        return Err(format!("fetch error {} on partition {}", p.error_code, p.partition));
                    }
                    let records = trailer.split_to(p.records_bytes as usize);
                    out.push((p.partition as usize, p.high_watermark, records));
                }
                out
            }
            Protocol::Kafka => {
                frame.advance(4);
                ResponseHeader::decode(&mut frame, FetchResponse::header_version(12)).map_err(|e| e.to_string())?;
                let r = FetchResponse::decode(&mut frame, 12).map_err(|e| e.to_string())?;
                let mut out = Vec::new();
                for p in r.responses.iter().flat_map(|t| &t.partitions) {
                    if p.error_code != 0 {
                        return Err(format!(
                            "fetch error {} on partition {}",
                            p.error_code, p.partition_index
                        ));
                    }
                    let records = p.records.clone().unwrap_or_default();
                    out.push((p.partition_index as usize, p.high_watermark, records));
                }
                out
            }
        };
        for (p, high_watermark, records) in parts {
            ends[p] = high_watermark;
            if let Some((next, whole)) = next_offset(&records) {
                total += whole;
                offsets[p] = next;
            }
        }
    }
    Ok(total)
}

//! `kafka-bench`: produce or consume throughput of a Kafka client (librdkafka) against a
//! Kafka-protocol listener, for comparison with `runnel-bench` on the native listener
//! with the same message size, batch size and partitions (`benches/README.md`).
//!
//!   kafka-bench produce --bootstrap 127.0.0.1:9092 --topic t --count 1000000 --message-size 1024
//!   kafka-bench consume --bootstrap 127.0.0.1:9092 --topic t --count 1000000
//!
//! The topic must exist. Produce: a `BaseProducer` sending keyless records round-robin
//! over the partitions, `batch.size` = `--batch-bytes`, `linger.ms`, `acks`; time until
//! the last delivery. Consume: a `BaseConsumer` assigned every partition from the start,
//! time until `--count` records are read. Payloads are windows of a random pool.

use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use rand::RngCore;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Produce,
    Consume,
}

#[derive(Debug, Parser)]
#[command(name = "kafka-bench", about = "Kafka-client throughput against a Kafka listener")]
struct Args {
    mode: Mode,
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[arg(long, default_value = "kafka-bench")]
    topic: String,
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    #[arg(long, default_value_t = 100)]
    message_size: usize,
    /// librdkafka's batch.size
    #[arg(long, default_value_t = 65536)]
    batch_bytes: usize,
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// -1 (all), 1 (leader) or 0
    #[arg(long, default_value = "1", allow_hyphen_values = true)]
    acks: String,
    #[arg(long)]
    idempotence: bool,
    /// Any librdkafka property, as kcat's -X (repeatable), e.g. -X queued.min.messages=1000000
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    property: Vec<String>,
}

/// The base client config with every `-X` property applied.
fn client_config(args: &Args) -> Result<ClientConfig, String> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &args.bootstrap);
    for p in &args.property {
        let (k, v) = p.split_once('=').ok_or_else(|| format!("-X {p}: expected KEY=VALUE"))?;
        c.set(k, v);
    }
    Ok(c)
}

fn main() {
    let args = Args::parse();
    let result = match args.mode {
        Mode::Produce => produce(&args),
        Mode::Consume => consume(&args),
    };
    match result {
        Ok((n, secs)) => println!(
            "{:?}: {n} messages in {secs:.2} s: {:.0} msgs/s, {:.1} MB/s",
            args.mode,
            n as f64 / secs,
            (n * args.message_size as u64) as f64 / secs / 1e6
        ),
        Err(e) => {
            eprintln!("kafka-bench: {e}");
            std::process::exit(1);
        }
    }
}

fn produce(args: &Args) -> Result<(u64, f64), String> {
    let producer: BaseProducer = client_config(args)?
        .set("batch.size", args.batch_bytes.to_string())
        .set("linger.ms", args.linger_ms.to_string())
        .set("acks", &args.acks)
        .set("enable.idempotence", args.idempotence.to_string())
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .map_err(|e| e.to_string())?;
    let mut pool = vec![0u8; (1 << 20).max(2 * args.message_size)];
    rand::rng().fill_bytes(&mut pool);
    let per_batch = (args.batch_bytes / args.message_size.max(1)).max(1) as u64;
    let start = Instant::now();
    for i in 0..args.count {
        let off = (i as usize).wrapping_mul(7919) % (pool.len() - args.message_size + 1);
        let partition = ((i / per_batch) % args.partitions.max(1) as u64) as i32;
        let mut record = BaseRecord::<(), [u8]>::to(&args.topic)
            .payload(&pool[off..off + args.message_size])
            .partition(partition);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(format!("send: {e}")),
            }
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .map_err(|e| format!("flush: {e}"))?;
    Ok((args.count, start.elapsed().as_secs_f64()))
}

fn consume(args: &Args) -> Result<(u64, f64), String> {
    let consumer: BaseConsumer = client_config(args)?
        .set("group.id", "kafka-bench")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "1048576")
        .create()
        .map_err(|e| e.to_string())?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..args.partitions {
        tpl.add_partition_offset(&args.topic, p, Offset::Beginning)
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(120);
    let mut n = 0u64;
    let mut bytes = 0usize;
    while n < args.count && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.map_err(|e| format!("consume: {e}"))?;
            bytes += m.payload_len();
            n += 1;
        }
    }
    if n < args.count {
        return Err(format!("only {n} of {} messages in 120 s", args.count));
    }
    std::hint::black_box(bytes);
    Ok((n, start.elapsed().as_secs_f64()))
}

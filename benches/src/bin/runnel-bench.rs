//! `runnel-bench`: a load generator for a Runnel broker.
//!
//! - `produce`: P producers send `--count` messages (or for `--duration`); latency is
//!   send → acknowledgement.
//! - `consume`: C consumers read the topic from the start (filled first, untimed, when it
//!   holds fewer than `--count` messages).
//! - `e2e`: producers and consumers at once; latency is send → receipt, from a timestamp
//!   written into each message.
//!
//! With `--rate`, messages are sent on a fixed schedule and latency is counted from each
//! message's scheduled send time, so a stall delays the clock of every message behind it
//! (no coordinated omission). Latencies go into HDR histograms (`hdrhistogram`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use std::collections::VecDeque;

use futures::FutureExt;
use hdrhistogram::Histogram;
use rand::RngCore;
use runnel_client::{
    Acks, Admin, Consumer, ConsumerConfig, DeliveryFuture, Offset, Producer, ProducerConfig, ProducerRecord,
};
use std::io::{IsTerminal, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Produce,
    Consume,
    E2e,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AcksArg {
    All,
    Leader,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Flush {
    Always,
    Interval,
    Os,
}

#[derive(Debug, Parser)]
#[command(name = "runnel-bench", version, about = "Load generator for a Runnel broker")]
struct Args {
    mode: Mode,
    /// Broker address
    #[arg(long, env = "RUNNEL_BROKER", default_value = runnel_client::DEFAULT_BROKER_ADDR, conflicts_with = "embedded")]
    broker: String,
    /// Start a broker in this process, on a temporary directory (removed after)
    #[arg(long)]
    embedded: bool,
    /// Topic (created with --partitions and --flush if it does not exist)
    #[arg(long, default_value = "runnel-bench")]
    topic: String,
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// Replicas of each partition when the topic is created (-1: the broker's default).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    replication_factor: i32,
    /// Bytes per message value (random; e2e puts a timestamp in the first 8)
    #[arg(long, default_value_t = 100)]
    message_size: usize,
    /// Producer batch size per partition (records also go to partitions in runs of
    /// one batch, as keyless records under the sticky partitioner)
    #[arg(long, default_value_t = 64 * 1024)]
    batch_bytes: usize,
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Produce requests in flight per partition, per producer (Kafka's
    /// max.in.flight.requests.per.connection; the client's default)
    #[arg(long, default_value_t = 5)]
    max_in_flight: usize,
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Idempotent producers (the client's default; with up to 5 in flight)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    idempotence: bool,
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    #[arg(long, value_enum, default_value = "leader")]
    acks: AcksArg,
    /// The topic's flush.policy when the tool creates it
    #[arg(long, value_enum, default_value = "os")]
    flush: Flush,
    /// Another topic config KEY=VALUE when the tool creates the topic (e.g.
    /// compression.type=zstd); repeatable
    #[arg(long = "topic-config", value_name = "KEY=VALUE")]
    topic_configs: Vec<String>,
    /// Messages in all (produce, e2e: sent; consume: read)
    #[arg(long, default_value_t = 1_000_000, conflicts_with = "duration")]
    count: u64,
    /// Run for this many seconds instead of a count (produce, e2e)
    #[arg(long)]
    duration: Option<f64>,
    /// Offered load in messages per second, all producers together
    #[arg(long)]
    rate: Option<f64>,
    /// Print the result as one JSON object
    #[arg(long)]
    json: bool,
    /// The broker's process id (a broker started separately): report the CPU time it
    /// spent during the timed part, and per GB of message values moved
    #[arg(long, conflicts_with = "embedded")]
    broker_pid: Option<u32>,
    /// Connect with TLS, trusting the CA certificates in this PEM file
    #[arg(long, value_name = "PEM", conflicts_with = "embedded")]
    tls_ca: Option<std::path::PathBuf>,
}

/// The connection settings of every client the benchmark opens (TLS from --tls-ca).
static CLIENT: std::sync::OnceLock<runnel_client::ClientConfig> = std::sync::OnceLock::new();

fn client_config() -> runnel_client::ClientConfig {
    CLIENT.get().cloned().unwrap_or_default()
}

/// Nanoseconds since the epoch: comparable between producer and consumer tasks.
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

struct Shared {
    sent: AtomicU64,
    done: AtomicU64,
    bytes: AtomicU64,
    stop: tokio::sync::watch::Sender<bool>,
    latency: Mutex<Histogram<u64>>,
}

impl Shared {
    fn new() -> Arc<Shared> {
        Arc::new(Shared {
            sent: AtomicU64::new(0),
            done: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            stop: tokio::sync::watch::Sender::new(false),
            latency: Mutex::new(histogram()),
        })
    }
}

fn main() {
    let args = Args::parse();
    if let Some(ca) = &args.tls_ca {
        match runnel_client::TlsConfig::from_ca_file(ca) {
            Ok(tls) => {
                let _ = CLIENT.set(runnel_client::ClientConfig {
                    tls: Some(tls),
                    ..Default::default()
                });
            }
            Err(e) => {
                eprintln!("runnel-bench: --tls-ca: {e}");
                std::process::exit(2);
            }
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Err(e) = rt.block_on(run(args)) {
        eprintln!("runnel-bench: {e}");
        std::process::exit(1);
    }
}

// Long by choice: the benchmark's set-up, its three modes and the report in one place.
async fn run(args: Args) -> Result<(), String> {
    if args.message_size < 8 && args.mode == Mode::E2e {
        return Err("e2e needs --message-size of at least 8 (the timestamp)".into());
    }
    let _embedded;
    let broker = if args.embedded {
        let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let storage = runnel_broker::storage::LogManager::open(runnel_broker::storage::StorageConfig::new(dir.path()))
            .map_err(|e| e.to_string())?;
        let cfg = runnel_broker::server::ServerConfig {
            listen: "127.0.0.1:0".parse().expect("address"),
            ..Default::default()
        };
        let server = runnel_broker::server::Server::bind(storage, cfg)
            .await
            .map_err(|e| e.to_string())?;
        let addr = server.local_addr().to_string();
        _embedded = Some((server, dir));
        addr
    } else {
        _embedded = None;
        args.broker.clone()
    };
    let err = |e: runnel_client::Error| e.to_string();
    let admin = Admin::connect_with(&broker, client_config()).await.map_err(err)?;
    let flush = match args.flush {
        Flush::Always => "always",
        Flush::Interval => "interval",
        Flush::Os => "os",
    };
    let mut configs: std::collections::BTreeMap<String, String> =
        [("flush.policy".to_string(), flush.to_string())].into();
    for kv in &args.topic_configs {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--topic-config {kv:?}: expected KEY=VALUE"))?;
        configs.insert(k.to_owned(), v.to_owned());
    }
    match admin
        .create_replicated_topic(&args.topic, args.partitions, args.replication_factor, configs)
        .await
    {
        Ok(()) => {}
        Err(e) if e.code() == Some(runnel_client::ErrorCode::TopicAlreadyExists) => {}
        Err(e) => return Err(err(e)),
    }
    let shared = Shared::new();
    let args = Arc::new(args);
    if args.mode == Mode::Consume {
        let have: i64 = admin
            .describe_topic(&args.topic)
            .await
            .map_err(err)?
            .partitions
            .iter()
            .map(|p| p.end_offset - p.start_offset)
            .sum();
        if (have as u64) < args.count {
            eprintln!(
                "runnel-bench: filling {} with {} messages first",
                args.topic,
                args.count - have as u64
            );
            let fill = Shared::new();
            produce_all(&broker, &args, &fill, args.count - have as u64, None).await?;
        }
    }

    let progress = spawn_progress(shared.clone(), args.mode);
    let broker_cpu0 = args.broker_pid.map(runnel_bench::process_cpu_secs).transpose()?;
    let start = Instant::now();
    let mut consumers = Vec::new();
    if matches!(args.mode, Mode::Consume | Mode::E2e) {
        for k in 0..args.consumers.max(1) {
            let (b, a, s) = (broker.clone(), args.clone(), shared.clone());
            consumers.push(tokio::spawn(async move { consume(&b, &a, &s, k).await }));
        }
        // Consumers are at the end before e2e producers start.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let start = if args.mode == Mode::E2e { Instant::now() } else { start };
    if matches!(args.mode, Mode::Produce | Mode::E2e) {
        produce_all(
            &broker,
            &args,
            &shared,
            args.count,
            args.duration.map(Duration::from_secs_f64),
        )
        .await?;
    }
    let sent = shared.sent.load(Ordering::Relaxed);
    if !consumers.is_empty() {
        let target = if args.mode == Mode::E2e { sent } else { args.count };
        let deadline = Instant::now() + Duration::from_secs(60);
        while shared.done.load(Ordering::Relaxed) < target && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        shared.stop.send_replace(true);
        for c in consumers {
            c.await.map_err(|e| e.to_string())??;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    progress.abort();
    let broker_cpu = match (args.broker_pid, broker_cpu0) {
        (Some(pid), Some(before)) => Some(runnel_bench::process_cpu_secs(pid)? - before),
        _ => None,
    };
    report(&args, &shared, elapsed, broker_cpu);
    Ok(())
}

/// Sends `count` messages (or until `duration`) from `--producers` producers.
async fn produce_all(
    broker: &str,
    args: &Arc<Args>,
    shared: &Arc<Shared>,
    count: u64,
    duration: Option<Duration>,
) -> Result<(), String> {
    let mut pool = vec![0u8; (1 << 20).max(2 * args.message_size)];
    runnel_bench::rng(7).fill_bytes(&mut pool);
    let pool = Bytes::from(pool);
    let producers = args.producers.max(1) as u64;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..producers {
        let config = ProducerConfig {
            acks: match args.acks {
                AcksArg::All => Acks::All,
                AcksArg::Leader => Acks::Leader,
                AcksArg::None => Acks::None,
            },
            batch_size_bytes: args.batch_bytes,
            linger: Duration::from_millis(args.linger_ms),
            max_in_flight_per_partition: args.max_in_flight,
            idempotence: args.idempotence,
            client: runnel_client::ClientConfig {
                auto_create_topics: true,
                ..client_config()
            },
            ..ProducerConfig::default()
        };
        let p = Producer::connect(broker, config).await.map_err(|e| e.to_string())?;
        let (a, s, pool) = (args.clone(), shared.clone(), pool.clone());
        let mine = count / producers + u64::from(k < count % producers);
        let rate = args.rate.map(|r| r / producers as f64);
        tasks.push(tokio::spawn(async move {
            // Records go to partitions in runs of one batch (as the sticky partitioner
            // would place keyless records), named explicitly so each partition's
            // acknowledgements can be collected in order: a partition has one request in
            // flight and acknowledges in send order, so polling the front of its queue
            // records every latency when it happens, at O(1) per message.
            let size = a.message_size;
            let per_batch = (a.batch_bytes / size.max(1)).max(1) as u64;
            let partitions = a.partitions.max(1) as u64;
            let mut queues: Vec<VecDeque<(DeliveryFuture, Instant)>> =
                (0..partitions).map(|_| VecDeque::new()).collect();
            let topic: Arc<str> = a.topic.as_str().into();
            let mut i = 0u64;
            loop {
                if duration.map_or(i >= mine, |d| start.elapsed() >= d) {
                    break;
                }
                // The scheduled send time: now, or the fixed-rate clock.
                let scheduled = match rate {
                    Some(r) => {
                        let at = start + Duration::from_secs_f64(i as f64 / r);
                        if at > Instant::now() {
                            tokio::time::sleep_until(at.into()).await;
                        }
                        at
                    }
                    None => Instant::now(),
                };
                // A different window of the random pool per message, without copying it.
                let off = (i as usize).wrapping_mul(7919) % (pool.len() - size + 1);
                let value = if a.mode == Mode::E2e {
                    let mut v = pool.slice(off..off + size).to_vec();
                    let ts = now_ns() - scheduled.elapsed().as_nanos() as u64;
                    v[..8].copy_from_slice(&ts.to_be_bytes());
                    Bytes::from(v)
                } else {
                    pool.slice(off..off + size)
                };
                let partition = ((k * 7 + i / per_batch) % partitions) as usize;
                let record = ProducerRecord::new(topic.clone(), value).partition(partition as u32);
                let d = p.send(record).await.map_err(|e| e.to_string())?;
                s.sent.fetch_add(1, Ordering::Relaxed);
                queues[partition].push_back((d, scheduled));
                // One clock read per pass for the acknowledgements it finds (a batch's
                // records are acknowledged together).
                let mut now = None;
                for q in queues.iter_mut() {
                    while let Some((d, at)) = q.front_mut() {
                        let Some(r) = d.now_or_never() else { break };
                        ack(&a, &s, r, *at, *now.get_or_insert_with(Instant::now))?;
                        q.pop_front();
                    }
                }
                i += 1;
            }
            for q in queues {
                for (d, at) in q {
                    let r = d.await;
                    ack(&a, &s, r, at, Instant::now())?;
                }
            }
            p.close().await;
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

fn ack(
    args: &Args,
    s: &Shared,
    r: runnel_client::Result<runnel_client::RecordMetadata>,
    scheduled: Instant,
    now: Instant,
) -> Result<(), String> {
    r.map_err(|e| format!("send failed: {e}"))?;
    if args.mode == Mode::Produce {
        let us = now.saturating_duration_since(scheduled).as_micros().max(1) as u64;
        s.latency.lock().expect("histogram").saturating_record(us);
        s.done.fetch_add(1, Ordering::Relaxed);
        s.bytes.fetch_add(args.message_size as u64, Ordering::Relaxed);
    }
    Ok(())
}

/// Reads its share of the partitions (p % consumers == k) until told to stop.
async fn consume(broker: &str, args: &Args, s: &Shared, k: usize) -> Result<(), String> {
    let err = |e: runnel_client::Error| e.to_string();
    let mut c = Consumer::connect(
        broker,
        ConsumerConfig {
            client: client_config(),
            ..ConsumerConfig::default()
        },
    )
    .await
    .map_err(err)?;
    let mine: Vec<(String, u32)> = (0..args.partitions)
        .filter(|p| *p as usize % args.consumers.max(1) == k)
        .map(|p| (args.topic.clone(), p))
        .collect();
    if mine.is_empty() {
        return Ok(());
    }
    c.assign(mine).await.map_err(err)?;
    let from = if args.mode == Mode::E2e {
        Offset::Latest
    } else {
        Offset::Earliest
    };
    c.seek_all(from).await.map_err(err)?;
    let mut local = histogram();
    let mut n = 0u64;
    // Told to stop through a watch rather than a timeout around each `next`: a timer per
    // record was a tenth of the tool's CPU.
    let mut stop = s.stop.subscribe();
    loop {
        let r = tokio::select! {
            biased;
            r = c.next() => match r {
                None => break,
                Some(r) => r.map_err(err)?,
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let len = r.value.as_ref().map_or(0, |v| v.len());
        if args.mode == Mode::E2e {
            if let Some(v) = r.value.as_ref().filter(|v| v.len() >= 8) {
                let sent = u64::from_be_bytes(v[..8].try_into().expect("8 bytes"));
                local.saturating_record((now_ns().saturating_sub(sent) / 1000).max(1));
            }
        }
        n += 1;
        s.done.fetch_add(1, Ordering::Relaxed);
        s.bytes.fetch_add(len as u64, Ordering::Relaxed);
        if n.is_multiple_of(65_536) {
            s.latency.lock().expect("histogram").add(&local).ok();
            local.reset();
        }
    }
    s.latency.lock().expect("histogram").add(&local).ok();
    Ok(())
}

fn spawn_progress(s: Arc<Shared>, mode: Mode) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if !std::io::stderr().is_terminal() {
            return;
        }
        let bar = indicatif::ProgressBar::new_spinner();
        let mut last = (Instant::now(), 0u64);
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let done = s.done.load(Ordering::Relaxed);
            let rate = (done - last.1) as f64 / last.0.elapsed().as_secs_f64();
            last = (Instant::now(), done);
            bar.set_message(format!(
                "{mode:?}: {done} messages, {:.0} msgs/s, sent {}",
                rate,
                s.sent.load(Ordering::Relaxed)
            ));
            bar.tick();
        }
    })
}

fn report(args: &Args, s: &Shared, secs: f64, broker_cpu: Option<f64>) {
    let h = s.latency.lock().expect("histogram");
    let n = s.done.load(Ordering::Relaxed);
    let bytes = s.bytes.load(Ordering::Relaxed);
    let cpu_per_gb = broker_cpu.map(|c| c / (bytes as f64 / 1e9));
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let result = serde_json::json!({
        "mode": format!("{:?}", args.mode).to_lowercase(),
        "messages": n,
        "seconds": secs,
        "msgs_per_sec": n as f64 / secs,
        "mb_per_sec": bytes as f64 / secs / 1e6,
        "message_size": args.message_size,
        "batch_bytes": args.batch_bytes,
        "max_in_flight": args.max_in_flight,
        "producers": args.producers,
        "consumers": args.consumers,
        "partitions": args.partitions,
        "acks": format!("{:?}", args.acks).to_lowercase(),
        "flush": format!("{:?}", args.flush).to_lowercase(),
        "rate": args.rate,
        "latency_ms": {
            "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "p99.9": ms(0.999),
            "p99.99": ms(0.9999), "max": h.max() as f64 / 1000.0, "samples": h.len(),
        },
        "broker_cpu_seconds": broker_cpu,
        "broker_cpu_seconds_per_gb": cpu_per_gb,
    });
    // A closed stdout (`| head`) is not an error worth a panic.
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(out, "{result}");
        return;
    }
    let _ = writeln!(
        out,
        "{:?}: {} messages in {:.2} s: {:.0} msgs/s, {:.1} MB/s",
        args.mode,
        n,
        secs,
        n as f64 / secs,
        bytes as f64 / secs / 1e6
    );
    if !h.is_empty() {
        let _ = writeln!(
            out,
            "latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  p99.99 {:.3}  max {:.3}",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            ms(0.999),
            ms(0.9999),
            h.max() as f64 / 1000.0
        );
    }
    if let (Some(cpu), Some(per_gb)) = (broker_cpu, cpu_per_gb) {
        let _ = writeln!(out, "broker cpu: {cpu:.2} s, {per_gb:.3} CPU-s per GB");
    }
}

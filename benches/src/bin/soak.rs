//! `soak`: one broker process under everything at once for a set time, watched for drift.
//!
//! Against a `runnel-broker` it starts (loopback, a temporary data directory, retention
//! bounding the disk), for `--seconds`:
//! - an idempotent producer writing `--produce-mbps` to topic `soak` (6 partitions), each
//!   record's value carrying the offset it should land at (one producer per partition
//!   keeps them equal);
//! - a verifier reading every partition from the start, checking each record's value
//!   against its offset (nothing lost, duplicated or reordered);
//! - a consumer group whose members join and leave (one change every `--churn-seconds`),
//!   committing as they go;
//! - topics created, written and deleted (one every `--churn-seconds`);
//! - bad clients: garbage bytes, an oversized frame, a frame cut short, each on its own
//!   connection, several a second.
//!
//! Every `--report-seconds` it prints one line: produced and verified MB/s, group
//! changes, topics churned, bad clients, the broker's RSS and open fds. At the end: every
//! acknowledged record read back (or how many were not), and the RSS and fd ranges.
//!
//!   cargo build --release -p runnel-broker -p runnel-bench --bins
//!   target/release/soak --seconds 3600

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use runnel_client::{
    Admin, Consumer, ConsumerConfig, GroupConfig, Offset, OffsetReset, Producer, ProducerConfig, ProducerRecord,
};

#[derive(Debug, Parser)]
#[command(
    name = "soak",
    about = "One broker under produce, consume, groups, topic churn and bad clients"
)]
struct Args {
    /// How long the load runs
    #[arg(long, default_value_t = 3600)]
    seconds: u64,
    /// Produce rate (the verifier reads everything back)
    #[arg(long, default_value_t = 20.0)]
    produce_mbps: f64,
    /// Record value size
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// One group member change and one topic created and deleted this often
    #[arg(long, default_value_t = 5)]
    churn_seconds: u64,
    /// One report line this often
    #[arg(long, default_value_t = 60)]
    report_seconds: u64,
    /// The broker binary
    #[arg(long, default_value = "target/release/runnel-broker")]
    broker_bin: PathBuf,
}

const TOPIC: &str = "soak";
const PARTITIONS: u32 = 6;
const GROUP: &str = "soak-group";

#[derive(Default)]
struct Counters {
    produced_bytes: AtomicU64,
    acked: AtomicU64,
    verified: AtomicU64,
    verified_bytes: AtomicU64,
    /// Records whose value did not match their offset.
    mismatched: AtomicU64,
    /// Records the verifier could not read before retention removed them.
    skipped: AtomicU64,
    group_changes: AtomicU64,
    group_records: AtomicU64,
    topics_churned: AtomicU64,
    bad_clients: AtomicU64,
    errors: AtomicU64,
    /// Per partition: the highest acknowledged offset.
    acked_end: [AtomicI64; PARTITIONS as usize],
    /// Per partition: the verifier's next offset.
    verified_end: [AtomicI64; PARTITIONS as usize],
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// Resident memory (KiB) and open file descriptors of a process.
fn rss_and_fds(pid: u32) -> (u64, usize) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (rss, fds)
}

fn start_broker(bin: &PathBuf, dir: &std::path::Path, addr: SocketAddr) -> Child {
    Command::new(bin)
        .args([
            "--listen",
            &addr.to_string(),
            "--kafka-listen",
            "off",
            "--metrics-listen",
            "off",
        ])
        .args(["--retention-check-interval-ms", "5000"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("broker.log")).expect("log file"))
        .spawn()
        .expect("the broker binary runs (build it with cargo build --release)")
}

async fn produce(addr: String, args: Arc<Args>, c: Arc<Counters>, stop: Arc<AtomicBool>) {
    let producer = Producer::connect(addr, ProducerConfig::default())
        .await
        .expect("producer");
    let mut next = [0i64; PARTITIONS as usize];
    let mut value = vec![b'x'; args.record_bytes.max(16)];
    let bytes_per_sec = args.produce_mbps * 1e6;
    let started = Instant::now();
    let mut sent_bytes = 0f64;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<runnel_client::DeliveryFuture>(100_000);
    let c2 = c.clone();
    let acks = tokio::spawn(async move {
        while let Some(d) = rx.recv().await {
            match d.await {
                Ok(m) => {
                    c2.acked.fetch_add(1, Ordering::Relaxed);
                    c2.acked_end[m.partition as usize].fetch_max(m.offset, Ordering::Relaxed);
                }
                Err(_) => {
                    c2.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    let mut p = 0u32;
    while !stop.load(Ordering::Relaxed) {
        // Throttle: stay at the configured rate.
        let due = sent_bytes / bytes_per_sec;
        let elapsed = started.elapsed().as_secs_f64();
        if due > elapsed {
            tokio::time::sleep(Duration::from_secs_f64((due - elapsed).min(0.1))).await;
            continue;
        }
        let offset = next[p as usize];
        value[..8].copy_from_slice(&offset.to_be_bytes());
        match producer
            .send(ProducerRecord::new(TOPIC, value.clone()).partition(p))
            .await
        {
            Ok(d) => {
                next[p as usize] += 1;
                sent_bytes += value.len() as f64;
                c.produced_bytes.fetch_add(value.len() as u64, Ordering::Relaxed);
                if tx.send(d).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                eprintln!("produce failed: {e}");
                c.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        p = (p + 1) % PARTITIONS;
    }
    producer.flush().await;
    drop(tx);
    let _ = acks.await;
    producer.close().await;
}

async fn verify(addr: String, c: Arc<Counters>, done: Arc<AtomicBool>) {
    let config = ConsumerConfig {
        auto_offset_reset: OffsetReset::Earliest,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::connect(addr, config).await.expect("verifier");
    consumer
        .assign((0..PARTITIONS).map(|p| (TOPIC.to_owned(), p)))
        .await
        .expect("assign");
    for p in 0..PARTITIONS {
        consumer.seek(TOPIC, p, Offset::Earliest).await.expect("seek");
    }
    loop {
        let caught_up = (0..PARTITIONS as usize)
            .all(|p| c.verified_end[p].load(Ordering::Relaxed) > c.acked_end[p].load(Ordering::Relaxed));
        if done.load(Ordering::Relaxed) && caught_up {
            return;
        }
        match tokio::time::timeout(Duration::from_millis(500), consumer.next()).await {
            Ok(Some(Ok(r))) => {
                let p = r.partition as usize;
                let expected = c.verified_end[p].load(Ordering::Relaxed);
                if r.offset > expected {
                    // Retention removed records before they were read.
                    c.skipped.fetch_add((r.offset - expected) as u64, Ordering::Relaxed);
                }
                let v = r.value.as_deref().unwrap_or_default();
                let carried = v.get(..8).map(|b| i64::from_be_bytes(b.try_into().expect("8 bytes")));
                if carried != Some(r.offset) {
                    c.mismatched.fetch_add(1, Ordering::Relaxed);
                }
                c.verified.fetch_add(1, Ordering::Relaxed);
                c.verified_bytes.fetch_add(v.len() as u64, Ordering::Relaxed);
                c.verified_end[p].store(r.offset + 1, Ordering::Relaxed);
            }
            Ok(Some(Err(e))) => {
                eprintln!("verifier: {e}");
                c.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(None) => return,
            Err(_) => {}
        }
    }
}

/// Group members joining and leaving: one change per `churn`.
async fn group_churn(addr: String, churn: Duration, c: Arc<Counters>, stop: Arc<AtomicBool>) {
    let mut members: Vec<(tokio::task::JoinHandle<()>, Arc<AtomicBool>)> = Vec::new();
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        if members.len() >= 3 || (members.len() > 1 && round.is_multiple_of(2)) {
            let (h, quit) = members.remove(0);
            quit.store(true, Ordering::Relaxed);
            let _ = h.await;
        } else {
            let quit = Arc::new(AtomicBool::new(false));
            let (a, q, c2) = (addr.clone(), quit.clone(), c.clone());
            members.push((
                tokio::spawn(async move {
                    let config = ConsumerConfig {
                        auto_offset_reset: OffsetReset::Latest,
                        group: GroupConfig {
                            session_timeout: Duration::from_secs(10),
                            ..GroupConfig::default()
                        },
                        ..ConsumerConfig::default()
                    };
                    let Ok(mut m) = Consumer::connect(a, config).await else {
                        c2.errors.fetch_add(1, Ordering::Relaxed);
                        return;
                    };
                    if m.subscribe(GROUP, [TOPIC]).await.is_err() {
                        c2.errors.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    while !q.load(Ordering::Relaxed) {
                        if let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_millis(200), m.next()).await {
                            c2.group_records.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    let _ = m.close().await;
                }),
                quit,
            ));
        }
        c.group_changes.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(churn).await;
    }
    for (h, quit) in members {
        quit.store(true, Ordering::Relaxed);
        let _ = h.await;
    }
}

/// A topic created, written and deleted per `churn`.
async fn topic_churn(addr: String, churn: Duration, c: Arc<Counters>, stop: Arc<AtomicBool>) {
    let admin = Admin::connect(addr.clone()).await.expect("admin");
    let producer = Producer::connect(addr, ProducerConfig::default())
        .await
        .expect("producer");
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let name = format!("churn-{n}");
        let ok = async {
            admin.create_topic(&name, 3, BTreeMap::new()).await?;
            for i in 0..30u32 {
                producer
                    .send(ProducerRecord::new(name.as_str(), vec![0u8; 100]).partition(i % 3))
                    .await?
                    .await?;
            }
            admin.delete_topic(&name).await
        }
        .await;
        match ok {
            Ok(()) => c.topics_churned.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                eprintln!("topic churn {name}: {e}");
                c.errors.fetch_add(1, Ordering::Relaxed)
            }
        };
        tokio::time::sleep(churn).await;
    }
    producer.close().await;
}

/// Bad clients, several a second, each on its own connection: garbage, an oversized
/// frame, a frame cut short.
fn bad_clients(addr: SocketAddr, c: Arc<Counters>, stop: Arc<AtomicBool>) {
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let payload: Vec<u8> = match i % 3 {
            0 => (0..512).map(|k| (k * 7 + i) as u8).collect(),
            1 => {
                let mut f = (u32::MAX - 1).to_be_bytes().to_vec();
                f.extend_from_slice(&[0, 3, 0, 0, 0, 0, 0, 1]);
                f
            }
            _ => {
                let mut f = 1000u32.to_be_bytes().to_vec();
                f.extend_from_slice(&[0, 3, 0, 0, 0, 0, 0, 1, 0, 0]);
                f
            }
        };
        if let Ok(mut s) = TcpStream::connect(addr) {
            let _ = s.write_all(&payload);
            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
            let mut buf = [0u8; 256];
            let _ = std::io::Read::read(&mut s, &mut buf);
            c.bad_clients.fetch_add(1, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Arc::new(Args::parse());
    let root = tempfile::tempdir().expect("a temporary directory");
    let addr = free_addr();
    let mut broker = start_broker(&args.broker_bin, root.path(), addr);
    let pid = broker.id();
    let bootstrap = addr.to_string();
    let admin = loop {
        match Admin::connect(bootstrap.clone()).await {
            Ok(a) => break a,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    // Retention bounds the disk: 1 GiB per partition, 128 MiB segments.
    let configs: BTreeMap<String, String> = [("retention.bytes", "1073741824"), ("segment.bytes", "134217728")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    admin
        .create_topic(TOPIC, PARTITIONS, configs)
        .await
        .expect("create the soak topic");

    let c = Arc::new(Counters::default());
    for p in 0..PARTITIONS as usize {
        c.acked_end[p].store(-1, Ordering::Relaxed);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let churn = Duration::from_secs(args.churn_seconds);
    let producer = tokio::spawn(produce(bootstrap.clone(), args.clone(), c.clone(), stop.clone()));
    let verifier = tokio::spawn(verify(bootstrap.clone(), c.clone(), done.clone()));
    let groups = tokio::spawn(group_churn(bootstrap.clone(), churn, c.clone(), stop.clone()));
    let topics = tokio::spawn(topic_churn(bootstrap.clone(), churn, c.clone(), stop.clone()));
    let bad = {
        let (c, stop) = (c.clone(), stop.clone());
        std::thread::spawn(move || bad_clients(addr, c, stop))
    };

    println!("minute  produce_MB/s  verify_MB/s  acked_total  group_changes  topics  bad_clients  rss_MiB  fds");
    let started = Instant::now();
    let (mut rss_range, mut fd_range) = ((u64::MAX, 0u64), (usize::MAX, 0usize));
    let (mut last_p, mut last_v) = (0u64, 0u64);
    let every = Duration::from_secs(args.report_seconds);
    while started.elapsed() < Duration::from_secs(args.seconds) {
        tokio::time::sleep(every.min(Duration::from_secs(args.seconds).saturating_sub(started.elapsed()))).await;
        let (rss, fds) = rss_and_fds(pid);
        // The first minute warms up (page cache, connections): ranges from then on.
        if started.elapsed() > Duration::from_secs(60) {
            rss_range = (rss_range.0.min(rss), rss_range.1.max(rss));
            fd_range = (fd_range.0.min(fds), fd_range.1.max(fds));
        }
        let (p, v) = (
            c.produced_bytes.load(Ordering::Relaxed),
            c.verified_bytes.load(Ordering::Relaxed),
        );
        let secs = every.as_secs_f64();
        println!(
            "{:>6.1}  {:>12.1}  {:>11.1}  {:>11}  {:>13}  {:>6}  {:>11}  {:>7}  {:>3}",
            started.elapsed().as_secs_f64() / 60.0,
            (p - last_p) as f64 / secs / 1e6,
            (v - last_v) as f64 / secs / 1e6,
            c.acked.load(Ordering::Relaxed),
            c.group_changes.load(Ordering::Relaxed),
            c.topics_churned.load(Ordering::Relaxed),
            c.bad_clients.load(Ordering::Relaxed),
            rss / 1024,
            fds
        );
        (last_p, last_v) = (p, v);
        if let Ok(Some(status)) = broker.try_wait() {
            panic!("the broker exited: {status}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = producer.await;
    done.store(true, Ordering::Relaxed);
    let _ = tokio::time::timeout(Duration::from_secs(120), verifier).await;
    let _ = groups.await;
    let _ = topics.await;
    let _ = bad.join();

    let mut not_read = 0i64;
    for p in 0..PARTITIONS as usize {
        let acked_end = c.acked_end[p].load(Ordering::Relaxed);
        let verified_end = c.verified_end[p].load(Ordering::Relaxed);
        not_read += (acked_end + 1 - verified_end).max(0);
    }
    println!();
    println!(
        "records acknowledged {}, read back and checked {}, acknowledged but not read back {}, value/offset mismatches {}, skipped by retention {}",
        c.acked.load(Ordering::Relaxed),
        c.verified.load(Ordering::Relaxed),
        not_read,
        c.mismatched.load(Ordering::Relaxed),
        c.skipped.load(Ordering::Relaxed)
    );
    println!(
        "group changes {}, group records {}, topics created and deleted {}, bad clients {}, client errors {}",
        c.group_changes.load(Ordering::Relaxed),
        c.group_records.load(Ordering::Relaxed),
        c.topics_churned.load(Ordering::Relaxed),
        c.bad_clients.load(Ordering::Relaxed),
        c.errors.load(Ordering::Relaxed)
    );
    println!(
        "broker RSS after the first minute: {}–{} MiB; open fds: {}–{}",
        rss_range.0 / 1024,
        rss_range.1 / 1024,
        fd_range.0,
        fd_range.1
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = broker.wait();
    if not_read > 0 || c.mismatched.load(Ordering::Relaxed) > 0 {
        std::process::exit(1);
    }
}

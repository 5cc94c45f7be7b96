//! The long fault campaign behind the replication claims (not in CI): three broker
//! processes on loopback, a replication-factor-3 topic, an idempotent acks=all producer
//! writing all along, and rounds of faults on partition leaders —
//!
//! 1. kill -9 of the leader, then its restart;
//! 2. SIGTERM of the leader (controlled shutdown), then its restart;
//! 3. a network partition cutting the leader off from the other brokers, then the heal;
//! 4. on a second cluster whose data directories run on the simulated disk, the leader's
//!    power loss (unsynced writes dropped, torn), then its restart.
//!
//! Each round waits for every replica to be back in sync before the next. At the end of
//! each cluster the checker reads everything back: acknowledged count, lost,
//! duplicates, out of order, divergent replicas. Unavailability of each failover is the
//! time from the fault to the first record of that partition acknowledged after it
//! (by the new leader), as p50/p99 per kind of fault.
//!
//! ```text
//! cargo build --release --workspace
//! target/release/fault-campaign --kills 200 --sigterms 20 --partitions 50 --power-losses 50
//! ```
//!
//! `RUNNEL_FAULTS_KEEP=1` keeps the brokers' data and logs and prints each round;
//! `RUNNEL_CAMPAIGN_LOG=runnel_client=debug` (a tracing filter) logs the campaign's own
//! clients to stderr.

use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use runnel_bench::faults::workload::{self, wait_partitions, Report, Writer, LIMIT};
use runnel_bench::faults::{FaultCluster, Options};
use runnel_client::{Acks, Admin, Client, ClientConfig};
use runnel_protocol::messages::{
    OffsetForLeaderEpochPartition, OffsetForLeaderEpochRequest, OffsetForLeaderEpochTopic,
};

#[derive(Parser, Debug)]
#[command(about = "Replication fault campaign: kills, SIGTERMs, partitions and power losses of leaders")]
struct Args {
    /// kill -9 rounds.
    #[arg(long, default_value_t = 200)]
    kills: u32,
    /// SIGTERM (controlled shutdown) rounds.
    #[arg(long, default_value_t = 20)]
    sigterms: u32,
    /// Network partition rounds (the leader cut off from the other brokers).
    #[arg(long, default_value_t = 50)]
    partitions: u32,
    /// Simulated power losses of the leader (on a second cluster).
    #[arg(long, default_value_t = 50)]
    power_losses: u32,
    /// Records a second the producer sends (bounds the simulated disk's memory).
    #[arg(long, default_value_t = 2000)]
    rate: u32,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 3)]
    topic_partitions: u32,
    /// The producer's request timeout: a leader cut off from the cluster but not from
    /// the producer holds its acks=all writes (they are never acknowledged) until then.
    #[arg(long, default_value_t = 5000)]
    request_timeout_ms: u64,
    /// How long a network partition lasts at most (healed earlier once the partition is
    /// written to again).
    #[arg(long, default_value_t = 15000)]
    partition_hold_ms: u64,
}

const TOPIC: &str = "campaign";

/// An admin client on a running broker other than `not` (bounded).
async fn admin_avoiding(c: &FaultCluster, not: i32) -> Admin {
    let cfg = ClientConfig {
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        ..ClientConfig::default()
    };
    let start = Instant::now();
    loop {
        for id in c.running().into_iter().filter(|id| *id != not) {
            if let Ok(a) = Admin::connect_with(c.addr(id), cfg.clone()).await {
                if a.describe_cluster().await.is_ok() {
                    return a;
                }
            }
        }
        assert!(start.elapsed() < LIMIT, "no broker answers");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The leader of partition `p` and its epoch (bounded).
async fn leader_of(c: &FaultCluster, p: u32) -> (i32, i32) {
    let admin = admin_avoiding(c, -1).await;
    let x = &wait_partitions(&admin, TOPIC, "a leader", |x| x.partition != p || x.leader >= 0).await[p as usize];
    (x.leader, x.leader_epoch)
}

/// The offset where partition `p`'s leader epoch `epoch` ended — the first offset a
/// later leader wrote — as the current leader's epoch history says; `None` while
/// `epoch` is still the current one.
async fn epoch_end(c: &FaultCluster, p: u32, epoch: i32) -> Option<i64> {
    let (leader, now) = leader_of(c, p).await;
    if now == epoch {
        return None;
    }
    let client = Client::connect(c.addr(leader), ClientConfig::default()).await.ok()?;
    let resp = client
        .call(&OffsetForLeaderEpochRequest {
            topics: vec![OffsetForLeaderEpochTopic {
                name: TOPIC.into(),
                partitions: vec![OffsetForLeaderEpochPartition {
                    partition: p,
                    current_leader_epoch: now,
                    leader_epoch: epoch,
                }],
            }],
            replica_id: -1,
        })
        .await
        .ok()?;
    let r = resp.topics.first()?.partitions.first()?;
    (r.error_code == 0 && r.end_offset >= 0).then_some(r.end_offset)
}

/// Waits until partition `p` has a record acknowledged after `since_count` was read: the
/// time from `fault_at` to then.
async fn first_ack_after(w: &Writer, p: u32, since_count: usize, fault_at: Instant) -> Duration {
    loop {
        if w.acked_in(p) > since_count {
            return fault_at.elapsed();
        }
        assert!(
            fault_at.elapsed() < LIMIT * 2,
            "partition {p}: nothing acknowledged after the fault"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Every replica back in sync and every partition led by its preferred replica again
/// (which follows once it is in sync): the next round's leader is the one it faults.
async fn all_in_sync(c: &FaultCluster) {
    let admin = admin_avoiding(c, -1).await;
    wait_partitions(&admin, TOPIC, "every replica back in sync", |x| {
        x.leader >= 0 && x.isr.len() == x.replicas.len() && x.replicas.first() == Some(&x.leader)
    })
    .await;
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Kill,
    Term,
    Partition,
    PowerLoss,
}

/// One round: the fault on partition `p`'s leader, the unavailability it caused, and the
/// leader's return.
async fn round(c: &mut FaultCluster, w: &Writer, p: u32, fault: Fault, hold: Duration) -> Duration {
    let (leader, epoch) = leader_of(c, p).await;
    let before = w.acked_in(p);
    // Bring the partition's last acknowledgements in before the fault: the count is read
    // first, so an answer already in flight is not taken for the new leader's.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let before = before.max(w.acked_in(p));
    let at = Instant::now();
    if std::env::var_os("RUNNEL_FAULTS_KEEP").is_some() {
        eprintln!(
            "{fault:?} of broker {leader} (partition {p}) at {}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        );
    }
    match fault {
        Fault::Kill => c.kill9(leader),
        // Not waited for here: the clients go on during the controlled shutdown.
        Fault::Term => c.send_term(leader),
        Fault::Partition => c.isolate(leader),
        Fault::PowerLoss => {
            c.power_loss(leader);
        }
    }
    let took = match fault {
        Fault::Partition => {
            // Healed once the partition is written to again, or after `hold`.
            let took = tokio::time::timeout(hold, first_ack_after(w, p, before, at)).await;
            c.heal_all();
            match took {
                Ok(t) => t,
                Err(_) => first_ack_after(w, p, before, at).await,
            }
        }
        _ => {
            let took = first_ack_after(w, p, before, at).await;
            if let Fault::Term = fault {
                tokio::task::block_in_place(|| c.reap(leader, Duration::from_secs(30)));
            }
            c.spawn(leader);
            took
        }
    };
    all_in_sync(c).await;
    // The first acknowledgement the new leader gave (an answer the old leader gave just
    // after the fault — a SIGTERMed one still serves until its leaderships move — is
    // not the end of the unavailability). Without a new epoch (the partition healed
    // before anyone took over), the first acknowledgement after the fault.
    match epoch_end(c, p, epoch).await.and_then(|end| w.first_ack_from(p, end)) {
        Some(t) if t >= at => t - at,
        _ => took,
    }
}

fn summary(what: &str, h: &Histogram<u64>) {
    if h.is_empty() {
        return;
    }
    println!(
        "{what}: {} failovers, unavailability p50 {} ms, p99 {} ms, max {} ms",
        h.len(),
        h.value_at_quantile(0.5) / 1000,
        h.value_at_quantile(0.99) / 1000,
        h.max() / 1000
    );
}

fn report(what: &str, r: &Report) {
    println!(
        "{what}: acknowledged {}, lost {}, duplicates {}, out of order {}, divergent replicas {}",
        r.acked, r.lost, r.duplicates, r.out_of_order, r.divergent
    );
    for p in &r.problems {
        println!("  PROBLEM: {p}");
    }
}

async fn campaign(args: &Args, opts: Options, plan: &[(Fault, u32)]) -> (Report, Vec<(Fault, Histogram<u64>)>) {
    let mut c = FaultCluster::start(3, opts);
    let admin = workload::admin(&c).await;
    workload::create(&admin, TOPIC, args.topic_partitions, 3, &[]).await;
    let w = Writer::start_at(
        c.bootstrap(),
        TOPIC,
        args.topic_partitions,
        Acks::All,
        Some(args.rate),
        Duration::from_millis(args.request_timeout_ms),
    );
    w.progress(200, "warm-up").await;
    let mut hists = Vec::new();
    let mut n = 0u32;
    for (fault, rounds) in plan {
        let mut h = Histogram::<u64>::new(3).expect("histogram");
        for i in 0..*rounds {
            let p = n % args.topic_partitions;
            n += 1;
            let took = round(&mut c, &w, p, *fault, Duration::from_millis(args.partition_hold_ms)).await;
            if std::env::var_os("RUNNEL_FAULTS_KEEP").is_some() {
                eprintln!("  {fault:?} round {i}: {took:?}");
            }
            h.record(took.as_micros() as u64).expect("in range");
            if (i + 1) % 10 == 0 || i + 1 == *rounds {
                eprintln!(
                    "{fault:?}: {} of {rounds} rounds, last {took:?}, {} acknowledged so far",
                    i + 1,
                    w.acked()
                );
            }
        }
        hists.push((*fault, h));
    }
    let sent = w.finish().await;
    let admin = workload::admin(&c).await;
    let r = workload::verify(&c, &admin, TOPIC, args.topic_partitions, &sent).await;
    (r, hists)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    if let Ok(filter) = std::env::var("RUNNEL_CAMPAIGN_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let started = Instant::now();
    let opts = Options {
        args: std::env::var("RUNNEL_CAMPAIGN_BROKER_ARGS")
            .map_or_else(|_| Vec::new(), |a| a.split_whitespace().map(String::from).collect())
            .into_iter()
            .chain(["--replica-lag-time-max-ms".to_string(), "5000".to_string()])
            .collect(),
        power_loss: None,
        kafka: false,
    };
    println!("3 brokers on one machine: they share its 2 cores and 1 disk");
    let plan = [
        (Fault::Kill, args.kills),
        (Fault::Term, args.sigterms),
        (Fault::Partition, args.partitions),
    ];
    let (r1, h1) = campaign(&args, opts.clone(), &plan).await;
    let mut clean = r1.is_clean();
    let mut total = r1.acked;
    for (fault, h) in &h1 {
        summary(&format!("{fault:?}"), h);
    }
    report("kills, SIGTERMs and partitions", &r1);
    if args.power_losses > 0 {
        let opts = Options {
            power_loss: Some("torn"),
            ..opts
        };
        let (r2, h2) = campaign(&args, opts, &[(Fault::PowerLoss, args.power_losses)]).await;
        for (fault, h) in &h2 {
            summary(&format!("{fault:?}"), h);
        }
        report("power losses", &r2);
        clean &= r2.is_clean();
        total += r2.acked;
    }
    println!(
        "campaign done in {:?}: {total} acknowledged records checked, {}",
        started.elapsed(),
        if clean {
            "nothing lost, duplicated or divergent"
        } else {
            "PROBLEMS FOUND"
        }
    );
    if !clean {
        std::process::exit(1);
    }
}

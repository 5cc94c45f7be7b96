//! `cluster-bench`: how fast a cluster of broker processes on this machine moves
//! leadership, and whether it fences anyone falsely under load.
//!
//! Scenarios (each starts its own brokers on loopback, in a temporary directory):
//! - `leader-kill`: kill -9 a broker (not the controller) that leads partitions; time until
//!   Metadata from another broker shows every one of them led elsewhere. The broker is
//!   restarted and the cluster settles (preferred leaders back) before the next kill.
//! - `controller-kill`: kill -9 the controller; time until a CreateTopics through another
//!   broker succeeds.
//! - `shutdown`: SIGTERM a leading broker; time until Metadata shows it leads nothing.
//! - `fencing`: `runnel-bench e2e` producing and consuming unthrottled against the cluster
//!   for `--seconds` (retention bounds the disk use); the cluster is polled every 250 ms and every fencing or
//!   re-registration (none expected) is counted.
//!
//! The brokers share this machine's cores and disk: figures are for one machine.
//!
//!   cargo build --release -p runnel-broker -p runnel-bench --bins
//!   target/release/cluster-bench leader-kill --rounds 30

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use runnel_client::{Client, ClientConfig};
use runnel_protocol::messages::{
    CreateTopicsRequest, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest, NewTopic,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    LeaderKill,
    ControllerKill,
    Shutdown,
    Fencing,
}

#[derive(Debug, Parser)]
#[command(
    name = "cluster-bench",
    about = "Leadership moves and false fencing of a local cluster"
)]
struct Args {
    #[arg(value_enum)]
    scenario: Scenario,
    /// Brokers in the cluster (all controller voters)
    #[arg(long, default_value_t = 3)]
    brokers: i32,
    /// Kills (or shutdowns) to time
    #[arg(long, default_value_t = 30)]
    rounds: usize,
    /// `fencing`: how long the load runs
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// The broker binary
    #[arg(long, default_value = "target/release/runnel-broker")]
    broker_bin: PathBuf,
    /// `fencing`: the load generator binary
    #[arg(long, default_value = "target/release/runnel-bench")]
    load_bin: PathBuf,
}

struct Node {
    id: i32,
    addr: SocketAddr,
    kafka: SocketAddr,
    child: Option<Child>,
}

struct Cluster {
    bin: PathBuf,
    root: tempfile::TempDir,
    voters: String,
    nodes: Vec<Node>,
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

impl Cluster {
    fn start(bin: PathBuf, n: i32) -> Cluster {
        let nodes: Vec<Node> = (1..=n)
            .map(|id| Node {
                id,
                addr: free_addr(),
                kafka: free_addr(),
                child: None,
            })
            .collect();
        let voters = nodes
            .iter()
            .map(|n| format!("{}@{}", n.id, n.addr))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = Cluster {
            bin,
            root: tempfile::tempdir().expect("a temporary directory"),
            voters,
            nodes,
        };
        for id in 1..=n {
            c.spawn(id);
        }
        c
    }

    fn spawn(&mut self, id: i32) {
        let dir = self.root.path().join(format!("broker-{id}"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join(format!("broker-{id}.log")))
            .expect("a log file");
        let n = &mut self.nodes[(id - 1) as usize];
        let child = Command::new(&self.bin)
            .args(["--node-id", &id.to_string(), "--controller-voters", &self.voters])
            .args(["--listen", &n.addr.to_string(), "--kafka-listen", &n.kafka.to_string()])
            .args(["--metrics-listen", "off", "--retention-check-interval-ms", "10000"])
            .arg("--data-dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the broker binary runs (build it with cargo build --release)");
        n.child = Some(child);
    }

    fn kill9(&mut self, id: i32) {
        if let Some(mut c) = self.nodes[(id - 1) as usize].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn term(&mut self, id: i32) -> Child {
        let c = self.nodes[(id - 1) as usize].child.take().expect("running");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        c
    }

    fn live(&self) -> Vec<i32> {
        self.nodes.iter().filter(|n| n.child.is_some()).map(|n| n.id).collect()
    }

    fn addr(&self, id: i32) -> String {
        self.nodes[(id - 1) as usize].addr.to_string()
    }

    fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.addr.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

async fn client(addr: &str) -> Option<Client> {
    let cfg = ClientConfig {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    Client::connect(addr, cfg).await.ok()
}

async fn describe(addr: &str) -> Option<DescribeClusterResponse> {
    client(addr).await?.call(&DescribeClusterRequest {}).await.ok()
}

/// Partition leaders of `topic` as broker `addr` reports them.
async fn leaders(addr: &str, topic: &str) -> Option<Vec<i32>> {
    let c = client(addr).await?;
    let m = c
        .call(&MetadataRequest {
            topics: vec![topic.into()],
            ..Default::default()
        })
        .await
        .ok()?;
    Some(m.topics.first()?.partitions.iter().map(|p| p.leader_id).collect())
}

async fn create(addr: &str, name: &str, partitions: i32, rf: i32) -> bool {
    let Some(c) = client(addr).await else {
        eprintln!("  create: cannot connect to {addr}");
        return false;
    };
    let req = CreateTopicsRequest {
        topics: vec![NewTopic {
            name: name.into(),
            partitions,
            replication_factor: rf,
            ..Default::default()
        }],
        ..Default::default()
    };
    match c.call(&req).await {
        Ok(r) if r.topics.first().is_some_and(|t| t.error_code == 0) => true,
        Ok(r) => {
            eprintln!("  create: {:?}", r.topics.first().map(|t| &t.error_message));
            false
        }
        Err(e) => {
            eprintln!("  create: {e}");
            false
        }
    }
}

/// Waits (at most 60 s) until every broker is registered and unfenced, and `returned`
/// (a broker just restarted, with its registration epoch before) has registered again.
async fn settled(c: &Cluster, n: usize, returned: Option<(i32, i64)>) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        for id in c.live() {
            if let Some(d) = describe(&c.addr(id)).await {
                let back =
                    returned.is_none_or(|(r, epoch)| d.brokers.iter().any(|b| b.node_id == r && b.epoch > epoch));
                if back && d.controller_id >= 0 && d.brokers.len() == n && d.brokers.iter().all(|b| !b.fenced) {
                    return true;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The cluster as any live broker describes it (retried for up to 10 s).
async fn any_describe(c: &Cluster) -> DescribeClusterResponse {
    let start = Instant::now();
    loop {
        for id in c.live() {
            if let Some(d) = describe(&c.addr(id)).await {
                if d.controller_id >= 0 {
                    return d;
                }
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no broker describes the cluster"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn report(what: &str, h: &Histogram<u64>) {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{what}: n={} p50={:.0} ms p99={:.0} ms max={:.0} ms",
        h.len(),
        ms(0.5),
        ms(0.99),
        h.max() as f64 / 1000.0
    );
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut c = Cluster::start(args.broker_bin.clone(), args.brokers);
    let n = args.brokers as usize;
    if !settled(&c, n, None).await {
        eprintln!(
            "cluster-bench: the cluster did not form within 60 s (logs in {})",
            c.root.path().display()
        );
        std::process::exit(1);
    }
    let topic = "bench";
    let rf = args.brokers.min(2);
    if !create(&c.addr(1), topic, 6 * args.brokers, rf).await {
        eprintln!("cluster-bench: could not create the topic");
        std::process::exit(1);
    }
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    match args.scenario {
        Scenario::LeaderKill | Scenario::Shutdown => {
            for round in 0..args.rounds {
                let d = any_describe(&c).await;
                // A broker that leads something and is not the controller.
                let victim = (1..=args.brokers)
                    .find(|b| *b != d.controller_id && d.brokers.iter().any(|x| x.node_id == *b && x.leaders > 0))
                    .expect("a leading broker that is not the controller");
                let witness = c.addr(if victim == d.controller_id { 1 } else { d.controller_id });
                let started = Instant::now();
                let child = if args.scenario == Scenario::LeaderKill {
                    c.kill9(victim);
                    None
                } else {
                    Some(c.term(victim))
                };
                loop {
                    if let Some(l) = leaders(&witness, topic).await {
                        if !l.contains(&victim) && !l.contains(&-1) {
                            break;
                        }
                    }
                    assert!(started.elapsed() < Duration::from_secs(60), "leadership never moved");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let took = started.elapsed();
                h.record(micros(took)).expect("in range");
                if let Some(mut child) = child {
                    let _ = child.wait();
                }
                eprintln!("round {round}: broker {victim} -> its partitions led elsewhere in {took:?}");
                let epoch = d.brokers.iter().find(|b| b.node_id == victim).map_or(-1, |b| b.epoch);
                c.spawn(victim);
                if !settled(&c, n, Some((victim, epoch))).await {
                    eprintln!("cluster-bench: broker {victim} did not return");
                    std::process::exit(1);
                }
            }
            let what = if args.scenario == Scenario::LeaderKill {
                "leader kill -9 -> partitions led elsewhere (Metadata)"
            } else {
                "SIGTERM -> partitions led elsewhere (controlled shutdown)"
            };
            report(what, &h);
        }
        Scenario::ControllerKill => {
            for round in 0..args.rounds {
                let d = any_describe(&c).await;
                let victim = d.controller_id;
                let via = c.addr(if victim == 1 { 2 } else { 1 });
                let started = Instant::now();
                c.kill9(victim);
                let name = format!("after-{round}");
                while !create(&via, &name, 1, 1).await {
                    assert!(started.elapsed() < Duration::from_secs(60), "admin never came back");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let took = started.elapsed();
                h.record(micros(took)).expect("in range");
                eprintln!("round {round}: controller {victim} killed -> CreateTopics succeeded in {took:?}");
                let epoch = d.brokers.iter().find(|b| b.node_id == victim).map_or(-1, |b| b.epoch);
                c.spawn(victim);
                if !settled(&c, n, Some((victim, epoch))).await {
                    eprintln!("cluster-bench: broker {victim} did not return");
                    std::process::exit(1);
                }
            }
            report("controller kill -9 -> next successful CreateTopics", &h);
        }
        Scenario::Fencing => {
            let before = any_describe(&c).await;
            // Producers and consumers at once, unthrottled; retention keeps the disk use
            // bounded (512 MiB per partition, checked every 10 s).
            let mut load = Command::new(&args.load_bin)
                .args(["e2e", "--topic", "load", "--partitions", "6", "--message-size", "1024"])
                .args(["--topic-config", "retention.bytes=536870912"])
                .args(["--topic-config", "segment.bytes=67108864"])
                .args(["--duration", &args.seconds.to_string(), "--broker", &c.bootstrap()])
                .stdout(Stdio::piped())
                .spawn()
                .expect("the load generator runs");
            let started = Instant::now();
            let mut fenced_seen = 0u64;
            let mut polls = 0u64;
            while load.try_wait().expect("wait").is_none()
                && started.elapsed() < Duration::from_secs(args.seconds + 120)
            {
                if let Some(d) = describe(&c.addr(1)).await {
                    polls += 1;
                    let fenced = d.brokers.iter().filter(|b| b.fenced).count() as u64;
                    if fenced > 0 {
                        fenced_seen += 1;
                        eprintln!("at {:?}: {fenced} broker(s) fenced", started.elapsed());
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            let out = load.wait_with_output().expect("load output");
            let after = any_describe(&c).await;
            let reregistered: i64 = after
                .brokers
                .iter()
                .map(|b| {
                    b.epoch
                        - before
                            .brokers
                            .iter()
                            .find(|x| x.node_id == b.node_id)
                            .map_or(0, |x| x.epoch)
                })
                .sum();
            println!("{}", String::from_utf8_lossy(&out.stdout).trim());
            println!(
                "fencing under load: {} s, {polls} polls, polls seeing a fenced broker: {fenced_seen}, re-registrations: {reregistered}",
                args.seconds
            );
        }
    }
}

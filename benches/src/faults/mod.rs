//! A cluster of `runnel-broker` processes on loopback with faults, for the replication
//! tests and the fault campaign: kill -9, SIGSTOP/SIGCONT pauses, SIGTERM, network
//! partitions between chosen brokers, and simulated power loss.
//!
//! - **Partitions.** Every broker reaches every other through a TCP proxy of its own
//!   (`--peer-address`), one per ordered pair, so the link from A to B can be cut without
//!   touching B's link to C or any client: a cut proxy drops its connections and holds
//!   new ones open without passing a byte (a black hole: callers time out), until healed.
//! - **Power loss.** Brokers started with `power_loss` run their data directory on the
//!   simulated disk (`--simulated-power-loss`): SIGUSR1 drops every write and directory
//!   entry not covered by an fsync, as a power cut would, and the process dies.
//! - **Replicas.** [`replica_batches`] reads a partition's segment files straight from a
//!   broker's data directory, so a checker can compare replicas byte for byte.
//!
//! Every wait is bounded; processes are killed when the cluster is dropped.

pub mod workload;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A free loopback port (bound and released; the broker binds it a moment later).
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// The `runnel-broker` binary beside the running executable (a test in
/// `target/debug/deps/`, or a tool in `target/release/`).
pub fn broker_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the running executable");
    let mut dir = exe.parent().expect("a directory").to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("runnel-broker");
    assert!(
        bin.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        bin.display()
    );
    bin
}

/// A TCP proxy for one direction of one broker-to-broker link.
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    cut: AtomicBool,
    stopped: AtomicBool,
    /// Both ends of every connection, to drop them when the link is cut.
    live: Mutex<Vec<TcpStream>>,
}

impl Proxy {
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(ProxyState::default());
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stopped.load(Ordering::Acquire) {
                    return;
                }
                let Ok(client) = conn else { continue };
                if st.cut.load(Ordering::Acquire) {
                    // A black hole: read and drop until healed or closed.
                    hold(client, st.clone());
                    continue;
                }
                let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                {
                    let mut live = st.live.lock().unwrap_or_else(|e| e.into_inner());
                    live.retain(|s| s.peer_addr().is_ok());
                    for s in [&client, &server] {
                        if let Ok(c) = s.try_clone() {
                            live.push(c);
                        }
                    }
                }
                pump(&client, &server);
                pump(&server, &client);
            }
        });
        Proxy { addr, state }
    }

    /// Cuts the link: open connections are dropped, new ones go nowhere.
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::Release);
        for s in self.state.live.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn heal(&self) {
        self.state.cut.store(false, Ordering::Release);
        // Held (black-holed) connections end, so their callers dial again.
        for s in self.state.live.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn is_cut(&self) -> bool {
        self.state.cut.load(Ordering::Acquire)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::Release);
        let _ = TcpStream::connect(self.addr);
        self.cut();
    }
}

fn pump(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

fn hold(conn: TcpStream, st: Arc<ProxyState>) {
    if let Ok(c) = conn.try_clone() {
        st.live.lock().unwrap_or_else(|e| e.into_inner()).push(c);
    }
    std::thread::spawn(move || {
        let mut conn = conn;
        let mut buf = [0u8; 4096];
        while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
    });
}

/// How the brokers start.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra `runnel-broker` arguments for every broker.
    pub args: Vec<String>,
    /// Run data directories on the simulated disk (`strict` or `torn` power loss).
    pub power_loss: Option<&'static str>,
    /// Give every broker a Kafka listener too (`Node::kafka`).
    pub kafka: bool,
}

pub struct Node {
    pub id: i32,
    pub addr: SocketAddr,
    /// The Kafka listener, when the cluster runs with `kafka`.
    pub kafka: Option<SocketAddr>,
    pub dir: PathBuf,
    child: Option<Child>,
    paused: bool,
}

pub struct FaultCluster {
    bin: PathBuf,
    root: tempfile::TempDir,
    voters: String,
    pub nodes: Vec<Node>,
    /// `(from, to)` → the proxy `from` dials `to` through.
    proxies: BTreeMap<(i32, i32), Proxy>,
    opts: Options,
}

impl FaultCluster {
    /// Starts `n` brokers (ids 1..=n, all controller voters) with proxies between every
    /// pair.
    pub fn start(n: i32, opts: Options) -> FaultCluster {
        // RUNNEL_FAULTS_KEEP=1 keeps the data directories and logs for a post-mortem.
        let keep = std::env::var_os("RUNNEL_FAULTS_KEEP").is_some();
        let root = tempfile::Builder::new()
            .prefix("runnel-faults-")
            .disable_cleanup(keep)
            .tempdir()
            .expect("a temporary directory");
        if keep {
            eprintln!("fault cluster in {} (kept)", root.path().display());
        }
        let nodes: Vec<Node> = (1..=n)
            .map(|id| Node {
                id,
                addr: free_addr(),
                kafka: opts.kafka.then(free_addr),
                dir: root.path().join(format!("broker-{id}")),
                child: None,
                paused: false,
            })
            .collect();
        let voters = nodes
            .iter()
            .map(|n| format!("{}@{}", n.id, n.addr))
            .collect::<Vec<_>>()
            .join(",");
        let mut proxies = BTreeMap::new();
        for a in &nodes {
            for b in &nodes {
                if a.id != b.id {
                    proxies.insert((a.id, b.id), Proxy::start(b.addr));
                }
            }
        }
        let mut c = FaultCluster {
            bin: broker_bin(),
            root,
            voters,
            nodes,
            proxies,
            opts,
        };
        for id in 1..=n {
            c.spawn(id);
        }
        c
    }

    fn node(&self, id: i32) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: i32) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Starts broker `id` (again) on its address and data directory.
    pub fn spawn(&mut self, id: i32) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(id))
            .expect("a log file");
        let peers: Vec<String> = self
            .proxies
            .iter()
            .filter(|((from, _), _)| *from == id)
            .map(|((_, to), p)| format!("{to}={}", p.addr))
            .collect();
        let n = self.node(id);
        let kafka = n.kafka.map_or_else(|| "off".to_owned(), |a| a.to_string());
        let mut cmd = Command::new(&self.bin);
        cmd.args(["--node-id", &id.to_string(), "--controller-voters", &self.voters])
            .args(["--listen", &n.addr.to_string(), "--kafka-listen", &kafka])
            .args(["--metrics-listen", "off"])
            .arg("--data-dir")
            .arg(&n.dir)
            .args(["--peer-address", &peers.join(",")])
            .args(&self.opts.args)
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(mode) = self.opts.power_loss {
            cmd.args(["--simulated-power-loss", mode]);
        }
        let child = cmd.spawn().expect("the broker binary runs");
        let n = self.node_mut(id);
        assert!(n.child.replace(child).is_none(), "broker {id} is running");
        n.paused = false;
    }

    pub fn log_path(&self, id: i32) -> PathBuf {
        self.root.path().join(format!("broker-{id}.log"))
    }

    pub fn addr(&self, id: i32) -> String {
        self.node(id).addr.to_string()
    }

    pub fn dir(&self, id: i32) -> &Path {
        &self.node(id).dir
    }

    /// Every broker's Kafka listener: a `bootstrap.servers` list (`kafka` clusters).
    pub fn kafka_bootstrap(&self) -> String {
        self.nodes
            .iter()
            .filter_map(|n| n.kafka.map(|a| a.to_string()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every broker's address: a bootstrap list.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.addr.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Brokers whose process runs (paused ones included).
    pub fn running(&self) -> Vec<i32> {
        self.nodes.iter().filter(|n| n.child.is_some()).map(|n| n.id).collect()
    }

    fn pid(&self, id: i32) -> Pid {
        Pid::from_raw(self.node(id).child.as_ref().expect("running").id() as i32)
    }

    pub fn kill9(&mut self, id: i32) {
        if let Some(mut c) = self.node_mut(id).child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP: the process stays, silent.
    pub fn pause(&mut self, id: i32) {
        let _ = kill(self.pid(id), Signal::SIGSTOP);
        self.node_mut(id).paused = true;
    }

    pub fn resume(&mut self, id: i32) {
        let _ = kill(self.pid(id), Signal::SIGCONT);
        self.node_mut(id).paused = false;
    }

    /// SIGTERM (controlled shutdown); waits up to `limit` for the exit.
    pub fn term(&mut self, id: i32, limit: Duration) -> Option<ExitStatus> {
        self.send_term(id);
        self.reap(id, limit)
    }

    /// SIGTERM without waiting: the controlled shutdown runs while the caller watches
    /// the clients (then [`FaultCluster::reap`]).
    pub fn send_term(&self, id: i32) {
        let _ = kill(self.pid(id), Signal::SIGTERM);
    }

    /// Waits for a broker that was signalled to exit; killed if still running after
    /// `limit` (`None` then).
    pub fn reap(&mut self, id: i32, limit: Duration) -> Option<ExitStatus> {
        let mut c = self.node_mut(id).child.take().expect("running");
        wait_exit(&mut c, limit).or_else(|| {
            let _ = c.kill();
            let _ = c.wait();
            None
        })
    }

    /// A simulated power cut (the cluster must run with `power_loss`): every write the
    /// broker did not sync is gone, and the process is dead.
    pub fn power_loss(&mut self, id: i32) -> Option<ExitStatus> {
        assert!(self.opts.power_loss.is_some(), "start the cluster with power_loss");
        let mut c = self.node_mut(id).child.take().expect("running");
        let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGUSR1);
        let status = wait_exit(&mut c, Duration::from_secs(20));
        if status.is_none() {
            let _ = c.kill();
            let _ = c.wait();
        }
        status
    }

    /// Cuts both directions of the link between `a` and `b`.
    pub fn cut(&self, a: i32, b: i32) {
        self.proxies[&(a, b)].cut();
        self.proxies[&(b, a)].cut();
    }

    /// Cuts every link of `id` to the other brokers (clients still reach it).
    pub fn isolate(&self, id: i32) {
        for n in &self.nodes {
            if n.id != id {
                self.cut(id, n.id);
            }
        }
    }

    pub fn heal_all(&self) {
        for p in self.proxies.values() {
            if p.is_cut() {
                p.heal();
            }
        }
    }
}

impl Drop for FaultCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                if n.paused {
                    let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGCONT);
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A partition's batches on one broker: `(base offset, bytes)`, in order.
pub type Batches = Vec<(u64, Vec<u8>)>;

/// A partition's batches as one broker holds them on disk: `(base offset, bytes)` of
/// every whole batch in its segment files, in order. Read while the broker is stopped or
/// quiet (a batch being appended may be missing).
pub fn replica_batches(data_dir: &Path, topic: &str, partition: u32) -> Batches {
    let dir = data_dir.join(format!("{topic}-{partition}"));
    let mut segments: Vec<(u64, PathBuf)> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let base = name.strip_suffix(".log")?.parse::<u64>().ok()?;
                    Some((base, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    segments.sort();
    let mut out = Vec::new();
    for (_, path) in segments {
        let bytes = std::fs::read(&path).unwrap_or_default();
        let mut at = 0;
        while at < bytes.len() {
            let Ok(h) = runnel_protocol::BatchHeader::parse(&bytes[at..]) else {
                break;
            };
            let len = h.total_bytes();
            if len == 0 || at + len > bytes.len() {
                break;
            }
            out.push((h.base_offset as u64, bytes[at..at + len].to_vec()));
            at += len;
        }
    }
    out
}

/// The high watermark a broker last checkpointed for a partition (0 if none).
pub fn checkpointed_high_watermark(data_dir: &Path, topic: &str, partition: u32) -> u64 {
    std::fs::read_to_string(data_dir.join(format!("{topic}-{partition}")).join("high-watermark"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Compares replicas of a partition byte for byte below `upto`: every replica's batches
/// that start below it must be the same bytes. `Err` says where they differ.
pub fn compare_replicas(replicas: &[(i32, Batches)], upto: u64) -> Result<(), String> {
    let Some((first_id, first)) = replicas.first() else {
        return Ok(());
    };
    let below =
        |b: &[(u64, Vec<u8>)]| -> Vec<(u64, Vec<u8>)> { b.iter().filter(|(o, _)| *o < upto).cloned().collect() };
    let reference = below(first);
    for (id, batches) in &replicas[1..] {
        let mine = below(batches);
        if mine.len() != reference.len() {
            return Err(format!(
                "broker {id} holds {} batches below {upto}, broker {first_id} {}",
                mine.len(),
                reference.len()
            ));
        }
        for ((o1, b1), (o2, b2)) in reference.iter().zip(&mine) {
            if o1 != o2 || b1 != b2 {
                return Err(format!(
                    "broker {id} differs from broker {first_id} at offset {o2} (vs {o1})"
                ));
            }
        }
    }
    Ok(())
}

//! `runnel-broker`: the broker daemon.
//!
//! Opens (and after a crash, recovers) the data directory, serves the native protocol,
//! and on SIGINT or SIGTERM stops accepting, answers the requests already read, syncs
//! every log and writes the clean-shutdown marker, then exits 0.
//!
//! Every setting comes from, in order of precedence: the command line, a `RUNNEL_*`
//! environment variable, the TOML file given by `--config`, the built-in default.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use nix::sys::signal::{SigSet, Signal};
use runnel_broker::metrics::Metrics;
use runnel_broker::server::{Server, ServerConfig};
use runnel_broker::storage::{LogConfig, LogManager, StorageConfig};
use serde::Deserialize;
use tracing::{error, info, warn};

/// Runnel broker daemon. With no arguments: data in ./runnel-data, native protocol on
/// 127.0.0.1:7117.
#[derive(Debug, Parser)]
#[command(name = "runnel-broker", version)]
struct Args {
    /// TOML file with any of the settings below (same names, with underscores), plus a
    /// `[topic_defaults]` table of topic config keys.
    #[arg(long, env = "RUNNEL_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Directory holding topics, partition logs and the metadata log [default: ./runnel-data]
    #[arg(long, env = "RUNNEL_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Address of the native-protocol listener; port 0 picks a free port [default: 127.0.0.1:7117]
    #[arg(long, env = "RUNNEL_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,

    /// Host name given to clients in Metadata [default: the listen address's IP]
    #[arg(long, env = "RUNNEL_ADVERTISED_HOST", value_name = "HOST")]
    advertised_host: Option<String>,

    /// Address of the Kafka-protocol listener, or `off`; port 0 picks a free port
    /// [default: 127.0.0.1:9092]
    #[arg(long, env = "RUNNEL_KAFKA_LISTEN", value_name = "ADDR|off")]
    kafka_listen: Option<String>,

    /// Log filter (tracing's EnvFilter syntax, as RUST_LOG), e.g. `info` or
    /// `runnel_broker=debug` [default: RUST_LOG, else info,openraft=off]
    #[arg(long, env = "RUNNEL_LOG", value_name = "FILTER")]
    log: Option<String>,

    /// Log line format: `text` for people, `json` (one object per line, with the span
    /// fields) for log shippers [default: text]
    #[arg(long, env = "RUNNEL_LOG_FORMAT", value_name = "text|json")]
    log_format: Option<String>,

    /// Address of the metrics endpoint (/metrics, /health, /ready), or `off`
    /// [default: 127.0.0.1:7118]
    #[arg(long, env = "RUNNEL_METRICS_LISTEN", value_name = "ADDR|off")]
    metrics_listen: Option<String>,

    /// Label traffic metrics by partition too (a series per partition) [default: false]
    #[arg(long, env = "RUNNEL_METRICS_PER_PARTITION", value_name = "BOOL")]
    metrics_per_partition: Option<bool>,

    /// Requests slower than this (long polls and group waits excluded) are logged at warn
    /// [default: 1000]
    #[arg(long, env = "RUNNEL_SLOW_REQUEST_MS", value_name = "MS")]
    slow_request_ms: Option<u64>,

    /// Threads that run fdatasync for group commit [default: 2]
    #[arg(long, env = "RUNNEL_FLUSH_THREADS", value_name = "N")]
    flush_threads: Option<usize>,

    /// How often retention deletes old segments, in milliseconds [default: 300000]
    #[arg(long, env = "RUNNEL_RETENTION_CHECK_INTERVAL_MS", value_name = "MS")]
    retention_check_interval_ms: Option<u64>,

    /// Largest request frame accepted, in bytes [default: 104857600]
    #[arg(long, env = "RUNNEL_MAX_REQUEST_FRAME_BYTES", value_name = "BYTES")]
    max_request_frame_bytes: Option<u32>,

    /// Most client connections served at once; more wait to be accepted [default: 4096]
    #[arg(long, env = "RUNNEL_MAX_CONNECTIONS", value_name = "N")]
    max_connections: Option<usize>,

    /// A request unanswered after this gets REQUEST_TIMED_OUT, in milliseconds [default: 30000]
    #[arg(long, env = "RUNNEL_REQUEST_TIMEOUT_MS", value_name = "MS")]
    request_timeout_ms: Option<u64>,

    /// Close a connection idle (no request in flight, nothing received) this long, in milliseconds [default: 600000]
    #[arg(long, env = "RUNNEL_IDLE_TIMEOUT_MS", value_name = "MS")]
    idle_timeout_ms: Option<u64>,

    /// Requests read but not yet answered, per connection [default: 128]
    #[arg(long, env = "RUNNEL_MAX_IN_FLIGHT_REQUESTS", value_name = "N")]
    max_in_flight_requests: Option<usize>,

    /// Request bytes one connection may hold in memory [default: 209715200]
    #[arg(long, env = "RUNNEL_MAX_CONNECTION_BUFFER_BYTES", value_name = "BYTES")]
    max_connection_buffer_bytes: Option<usize>,

    /// Upper bound on one fetch response's record bytes [default: 57671680]
    #[arg(long, env = "RUNNEL_FETCH_MAX_BYTES", value_name = "BYTES")]
    fetch_max_bytes: Option<u32>,

    /// Smallest session timeout a group member may ask for, in milliseconds [default: 1000]
    #[arg(long, env = "RUNNEL_GROUP_MIN_SESSION_TIMEOUT_MS", value_name = "MS")]
    group_min_session_timeout_ms: Option<u32>,

    /// Largest session timeout a group member may ask for, in milliseconds [default: 300000]
    #[arg(long, env = "RUNNEL_GROUP_MAX_SESSION_TIMEOUT_MS", value_name = "MS")]
    group_max_session_timeout_ms: Option<u32>,

    /// Heartbeat interval given to group members (at most a third of their session), in milliseconds [default: 3000]
    #[arg(long, env = "RUNNEL_GROUP_HEARTBEAT_INTERVAL_MS", value_name = "MS")]
    group_heartbeat_interval_ms: Option<u32>,

    /// Segment size of the committed-offsets log, which is snapshotted and trimmed past it [default: 16777216]
    #[arg(long, env = "RUNNEL_OFFSETS_SEGMENT_BYTES", value_name = "BYTES")]
    offsets_segment_bytes: Option<u64>,

    /// How long a group without members keeps its committed offsets, in minutes (0: for ever) [default: 10080]
    #[arg(long, env = "RUNNEL_OFFSETS_RETENTION_MINUTES", value_name = "MINUTES")]
    offsets_retention_minutes: Option<u64>,

    /// Create a topic that a Metadata request names and allows to be created, as Kafka's
    /// auto.create.topics.enable; turn off where topic names must be planned (a typo in a
    /// producer's topic then fails instead of creating a topic) [default: true]
    #[arg(long, env = "RUNNEL_AUTO_CREATE_TOPICS_ENABLE", value_name = "BOOL")]
    auto_create_topics_enable: Option<bool>,

    /// Partitions of an auto-created topic, and of one created with -1 partitions
    /// (Kafka's num.partitions) [default: 1]
    #[arg(long, env = "RUNNEL_NUM_PARTITIONS", value_name = "N")]
    num_partitions: Option<u32>,

    /// Replicas of an auto-created topic, and of one created with -1 (Kafka's
    /// default.replication.factor; one broker holds one replica) [default: 1]
    #[arg(long, env = "RUNNEL_DEFAULT_REPLICATION_FACTOR", value_name = "N")]
    default_replication_factor: Option<u16>,

    /// This broker's id in the cluster, as Kafka clients see it (Kafka's node.id) [default: 0]
    #[arg(long, env = "RUNNEL_NODE_ID", value_name = "N")]
    node_id: Option<i32>,

    /// The metadata quorum's voters, ID@HOST:PORT,... where HOST:PORT is each voter's
    /// native listener (Kafka's controller.quorum.voters); a broker not in the list joins
    /// as a broker only [default: this broker alone]
    #[arg(long, env = "RUNNEL_CONTROLLER_VOTERS", value_name = "ID@HOST:PORT,...")]
    controller_voters: Option<String>,

    /// A broker silent this long is fenced and its partitions get new leaders, in
    /// milliseconds [default: 2000]
    #[arg(long, env = "RUNNEL_BROKER_SESSION_TIMEOUT_MS", value_name = "MS")]
    broker_session_timeout_ms: Option<u64>,

    /// How often a broker heartbeats to the controller, in milliseconds [default: 500]
    #[arg(long, env = "RUNNEL_BROKER_HEARTBEAT_INTERVAL_MS", value_name = "MS")]
    broker_heartbeat_interval_ms: Option<u64>,

    /// For fault-injection tests only: run the data directory on a simulated disk that
    /// loses what was never synced when the process gets SIGUSR1 (`strict`), or keeps a
    /// torn part of it (`torn`), then exits with status 137 — a power cut
    #[arg(long, env = "RUNNEL_SIMULATED_POWER_LOSS", value_name = "strict|torn", hide = true)]
    simulated_power_loss: Option<String>,

    /// Reach broker ID at HOST:PORT instead of the address it registered (through a
    /// proxy, say); repeat for several brokers. Fault-injection tests cut links this way
    #[arg(
        long,
        env = "RUNNEL_PEER_ADDRESS",
        value_name = "ID=HOST:PORT",
        value_delimiter = ','
    )]
    peer_address: Vec<String>,

    /// A follower that has not caught up with its leader for this long leaves the
    /// partition's in-sync replicas, in milliseconds (Kafka's replica.lag.time.max.ms)
    /// [default: 30000]
    #[arg(long, env = "RUNNEL_REPLICA_LAG_TIME_MAX_MS", value_name = "MS")]
    replica_lag_time_max_ms: Option<u64>,

    /// How long a topic change waits for a controller before failing (no quorum), in
    /// milliseconds [default: 5000]
    #[arg(long, env = "RUNNEL_CONTROLLER_TIMEOUT_MS", value_name = "MS")]
    controller_timeout_ms: Option<u64>,

    /// A default for every topic, as a topic config KEY=VALUE (e.g. flush.policy=interval);
    /// repeatable; the environment variable takes a comma-separated list
    #[arg(
        long = "topic-default",
        env = "RUNNEL_TOPIC_DEFAULTS",
        value_name = "KEY=VALUE",
        value_delimiter = ','
    )]
    topic_defaults: Vec<String>,

    /// TLS certificate chain (PEM): the native, Kafka and metrics listeners speak TLS
    /// (1.2 and 1.3); needs --tls-key. SIGHUP reads the files again
    #[arg(long, env = "RUNNEL_TLS_CERT", value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The TLS certificate's private key (PEM)
    #[arg(long, env = "RUNNEL_TLS_KEY", value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// CA certificates (PEM) clients must present a certificate from (mutual TLS): the
    /// certificate's subject becomes the connection's principal
    #[arg(long, env = "RUNNEL_TLS_CLIENT_CA", value_name = "PEM", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,

    /// A plaintext native listener beside the TLS ones (loopback tools, inter-broker
    /// traffic on a private network; see --peer-address)
    #[arg(long, env = "RUNNEL_PLAINTEXT_LISTEN", value_name = "ADDR", requires = "tls_cert")]
    plaintext_listen: Option<SocketAddr>,

    /// A plaintext Kafka listener beside the TLS ones
    #[arg(
        long,
        env = "RUNNEL_KAFKA_PLAINTEXT_LISTEN",
        value_name = "ADDR",
        requires = "tls_cert"
    )]
    kafka_plaintext_listen: Option<SocketAddr>,

    /// SASL on every Kafka listener with these mechanisms, comma-separated, from
    /// SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN (PLAIN only over TLS unless
    /// --sasl-plain-without-tls). The native listeners must then be on loopback
    #[arg(long, env = "RUNNEL_SASL_MECHANISMS", value_name = "LIST")]
    sasl_mechanisms: Option<String>,

    /// Allow PLAIN on a Kafka listener without TLS (the password crosses in the clear)
    #[arg(long, env = "RUNNEL_SASL_PLAIN_WITHOUT_TLS", requires = "sasl_mechanisms")]
    sasl_plain_without_tls: bool,

    /// A SASL user created (SCRAM-SHA-256 and -512) if the cluster does not know it yet;
    /// its password comes from RUNNEL_SASL_BOOTSTRAP_PASSWORD or
    /// --sasl-bootstrap-password-file
    #[arg(
        long,
        env = "RUNNEL_SASL_BOOTSTRAP_USER",
        value_name = "NAME",
        requires = "sasl_mechanisms"
    )]
    sasl_bootstrap_user: Option<String>,

    /// A file holding the bootstrap user's password (its first line)
    #[arg(long, value_name = "PATH", requires = "sasl_bootstrap_user")]
    sasl_bootstrap_password_file: Option<PathBuf>,
}

/// The `--config` file: the same settings, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    advertised_host: Option<String>,
    kafka_listen: Option<String>,
    log: Option<String>,
    log_format: Option<String>,
    metrics_listen: Option<String>,
    metrics_per_partition: Option<bool>,
    slow_request_ms: Option<u64>,
    flush_threads: Option<usize>,
    retention_check_interval_ms: Option<u64>,
    max_request_frame_bytes: Option<u32>,
    max_connections: Option<usize>,
    request_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    max_in_flight_requests: Option<usize>,
    max_connection_buffer_bytes: Option<usize>,
    fetch_max_bytes: Option<u32>,
    group_min_session_timeout_ms: Option<u32>,
    group_max_session_timeout_ms: Option<u32>,
    group_heartbeat_interval_ms: Option<u32>,
    offsets_segment_bytes: Option<u64>,
    offsets_retention_minutes: Option<u64>,
    auto_create_topics_enable: Option<bool>,
    num_partitions: Option<u32>,
    default_replication_factor: Option<u16>,
    node_id: Option<i32>,
    controller_voters: Option<String>,
    broker_session_timeout_ms: Option<u64>,
    broker_heartbeat_interval_ms: Option<u64>,
    replica_lag_time_max_ms: Option<u64>,
    controller_timeout_ms: Option<u64>,
    #[serde(default)]
    topic_defaults: BTreeMap<String, String>,
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("runnel-broker: {msg}");
    std::process::exit(1);
}

fn read_file_config(path: &Path) -> FileConfig {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| fail(format!("cannot read {}: {e}", path.display())));
    toml::from_str(&text).unwrap_or_else(|e| {
        let msg = e.to_string().replace('\n', " ");
        fail(format!("bad config file {}: {}", path.display(), msg.trim()))
    })
}

/// Where the Kafka listener is unless configured (Kafka's port, loopback only).
const DEFAULT_KAFKA_LISTEN: &str = "127.0.0.1:9092";
/// Where the metrics endpoint is unless configured (next to the native port).
const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:7118";

/// An optional listener's address — the default, `off`, or an address — and whether it
/// is the default (a default address that is taken is skipped with a warning; one the
/// user gave is a hard error).
fn listen_setting(what: &str, value: Option<String>, default: &str) -> (Option<SocketAddr>, bool) {
    match value.as_deref() {
        None => (Some(default.parse().expect("valid default address")), true),
        Some("off") => (None, false),
        Some(addr) => (
            Some(
                addr.parse()
                    .unwrap_or_else(|e| fail(format!("{what} listen address {addr:?}: {e} (an IP:PORT, or off)"))),
            ),
            false,
        ),
    }
}

struct Settings {
    /// `Some(torn)`: the simulated disk (`--simulated-power-loss`).
    simulated_power_loss: Option<bool>,
    log: String,
    metrics_listen_is_default: bool,
    json: bool,
    storage: StorageConfig,
    server: ServerConfig,
    /// The SASL user to create on first start, with its password.
    bootstrap_user: Option<(String, String)>,
}

fn settings(args: Args) -> Settings {
    let file = args.config.as_deref().map(read_file_config).unwrap_or_default();
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| "./runnel-data".into());
    let mut storage = StorageConfig::new(data_dir);
    if let Some(n) = args.flush_threads.or(file.flush_threads) {
        storage.flush_threads = n.max(1);
    }
    if let Some(ms) = args.retention_check_interval_ms.or(file.retention_check_interval_ms) {
        storage.retention_check_interval_ms = ms.max(1);
    }
    let mut topic_defaults = file.topic_defaults;
    for kv in &args.topic_defaults {
        let Some((k, v)) = kv.split_once('=') else {
            fail(format!("--topic-default {kv:?}: expected KEY=VALUE"));
        };
        topic_defaults.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    storage.log_defaults = LogConfig::with_overrides(&LogConfig::default(), &topic_defaults)
        .unwrap_or_else(|e| fail(format!("topic default: {e}")));

    let mut server = ServerConfig::default();
    macro_rules! take {
        ($($field:ident),*) => {$(
            if let Some(v) = args.$field.or(file.$field) {
                server.$field = v;
            }
        )*};
    }
    take!(
        listen,
        max_request_frame_bytes,
        max_connections,
        request_timeout_ms,
        idle_timeout_ms,
        max_in_flight_requests,
        max_connection_buffer_bytes,
        fetch_max_bytes,
        auto_create_topics_enable,
        num_partitions,
        default_replication_factor
    );
    server.advertised_host = args.advertised_host.or(file.advertised_host);
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        let files = runnel_broker::tls::TlsFiles {
            cert,
            key,
            client_ca: args.tls_client_ca,
        };
        let tls = runnel_broker::tls::Tls::load(files).unwrap_or_else(|e| fail(format!("TLS: {e}")));
        server.tls = Some(std::sync::Arc::new(tls));
    }
    server.plaintext_listen = args.plaintext_listen;
    server.kafka_plaintext_listen = args.kafka_plaintext_listen;
    if let Some(list) = &args.sasl_mechanisms {
        let mut mechanisms = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match runnel_broker::scram::Mechanism::parse(&name.to_ascii_uppercase()) {
                Some(m) if !mechanisms.contains(&m) => mechanisms.push(m),
                Some(_) => {}
                None => fail(format!(
                    "--sasl-mechanisms: unknown mechanism '{name}' (SCRAM-SHA-256, SCRAM-SHA-512, PLAIN)"
                )),
            }
        }
        server.sasl = Some(runnel_broker::scram::SaslConfig {
            mechanisms,
            plain_without_tls: args.sasl_plain_without_tls,
        });
    }
    (server.kafka_listen, server.kafka_listen_is_default) =
        listen_setting("kafka", args.kafka_listen.or(file.kafka_listen), DEFAULT_KAFKA_LISTEN);
    let metrics_listen_is_default;
    (server.metrics_listen, metrics_listen_is_default) = listen_setting(
        "metrics",
        args.metrics_listen.or(file.metrics_listen),
        DEFAULT_METRICS_LISTEN,
    );
    if let Some(v) = args.metrics_per_partition.or(file.metrics_per_partition) {
        server.metrics_per_partition = v;
    }
    if let Some(v) = args.slow_request_ms.or(file.slow_request_ms) {
        server.slow_request_ms = v;
    }
    let g = &mut server.group;
    if let Some(v) = args.group_min_session_timeout_ms.or(file.group_min_session_timeout_ms) {
        g.min_session_timeout_ms = v;
    }
    if let Some(v) = args.group_max_session_timeout_ms.or(file.group_max_session_timeout_ms) {
        g.max_session_timeout_ms = v;
    }
    g.default_session_timeout_ms = g.default_session_timeout_ms.clamp(
        g.min_session_timeout_ms,
        g.max_session_timeout_ms.max(g.min_session_timeout_ms),
    );
    if let Some(v) = args.group_heartbeat_interval_ms.or(file.group_heartbeat_interval_ms) {
        g.heartbeat_interval_ms = v;
    }
    if let Some(v) = args.offsets_segment_bytes.or(file.offsets_segment_bytes) {
        g.offsets_segment_bytes = v;
    }
    if let Some(v) = args.offsets_retention_minutes.or(file.offsets_retention_minutes) {
        g.offsets_retention_ms = v.saturating_mul(60_000);
    }
    let c = &mut server.cluster;
    if let Some(id) = args.node_id.or(file.node_id) {
        if id < 0 {
            fail(format!("--node-id {id}: a node id is 0 or more"));
        }
        c.node_id = id;
    }
    if let Some(v) = args.controller_voters.or(file.controller_voters) {
        c.voters =
            runnel_broker::cluster::parse_voters(&v).unwrap_or_else(|e| fail(format!("--controller-voters: {e}")));
    }
    if let Some(v) = args.broker_session_timeout_ms.or(file.broker_session_timeout_ms) {
        c.broker_session_timeout_ms = v.max(1);
    }
    if let Some(v) = args.broker_heartbeat_interval_ms.or(file.broker_heartbeat_interval_ms) {
        c.broker_heartbeat_interval_ms = v.max(1);
    }
    if let Some(v) = args.controller_timeout_ms.or(file.controller_timeout_ms) {
        c.controller_timeout_ms = v.max(1);
    }
    for p in &args.peer_address {
        let (id, addr) =
            runnel_broker::cluster::parse_peer_address(p).unwrap_or_else(|e| fail(format!("--peer-address: {e}")));
        c.peer_addresses.insert(id, addr);
    }
    if let Some(v) = args.replica_lag_time_max_ms.or(file.replica_lag_time_max_ms) {
        c.replica_lag_time_max_ms = v.max(1);
    }
    if c.broker_heartbeat_interval_ms >= c.broker_session_timeout_ms {
        fail(format!(
            "--broker-heartbeat-interval-ms {} must be below --broker-session-timeout-ms {}",
            c.broker_heartbeat_interval_ms, c.broker_session_timeout_ms
        ));
    }
    if let Err(e) = server.validate() {
        fail(e);
    }
    let json = match args.log_format.or(file.log_format).as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => fail(format!("log format {other:?}: expected text or json")),
    };
    let simulated_power_loss = match args.simulated_power_loss.as_deref() {
        None => None,
        Some("strict") => Some(false),
        Some("torn") => Some(true),
        Some(other) => fail(format!("--simulated-power-loss {other:?}: expected strict or torn")),
    };
    let bootstrap_user = args.sasl_bootstrap_user.as_ref().map(|user| {
        let password = match &args.sasl_bootstrap_password_file {
            Some(path) => std::fs::read_to_string(path)
                .map(|t| t.lines().next().unwrap_or_default().to_owned())
                .unwrap_or_else(|e| fail(format!("--sasl-bootstrap-password-file {}: {e}", path.display()))),
            None => std::env::var("RUNNEL_SASL_BOOTSTRAP_PASSWORD").unwrap_or_else(|_| {
                fail("--sasl-bootstrap-user needs RUNNEL_SASL_BOOTSTRAP_PASSWORD or --sasl-bootstrap-password-file")
            }),
        };
        if password.is_empty() {
            fail("--sasl-bootstrap-user: the password is empty");
        }
        (user.clone(), password)
    });
    Settings {
        simulated_power_loss,
        log: args
            .log
            .or(file.log)
            .or_else(|| std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()))
            // openraft logs every failed message to an unreachable voter at error level,
            // twice a second; the cluster's own logs say what matters (a broker fenced, a
            // new controller). `--log info` shows openraft's too.
            .unwrap_or_else(|| "info,openraft=off".into()),
        json,
        metrics_listen_is_default,
        bootstrap_user,
        storage,
        server,
    }
}

/// `--simulated-power-loss`: the data directory on a [`SimDisk`]; SIGUSR1 cuts the
/// power — the disk stops, the directory is rewritten as a power cut leaves it (unsynced
/// writes and directory entries gone), and the process exits at once with 137. Called
/// with SIGUSR1 blocked in every thread, before any starts.
///
/// [`SimDisk`]: runnel_broker::storage::sim::SimDisk
fn simulate_power_loss_on_sigusr1(data_dir: &std::path::Path, torn: bool) {
    let (sim, installed) = runnel_broker::storage::sim::SimDisk::install(data_dir)
        .unwrap_or_else(|e| fail(format!("simulated disk on {}: {e}", data_dir.display())));
    std::mem::forget(installed);
    warn!(data_dir = %data_dir.display(), torn, "SIMULATED DISK: SIGUSR1 cuts the power (fault-injection tests only)");
    std::thread::spawn(move || {
        let mut usr1 = SigSet::empty();
        usr1.add(Signal::SIGUSR1);
        if usr1.wait().is_err() {
            return;
        }
        runnel_broker::storage::io::power_off();
        sim.crash();
        // Operations already inside the disk finish; every later one fails.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let seed = torn.then(|| u64::from(std::process::id()));
        if let Err(e) = sim.restore(seed) {
            eprintln!("runnel-broker: simulated power loss: restoring the disk failed: {e}");
        }
        eprintln!("runnel-broker: simulated power loss");
        std::process::exit(137);
    });
}

fn main() {
    let s = settings(Args::parse());
    let filter =
        tracing_subscriber::EnvFilter::try_new(&s.log).unwrap_or_else(|e| fail(format!("log filter {:?}: {e}", s.log)));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if s.json {
        logs.json().with_current_span(true).with_span_list(false).init();
    } else {
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
    // Block the stop signals before any thread starts, so every thread inherits the mask
    // and one thread alone receives them through `wait`.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGHUP);
    if let Err(e) = signals.thread_block() {
        fail(format!("cannot block signals: {e}"));
    }
    if s.simulated_power_loss.is_some() {
        let mut usr1 = SigSet::empty();
        usr1.add(Signal::SIGUSR1);
        if let Err(e) = usr1.thread_block() {
            fail(format!("cannot block signals: {e}"));
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("runnel-io")
        .build()
        .unwrap_or_else(|e| fail(format!("cannot start the runtime: {e}")));

    // The metrics endpoint comes up first, so /health answers (and /ready says 503)
    // while logs recover.
    let metrics = Metrics::new(s.server.metrics_per_partition);
    let mut server_config = s.server;
    let metrics_addr = server_config.metrics_listen.take().and_then(|addr| {
        let listener = match runtime.block_on(tokio::net::TcpListener::bind(addr)) {
            Ok(l) => l,
            Err(e) if s.metrics_listen_is_default && e.kind() == std::io::ErrorKind::AddrInUse => {
                warn!(
                    "METRICS ENDPOINT NOT STARTED: {addr} is already in use; \
                     pick a free port with --metrics-listen HOST:PORT, or --metrics-listen off"
                );
                return None;
            }
            Err(e) => fail(format!(
                "listen (metrics; `--metrics-listen off` disables it) on {addr}: {e}"
            )),
        };
        let bound = listener.local_addr().unwrap_or(addr);
        runtime.spawn(runnel_broker::metrics::http::serve(
            listener,
            metrics.clone(),
            server_config.tls.clone(),
            std::future::pending(),
        ));
        Some(bound)
    });
    let data_dir = s.storage.data_dir.clone();
    let bootstrap_user = s.bootstrap_user;
    if let Some(torn) = s.simulated_power_loss {
        simulate_power_loss_on_sigusr1(&data_dir, torn);
    }
    let storage =
        LogManager::open(s.storage).unwrap_or_else(|e| fail(format!("cannot open {}: {e}", data_dir.display())));
    let code = runtime.block_on(async move {
        let server = match Server::bind_with_metrics(storage.clone(), server_config, metrics).await {
            Ok(server) => server,
            Err(e) => {
                // Close storage cleanly: nothing was served, nothing to recover next time.
                let _ = tokio::task::spawn_blocking(move || storage.shutdown()).await;
                fail(e);
            }
        };
        info!(
            data_dir = %data_dir.display(),
            listen = %server.local_addr(),
            kafka_listen = ?server.kafka_addr(),
            metrics_listen = ?metrics_addr,
            topics = storage.topics().len(),
            "runnel-broker started"
        );
        if let Some((user, password)) = bootstrap_user {
            let broker = server.broker().clone();
            tokio::spawn(async move {
                if let Err(f) = runnel_broker::service::users::bootstrap_user(&broker, &user, &password).await {
                    error!(%user, error = %f.message, "the bootstrap SASL user could not be created");
                }
            });
        }
        // SIGHUP reads the TLS files again; SIGINT and SIGTERM stop the broker.
        let tls = server.tls();
        let signal = tokio::task::spawn_blocking(move || loop {
            match signals.wait() {
                Ok(Signal::SIGHUP) => match tls.as_ref().map(|t| t.reload()) {
                    Some(Ok(())) => info!("SIGHUP: TLS certificate, key and client CA read again"),
                    Some(Err(e)) => error!(error = %e, "SIGHUP: TLS files not reloaded; the previous ones stay in use"),
                    None => info!("SIGHUP: nothing to reload (no TLS)"),
                },
                other => return other,
            }
        });
        let cluster = server.broker().cluster.clone();
        let failed = tokio::select! {
            signal = signal => {
                let signal = signal.ok().and_then(Result::ok).map_or("unknown".to_owned(), |s| s.to_string());
                info!(%signal, "stopping");
                None
            }
            reason = cluster.failed() => Some(reason),
        };
        let code = match server.shutdown().await {
            Ok(()) => 0,
            Err(e) => {
                error!(error = %e, "unclean shutdown; the next start will recover");
                1
            }
        };
        match failed {
            Some(reason) => {
                eprintln!("runnel-broker: {reason}");
                1
            }
            None => code,
        }
    });
    // Not a plain drop: the thread waiting for a stop signal never ends when a cluster
    // failure stopped the broker, and dropping waits for it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(code);
}

//! The daemon binary: starts on a data directory, stops cleanly on SIGTERM, leaving the
//! clean-shutdown marker; a second start finds its topics.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use runnel_broker::storage::manager::CLEAN_SHUTDOWN_FILE;
use runnel_broker::storage::{LogManager, StorageConfig};

/// Starts the daemon on a free loopback port; returns it, its address (from its start-up
/// log line) and a thread collecting its log lines.
fn spawn_daemon(data_dir: &std::path::Path) -> (std::process::Child, SocketAddr, JoinHandle<Vec<String>>) {
    let (child, addrs, log) = spawn_daemon_addrs(data_dir);
    (child, addrs[0], log)
}

/// As `spawn_daemon`, with the native, Kafka and metrics addresses.
fn spawn_daemon_addrs(data_dir: &std::path::Path) -> (std::process::Child, Vec<SocketAddr>, JoinHandle<Vec<String>>) {
    spawn_daemon_with(data_dir, &[], &[])
}

/// As `spawn_daemon_addrs`, with more arguments and environment variables.
fn spawn_daemon_with(
    data_dir: &std::path::Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> (std::process::Child, Vec<SocketAddr>, JoinHandle<Vec<String>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_runnel-broker"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--kafka-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("runnel-broker started") {
                let field = |name: &str| -> SocketAddr {
                    let v = line
                        .split(&format!(" {name}="))
                        .nth(1)
                        .unwrap()
                        .split_whitespace()
                        .next()
                        .unwrap();
                    let v = v.trim_start_matches("Some(").trim_end_matches(')');
                    v.parse().unwrap()
                };
                let _ = tx.send(vec![field("listen"), field("kafka_listen"), field("metrics_listen")]);
            }
            lines.push(line);
        }
        lines
    });
    let addrs = rx.recv_timeout(Duration::from_secs(20)).expect("the daemon starts");
    (child, addrs, log)
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    {
        let m = LogManager::open(StorageConfig::new(dir.path())).unwrap();
        m.create_topic("t", 2, &BTreeMap::new()).unwrap();
        // Dropped without shutdown: the daemon must recover.
    }
    let (mut child, _addr, _log) = spawn_daemon(dir.path());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    let m = LogManager::open(StorageConfig::new(dir.path())).unwrap();
    assert_eq!(m.topic("t").unwrap().partitions.len(), 2);
}

#[test]
fn a_bad_data_dir_is_one_clear_line_and_a_nonzero_exit() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_runnel-broker"))
        .args(["--metrics-listen", "off", "--data-dir"])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("runnel-broker: cannot open"), "{err}");
}

#[test]
fn sasl_mistakes_are_one_clear_line_and_a_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (&["--sasl-mechanisms", "GSSAPI"], "unknown mechanism 'GSSAPI'"),
        (
            &["--sasl-mechanisms", "SCRAM-SHA-256", "--listen", "0.0.0.0:0"],
            "is not on loopback",
        ),
        (
            &["--sasl-mechanisms", "SCRAM-SHA-256", "--sasl-bootstrap-user", "admin"],
            "needs RUNNEL_SASL_BOOTSTRAP_PASSWORD",
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_runnel-broker"))
            .args(["--metrics-listen", "off", "--kafka-listen", "off", "--data-dir"])
            .arg(dir.path())
            .args(args)
            .env_remove("RUNNEL_SASL_BOOTSTRAP_PASSWORD")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("runnel-broker: ") && last.contains(want),
            "{args:?}: {err}"
        );
    }
}

/// SIGTERM during a produce load: every acknowledged record is there after the restart,
/// and the restart skips recovery (the clean-shutdown marker was written).
#[test]
fn sigterm_under_produce_load_loses_no_acknowledged_record() {
    use prost::Message;
    use runnel_protocol::messages::{Acks, ProduceResponse};
    use runnel_protocol::ApiKey;

    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, log) = spawn_daemon(dir.path());
    common::wire::Wire::connect(addr).create_topic("t", 3, &[]);

    // Three producers with acks=all, each until the broker stops answering.
    let producers: Vec<_> = (0..3u64)
        .map(|id| {
            std::thread::spawn(move || {
                let mut c = common::wire::Wire::connect(addr);
                let mut acked = Vec::new();
                for seq in 0..100_000u64 {
                    let tag = id * 1_000_000 + seq;
                    let partition = (seq % 3) as u32;
                    let b = common::batch(tag, 5, 200, 1_000);
                    let req = common::wire::produce_request("t", partition, Acks::All, b.len());
                    let (_, f) = c.frame(ApiKey::Produce as i16, 0, &req, &b);
                    if std::io::Write::write_all(&mut c.sock, &f).is_err() {
                        break;
                    }
                    let Some(r) = c.read_response() else { break };
                    let r = ProduceResponse::decode(r.body).unwrap();
                    if r.error_code != 0 {
                        break; // BROKER_SHUTTING_DOWN: not acknowledged
                    }
                    let p = &r.topics[0].partitions[0];
                    if p.error_code != 0 {
                        break;
                    }
                    acked.push((partition, p.base_offset as u64, tag));
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let acked: Vec<_> = producers.into_iter().flat_map(|p| p.join().unwrap()).collect();
    let log = log.join().unwrap();
    assert!(status.success(), "exit status {status}: {log:?}");
    assert!(acked.len() > 10, "only {} acks before SIGTERM", acked.len());
    assert!(log.iter().any(|l| l.contains("clean shutdown")), "{log:?}");
    assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());

    let m = LogManager::open(StorageConfig::new(dir.path())).unwrap();
    // Opening consumed the marker: the restart took the clean path (no recovery scan).
    assert!(!dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    let stored: Vec<HashMap<u64, Vec<u8>>> = (0..3)
        .map(|p| {
            common::read_all(&m.partition("t", p).unwrap(), 0, 1 << 20)
                .into_iter()
                .collect()
        })
        .collect();
    for (partition, base, tag) in &acked {
        for i in 0..5u64 {
            let offset = base + i;
            let value = stored[*partition as usize]
                .get(&offset)
                .expect("acknowledged record is stored");
            assert!(
                value.starts_with(format!("{tag}:{i}:").as_bytes()),
                "partition {partition} offset {offset}"
            );
        }
    }
    m.shutdown().unwrap();
}

#[test]
fn kafka_listen_mistakes_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    for (value, expected) in [
        ("nonsense", "runnel-broker: kafka listen address \"nonsense\""),
        (
            busy_addr.as_str(),
            "runnel-broker: listen (Kafka protocol; `--kafka-listen off` disables it) on",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_runnel-broker"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "off",
                "--kafka-listen",
                value,
                "--data-dir",
            ])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or_default();
        assert!(last.starts_with(expected), "{err}");
    }
}

#[test]
fn the_metrics_endpoint_answers_health_ready_and_metrics() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addrs, _log) = spawn_daemon_addrs(dir.path());
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(addrs[2]).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: runnel\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert!(get("/health").starts_with("HTTP/1.1 200"));
    assert!(get("/ready").starts_with("HTTP/1.1 200"));
    let metrics = get("/metrics");
    assert!(metrics.contains("application/openmetrics-text"), "{metrics}");
    assert!(metrics.contains("runnel_uptime_seconds "), "{metrics}");
    assert!(metrics.trim_end().ends_with("# EOF"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
}

/// The Kafka and metrics listeners' *default* addresses (9092, 7118) may be taken — by a
/// Kafka broker under evaluation beside Runnel, say. The broker then starts without them,
/// saying so in one line that names the flag; the native listener still serves.
#[test]
fn taken_default_ports_leave_the_broker_up_without_those_listeners() {
    use std::io::BufRead;
    // Holding them here makes them taken; if something else holds one already, it is
    // taken all the same.
    let _kafka = std::net::TcpListener::bind("127.0.0.1:9092");
    let _metrics = std::net::TcpListener::bind("127.0.0.1:7118");
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_runnel-broker"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env_remove("RUNNEL_KAFKA_LISTEN")
        .env_remove("RUNNEL_METRICS_LISTEN")
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut lines = Vec::new();
    for line in stderr.by_ref().map_while(Result::ok).take(50) {
        let started = line.contains("runnel-broker started");
        lines.push(line);
        if started {
            break;
        }
    }
    // Keep draining, so the daemon's later log lines never meet a closed pipe.
    let drain = std::thread::spawn(move || stderr.map_while(Result::ok).collect::<Vec<_>>());
    let log = lines.join("\n");
    let started = lines.last().cloned().unwrap_or_default();
    assert!(started.contains("runnel-broker started"), "{log}");
    assert!(started.contains("kafka_listen=None"), "{log}");
    assert!(started.contains("metrics_listen=None"), "{log}");
    let kafka_warning = lines
        .iter()
        .find(|l| l.contains("KAFKA LISTENER NOT STARTED"))
        .unwrap_or_else(|| panic!("no warning for the Kafka port: {log}"));
    assert!(
        kafka_warning.contains("127.0.0.1:9092") && kafka_warning.contains("--kafka-listen"),
        "{kafka_warning}"
    );
    let metrics_warning = lines
        .iter()
        .find(|l| l.contains("METRICS ENDPOINT NOT STARTED"))
        .unwrap_or_else(|| panic!("no warning for the metrics port: {log}"));
    assert!(metrics_warning.contains("--metrics-listen"), "{metrics_warning}");

    // The native listener serves: an ApiVersions round trip.
    let native: SocketAddr = started
        .split(" listen=")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no native address in {started}"));
    common::wire::Wire::connect(native).ping();

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}: {:?}", drain.join().unwrap());
}

/// Topic auto-creation is set by flag, environment or config file: a Metadata request
/// that allows it gets `num_partitions` partitions, or nothing when it is off.
#[test]
fn auto_creation_is_configured_by_flag_environment_or_file() {
    use runnel_protocol::messages::MetadataRequest;
    let ask = |addr: SocketAddr| {
        let mut w = common::wire::Wire::connect(addr);
        let (r, _) = w.call(
            &MetadataRequest {
                topics: vec!["made".into()],
                allow_auto_topic_creation: true,
            },
            &[],
        );
        (r.topics[0].error_code, r.topics[0].partitions.len())
    };
    let stop = |mut child: std::process::Child| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        assert!(child.wait().unwrap().success());
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broker.toml");
    std::fs::write(&file, "num_partitions = 3\n").unwrap();
    let data = dir.path().join("file");
    let (child, addrs, _log) = spawn_daemon_with(&data, &["--config", file.to_str().unwrap()], &[]);
    assert_eq!(ask(addrs[0]), (0, 3), "created with the file's num_partitions");
    stop(child);

    let data = dir.path().join("flag");
    let (child, addrs, _log) = spawn_daemon_with(&data, &["--auto-create-topics-enable", "false"], &[]);
    assert_eq!(ask(addrs[0]).0, 3, "off by flag: UNKNOWN_TOPIC_OR_PARTITION");
    stop(child);

    let data = dir.path().join("env");
    let (child, addrs, _log) = spawn_daemon_with(
        &data,
        &[],
        &[
            ("RUNNEL_AUTO_CREATE_TOPICS_ENABLE", "false"),
            ("RUNNEL_NUM_PARTITIONS", "2"),
        ],
    );
    assert_eq!(ask(addrs[0]).0, 3, "off by environment");
    stop(child);
}

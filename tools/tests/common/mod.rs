//! What the CLI tests share: an in-process broker and the `runnel` binary against it.
#![allow(dead_code)]

use runnel_broker::server::{Server, ServerConfig};
use runnel_broker::storage::{LogManager, StorageConfig};

pub struct Broker {
    pub addr: String,
    pub kafka_addr: Option<String>,
    pub metrics_addr: Option<String>,
    _server: Server,
    pub runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

pub fn broker() -> Broker {
    broker_with(ServerConfig::default())
}

/// A broker with `cfg`, its native listener on a free loopback port.
pub fn broker_with(cfg: ServerConfig) -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let storage = LogManager::open(StorageConfig::new(dir.path())).unwrap();
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..cfg
    };
    let server = runtime.block_on(Server::bind(storage, cfg)).unwrap();
    Broker {
        addr: server.local_addr().to_string(),
        kafka_addr: server.kafka_addr().map(|a| a.to_string()),
        metrics_addr: server.metrics_addr().map(|a| a.to_string()),
        _server: server,
        runtime,
        _dir: dir,
    }
}

pub fn runnel(b: &Broker) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("runnel").unwrap();
    c.env("RUNNEL_BROKER", &b.addr);
    c
}

/// Runs and returns (exit code, stderr), asserting stdout is empty and stderr one line.
pub fn fails(mut cmd: assert_cmd::Command) -> (i32, String) {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "succeeded: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    assert!(stderr.starts_with("runnel: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code().unwrap(), stderr)
}

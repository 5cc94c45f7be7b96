//! An in-process broker on 127.0.0.1:0 over a temporary directory.

#![allow(dead_code)]

use std::path::Path;

use runnel_broker::server::{Server, ServerConfig};
use runnel_broker::storage::{LogManager, StorageConfig};

pub async fn start_broker(dir: &Path) -> Server {
    let storage = LogManager::open(StorageConfig::new(dir)).expect("open storage");
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    Server::bind(storage, cfg).await.expect("bind")
}

pub fn addr(server: &Server) -> String {
    server.local_addr().to_string()
}

/// Group timings for tests: short sessions and heartbeats, so handovers and expiry take
/// milliseconds to a second.
pub fn fast_groups() -> runnel_broker::group::GroupConfig {
    runnel_broker::group::GroupConfig {
        min_session_timeout_ms: 100,
        heartbeat_interval_ms: 100,
        reconcile_heartbeat_interval_ms: 20,
        tick_ms: 20,
        ..Default::default()
    }
}

/// A broker with `fast_groups` on `listen` (`127.0.0.1:0`, or a port to restart on).
pub async fn start_broker_on(dir: &Path, listen: &str) -> Server {
    let storage = LogManager::open(StorageConfig::new(dir)).expect("open storage");
    let cfg = ServerConfig {
        listen: listen.parse().unwrap(),
        group: fast_groups(),
        ..ServerConfig::default()
    };
    Server::bind(storage, cfg).await.expect("bind")
}

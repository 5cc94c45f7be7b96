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

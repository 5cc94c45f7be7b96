//! What the librdkafka tests share: a broker with a Kafka listener, client configs.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use runnel_broker::server::{Server, ServerConfig};
use runnel_broker::storage::{LogManager, StorageConfig};

pub const TIMEOUT: Duration = Duration::from_secs(20);

pub async fn start(dir: &std::path::Path) -> Server {
    let storage = LogManager::open(StorageConfig::new(dir)).unwrap();
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        kafka_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..ServerConfig::default()
    };
    Server::bind(storage, cfg).await.unwrap()
}

pub fn config(server: &Server) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", server.kafka_addr().unwrap().to_string())
        .set("broker.address.family", "v4")
        .set("log_level", "4");
    c
}

/// Creates `topic` through the native listener; returns that listener's address.
pub async fn create_topic(server: &Server, topic: &str, partitions: u32) -> String {
    let addr = server.local_addr().to_string();
    runnel_client::Admin::connect(&addr)
        .await
        .unwrap()
        .create_topic(topic, partitions, BTreeMap::new())
        .await
        .unwrap();
    addr
}

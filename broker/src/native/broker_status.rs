//! BrokerStatus (Runnel's own): version, uptime, connections, and per topic its size and
//! traffic totals — the numbers `/metrics` exports — for `runnel status`.

use std::ops::RangeInclusive;

use runnel_protocol::messages::{BrokerStatusRequest, BrokerStatusResponse, TopicStatus};

use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub fn handle(broker: &Broker, _req: BrokerStatusRequest) -> BrokerStatusResponse {
    let m = &broker.metrics();
    let topics = broker
        .storage
        .topics()
        .iter()
        .map(|t| {
            let (produced_records, produced_bytes, fetched_records, fetched_bytes) = m.topic_traffic(&t.name);
            TopicStatus {
                name: t.name.clone(),
                partitions: t.partitions.len() as u32,
                size_bytes: t.partitions.iter().map(|p| p.size_bytes()).sum(),
                produced_records,
                produced_bytes,
                fetched_records,
                fetched_bytes,
            }
        })
        .collect();
    BrokerStatusResponse {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_ms: m.uptime().as_millis() as u64,
        connections: m.connections.get().max(0) as u32,
        topics,
        ..Default::default()
    }
}

//! DescribeCluster: the cluster id, the controller and the live brokers at their Kafka
//! addresses (as Metadata lists them).

use std::ops::RangeInclusive;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::str_bytes;
use crate::service::{cluster, Broker};

pub const VERSIONS: RangeInclusive<i16> = 0..=1;

/// Kafka's "authorized operations not asked for".
const NOT_ASKED: i32 = i32::MIN;

pub fn handle(broker: &Broker, _req: DescribeClusterRequest) -> DescribeClusterResponse {
    let view = cluster::describe(broker);
    let brokers = view
        .brokers
        .iter()
        .filter(|b| !b.fenced)
        .filter_map(|b| {
            let (host, port) = b.kafka.as_deref()?.rsplit_once(':')?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.id))
                    .with_host(str_bytes(host))
                    .with_port(port.parse().ok()?),
            )
        })
        .collect();
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&view.cluster_id))
        .with_controller_id(BrokerId(view.controller_id))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(NOT_ASKED)
}

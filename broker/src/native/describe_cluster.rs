//! DescribeCluster: the brokers the metadata quorum knows, the controller, and this
//! broker's metadata offset (`runnel cluster describe`).

use std::ops::RangeInclusive;

use runnel_protocol::messages::{ClusterBroker, DescribeClusterRequest, DescribeClusterResponse};

use crate::service::{cluster, Broker};

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub fn handle(broker: &Broker, _req: DescribeClusterRequest) -> DescribeClusterResponse {
    let view = cluster::describe(broker);
    DescribeClusterResponse {
        cluster_id: view.cluster_id,
        controller_id: view.controller_id,
        metadata_offset: view.metadata_offset,
        node_id: broker.node_id,
        brokers: view
            .brokers
            .into_iter()
            .map(|b| ClusterBroker {
                node_id: b.id,
                native: b.native,
                kafka: b.kafka.unwrap_or_default(),
                fenced: b.fenced,
                epoch: b.epoch,
                leaders: b.leaders as u32,
                voter: b.voter,
            })
            .collect(),
        ..Default::default()
    }
}

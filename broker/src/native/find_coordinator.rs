//! FindCoordinator: the broker leading the group's offsets-log partition (this one, on a
//! single broker).

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};

use crate::service::groups::offsets_partition;
use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub fn handle(broker: &Arc<Broker>, req: FindCoordinatorRequest) -> FindCoordinatorResponse {
    FindCoordinatorResponse {
        node_id: broker.node_id,
        host: broker.advertised_host.clone(),
        port: broker.advertised_port as u32,
        offsets_partition: offsets_partition(&req.group_id),
        ..Default::default()
    }
}

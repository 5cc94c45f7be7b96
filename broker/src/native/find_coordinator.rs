//! FindCoordinator: the broker leading the group's offsets-log partition, through
//! `service::groups::find_coordinator`.

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};

use crate::service::groups::{find_coordinator, offsets_partition};
use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: FindCoordinatorRequest) -> FindCoordinatorResponse {
    match find_coordinator(broker, &req.group_id).await {
        Ok(c) => {
            let (host, port) = c.native.rsplit_once(':').unwrap_or((c.native.as_str(), "0"));
            FindCoordinatorResponse {
                node_id: c.node_id,
                host: host.to_owned(),
                port: port.parse().unwrap_or(0),
                offsets_partition: c.offsets_partition,
                ..Default::default()
            }
        }
        Err(f) => FindCoordinatorResponse {
            error_code: f.code.code(),
            error_message: f.message,
            node_id: -1,
            offsets_partition: offsets_partition(&req.group_id),
            ..Default::default()
        },
    }
}

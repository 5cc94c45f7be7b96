//! SyncGroup (classic protocol): the leader brings the assignment; every member gets
//! its part once the leader's has arrived.

use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use runnel_protocol::ErrorCode;

use super::{group_error, str_bytes};
use crate::group::{GroupError, SyncRequest};
use crate::server::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=5;

pub async fn handle(broker: &Arc<Broker>, version: i16, body: SyncGroupRequest) -> SyncGroupResponse {
    let sync = SyncRequest {
        member_id: body.member_id.to_string(),
        instance_id: body
            .group_instance_id
            .as_ref()
            .map(|i| i.to_string())
            .filter(|i| !i.is_empty()),
        generation: body.generation_id,
        protocol_type: body.protocol_type.as_ref().map(|p| p.to_string()),
        protocol: body.protocol_name.as_ref().map(|p| p.to_string()),
        assignments: body
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    };
    let answer = broker.groups.sync(&body.group_id.0, sync);
    // Waiting for the other members is not service time (slow-request log).
    let result = crate::metrics::waiting(async {
        tokio::select! {
            r = answer => r.unwrap_or_else(|_| Err(GroupError::new(ErrorCode::CoordinatorNotAvailable, "the coordinator dropped the request"))),
            _ = broker.shutting_down() => Err(GroupError::new(ErrorCode::CoordinatorNotAvailable, "the broker is stopping")),
        }
    })
    .await;
    match result {
        Ok(o) => {
            let resp = SyncGroupResponse::default().with_assignment(o.assignment);
            if version >= 5 {
                resp.with_protocol_type(Some(str_bytes(&o.protocol_type)))
                    .with_protocol_name(Some(str_bytes(&o.protocol)))
            } else {
                resp
            }
        }
        Err(e) => SyncGroupResponse::default().with_error_code(group_error(&e)),
    }
}

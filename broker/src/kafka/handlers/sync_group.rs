//! SyncGroup (classic protocol): the leader brings the assignment; every member gets
//! its part once the leader's has arrived.

use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::{group_error, str_bytes};
use crate::group::SyncRequest;
use crate::net::order::ApplyOrder;
use crate::service::{groups, Broker};

pub const VERSIONS: RangeInclusive<i16> = 0..=5;

/// `order`: applied in the connection's request order, as JoinGroup.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    version: i16,
    body: SyncGroupRequest,
    order: Option<ApplyOrder>,
) -> SyncGroupResponse {
    let sync = SyncRequest {
        member_id: body.member_id.to_string(),
        instance_id: super::instance_id(&body.group_instance_id),
        generation: body.generation_id,
        protocol_type: body.protocol_type.as_ref().map(|p| p.to_string()),
        protocol: body.protocol_name.as_ref().map(|p| p.to_string()),
        assignments: body
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    };
    let answer = super::in_turn(order, || groups::sync(broker, &body.group_id.0, sync)).await;
    let result = super::group_answer(broker, answer).await;
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

//! LeaveGroup (classic protocol): v0–2 name one member; v3+ a batch, each by member id
//! or by static instance id, answered one by one.

use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use runnel_protocol::ErrorCode;

use super::{group_error, str_bytes};
use crate::net::order::ApplyOrder;
use crate::service::{groups, Broker};

pub const VERSIONS: RangeInclusive<i16> = 0..=5;

/// `order`: applied in the connection's request order, so a commit sent just before the
/// leave still counts (a consumer closing commits, then leaves).
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    version: i16,
    body: LeaveGroupRequest,
    order: Option<ApplyOrder>,
) -> LeaveGroupResponse {
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        body.members
            .iter()
            .map(|m| {
                let inst = super::instance_id(&m.group_instance_id);
                (m.member_id.to_string(), inst)
            })
            .collect()
    } else {
        vec![(body.member_id.to_string(), None)]
    };
    let asked = members.clone();
    let (results, durable) = super::in_turn(order, || groups::leave(broker, &body.group_id.0, members)).await;
    if let Err(e) = durable.wait().await {
        let code = ErrorCode::CoordinatorNotAvailable.code() as i16;
        tracing::warn!(group = %body.group_id.0, error = %e, "LeaveGroup not stored");
        return LeaveGroupResponse::default().with_error_code(code);
    }
    if version < 3 {
        let code = results.first().map_or(0, |r| r.as_ref().err().map_or(0, group_error));
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let members = asked
        .into_iter()
        .zip(results)
        .map(|((id, inst), r)| {
            MemberResponse::default()
                .with_member_id(str_bytes(r.as_deref().unwrap_or(&id)))
                .with_group_instance_id(inst.as_deref().map(str_bytes))
                .with_error_code(r.as_ref().err().map_or(0, group_error))
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}

//! JoinGroup (classic protocol): the member waits in the coordinator until the join
//! phase ends; the leader's answer lists every member's metadata.

use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use runnel_protocol::ErrorCode;

use super::{group_error, str_bytes};
use crate::group::JoinRequest;
use crate::kafka::Request;
use crate::net::order::ApplyOrder;
use crate::service::{groups, Broker};

pub const VERSIONS: RangeInclusive<i16> = 0..=9;

/// `order`: the join is registered in the connection's request order (after a commit
/// sent before it); the wait for the other members is not.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    req: &Request,
    body: JoinGroupRequest,
    order: Option<ApplyOrder>,
) -> JoinGroupResponse {
    let session_timeout_ms = body.session_timeout_ms.max(0) as u32;
    let join = JoinRequest {
        member_id: body.member_id.to_string(),
        instance_id: super::instance_id(&body.group_instance_id),
        client_id: req.client_id.clone().unwrap_or_default(),
        client_host: format!("/{}", req.peer.ip()),
        session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout serves, as in Kafka.
        rebalance_timeout_ms: if req.version >= 1 {
            body.rebalance_timeout_ms.max(0) as u32
        } else {
            session_timeout_ms
        },
        protocol_type: body.protocol_type.to_string(),
        protocols: body
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: req.version >= 4,
        supports_skip_assignment: req.version >= 9,
    };
    let answer = super::in_turn(order, || groups::join(broker, &body.group_id.0, join)).await;
    let result = super::group_answer(broker, answer).await;
    let v = req.version;
    // Strings that are not nullable before v7 must not be null.
    let empty = || Some(str_bytes(""));
    let resp = JoinGroupResponse::default()
        .with_generation_id(-1)
        .with_protocol_name(if v >= 7 { None } else { empty() });
    match result {
        Ok(o) if o.member_id_required => resp
            .with_error_code(ErrorCode::MemberIdRequired.code() as i16)
            .with_member_id(str_bytes(&o.member_id)),
        Ok(o) => {
            let members = o
                .members
                .into_iter()
                .map(|m| {
                    let jm = JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(&m.member_id))
                        .with_metadata(m.metadata);
                    if v >= 5 {
                        jm.with_group_instance_id(m.instance_id.as_deref().map(str_bytes))
                    } else {
                        jm
                    }
                })
                .collect();
            let resp = resp
                .with_generation_id(o.generation)
                .with_protocol_name(Some(str_bytes(&o.protocol)))
                .with_leader(str_bytes(&o.leader))
                .with_member_id(str_bytes(&o.member_id))
                .with_members(members)
                .with_skip_assignment(o.skip_assignment);
            if v >= 7 {
                resp.with_protocol_type(Some(str_bytes(&o.protocol_type)))
            } else {
                resp
            }
        }
        Err(e) => resp
            .with_error_code(group_error(&e))
            .with_member_id(body.member_id.clone()),
    }
}

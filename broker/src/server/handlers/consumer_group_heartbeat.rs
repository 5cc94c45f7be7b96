//! ConsumerGroupHeartbeat: join, stay, leave; the answer is what the member should hold.

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use runnel_protocol::Response;

use super::{from_topic_partitions, non_empty, to_topic_partitions};
use crate::group::Heartbeat;
use crate::server::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatResponse {
    let hb = Heartbeat {
        member_id: req.member_id,
        member_epoch: req.member_epoch,
        instance_id: non_empty(req.instance_id),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        topics: req.subscribed_topics.into_iter().collect(),
        regex: non_empty(req.subscribed_topic_regex),
        assignor: non_empty(req.assignor),
        owned: from_topic_partitions(req.owned),
    };
    let (result, durable) = broker.groups.heartbeat(&req.group_id, hb);
    if let Err(e) = durable.wait().await {
        let (code, message) = super::code_and_message(&e);
        return ConsumerGroupHeartbeatResponse::with_error(runnel_protocol::ErrorCode::from_i32(code), message);
    }
    match result {
        Ok((reply, interval)) => ConsumerGroupHeartbeatResponse {
            member_id: reply.member_id,
            member_epoch: reply.member_epoch,
            heartbeat_interval_ms: interval,
            assignment: to_topic_partitions(&reply.assignment),
            ..Default::default()
        },
        Err(e) => ConsumerGroupHeartbeatResponse::with_error(e.code, e.message),
    }
}

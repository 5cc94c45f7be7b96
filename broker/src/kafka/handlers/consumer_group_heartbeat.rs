//! ConsumerGroupHeartbeat (KIP-848) for Kafka clients (`group.protocol=consumer`): the
//! same coordinator and server-side assignors (`uniform`, `range`) as native members.
//! Partitions travel by topic id. A field the client leaves null is unchanged since its
//! last heartbeat, so it is taken from the coordinator's view of the member.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use runnel_protocol::ErrorCode;
use uuid::Uuid;

use super::{group_error, str_bytes};
use crate::group::{Heartbeat, Tp};
use crate::net::order::ApplyOrder;
use crate::service::{groups, topics, Broker};

pub const VERSIONS: RangeInclusive<i16> = 0..=1;

/// `order`: applied in the connection's request order (a commit sent before a leave
/// counts).
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    req: ConsumerGroupHeartbeatRequest,
    order: Option<ApplyOrder>,
) -> ConsumerGroupHeartbeatResponse {
    let group = req.group_id.0.to_string();
    let member_id = req.member_id.to_string();
    let topics = topics::all(broker);
    let name_of = |id: &Uuid| {
        let id = id.to_string();
        topics.iter().find(|t| t.id == id).map(|t| t.name.clone())
    };
    let known = (req.member_epoch > 0)
        .then(|| groups::member(broker, &group, &member_id))
        .flatten();
    let subscribed: BTreeSet<String> = match &req.subscribed_topic_names {
        Some(names) => names.iter().map(|n| n.0.to_string()).collect(),
        None => known.as_ref().map(|m| m.topics.clone()).unwrap_or_default(),
    };
    let regex = match &req.subscribed_topic_regex {
        Some(r) => Some(r.to_string()),
        None => known.as_ref().map(|m| m.regex_str().to_owned()),
    };
    let owned: BTreeSet<Tp> = match &req.topic_partitions {
        Some(tps) => tps
            .iter()
            .filter_map(|t| name_of(&t.topic_id).map(|name| (name, &t.partitions)))
            .flat_map(|(name, ps)| ps.iter().map(move |p| (name.clone(), *p as u32)))
            .collect(),
        None => known
            .as_ref()
            .map(|m| m.owned.keys().cloned().collect())
            .unwrap_or_default(),
    };
    let hb = Heartbeat {
        member_id,
        member_epoch: req.member_epoch,
        instance_id: req
            .instance_id
            .as_ref()
            .map(|i| i.to_string())
            .filter(|i| !i.is_empty()),
        session_timeout_ms: 0,
        rebalance_timeout_ms: req.rebalance_timeout_ms.max(0) as u32,
        topics: subscribed,
        regex: regex.filter(|r| !r.is_empty()),
        assignor: req
            .server_assignor
            .as_ref()
            .map(|a| a.to_string())
            .filter(|a| !a.is_empty()),
        owned,
    };
    let (result, durable) = super::in_turn(order, || groups::heartbeat(broker, &group, hb)).await;
    if let Err(e) = durable.wait().await {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(ErrorCode::CoordinatorNotAvailable.code() as i16)
            .with_error_message(Some(str_bytes(&format!("group change not stored: {e}"))));
    }
    match result {
        Ok((reply, interval)) => {
            let mut by_topic: Vec<TopicPartitions> = Vec::new();
            for (topic, p) in &reply.assignment {
                let Some(t) = topics.iter().find(|t| t.name == *topic) else {
                    continue;
                };
                let id = Uuid::parse_str(&t.id).unwrap_or_default();
                match by_topic.last_mut() {
                    Some(last) if last.topic_id == id => last.partitions.push(*p as i32),
                    _ => by_topic.push(
                        TopicPartitions::default()
                            .with_topic_id(id)
                            .with_partitions(vec![*p as i32]),
                    ),
                }
            }
            ConsumerGroupHeartbeatResponse::default()
                .with_member_id(Some(str_bytes(&reply.member_id)))
                .with_member_epoch(reply.member_epoch)
                .with_heartbeat_interval_ms(interval as i32)
                .with_assignment(Some(Assignment::default().with_topic_partitions(by_topic)))
        }
        Err(e) => ConsumerGroupHeartbeatResponse::default()
            .with_error_code(group_error(&e))
            .with_error_message(Some(str_bytes(&e.message))),
    }
}

//! DescribeGroups: state, protocol and members. Classic groups as their members joined
//! (metadata and assignment bytes as sent); consumer-protocol groups with their
//! subscriptions and assignments encoded in the `consumer` protocol's formats, so Kafka
//! tools can read them too. An unknown group is `Dead`, as Kafka answers up to v5.

use std::ops::RangeInclusive;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, DescribeGroupsRequest, DescribeGroupsResponse,
};
use kafka_protocol::protocol::Encodable;

use super::{str_bytes, topic_name};
use crate::group::{GroupSnapshot, Tp};
use crate::service::{groups, Broker};

pub const VERSIONS: RangeInclusive<i16> = 0..=5;

pub fn handle(broker: &Broker, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let groups = req
        .groups
        .into_iter()
        .map(|id| match groups::describe(broker, &id.0) {
            Ok(Some(g)) => describe(g).with_group_id(id),
            Ok(None) => DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(str_bytes("Dead")),
            Err(f) => DescribedGroup::default()
                .with_group_id(id)
                .with_error_code(f.code.code() as i16),
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

fn describe(g: GroupSnapshot) -> DescribedGroup {
    if let Some(c) = g.classic {
        let members = c
            .members
            .iter()
            .map(|m| {
                DescribedGroupMember::default()
                    .with_member_id(str_bytes(&m.id))
                    .with_group_instance_id(m.instance_id.as_deref().map(str_bytes))
                    .with_client_id(str_bytes(&m.client_id))
                    .with_client_host(str_bytes(&m.client_host))
                    .with_member_metadata(m.metadata(&c.protocol))
                    .with_member_assignment(m.assignment.clone())
            })
            .collect();
        return DescribedGroup::default()
            .with_group_state(str_bytes(g.state))
            .with_protocol_type(str_bytes(&c.protocol_type))
            .with_protocol_data(str_bytes(&c.protocol))
            .with_members(members);
    }
    let state = match g.state {
        "reconciling" => "Reconciling",
        "stable" => "Stable",
        _ => "Empty",
    };
    let members = g
        .members
        .iter()
        .map(|m| {
            let subscription =
                ConsumerProtocolSubscription::default().with_topics(m.topics.iter().map(|t| str_bytes(t)).collect());
            let owned: Vec<Tp> = m.owned.keys().cloned().collect();
            DescribedGroupMember::default()
                .with_member_id(str_bytes(&m.id))
                .with_group_instance_id(m.instance_id.as_deref().map(str_bytes))
                .with_member_metadata(consumer_protocol(&subscription))
                .with_member_assignment(consumer_protocol(&assignment(&owned)))
        })
        .collect();
    let protocol_type = if g.members.is_empty() { "" } else { "consumer" };
    DescribedGroup::default()
        .with_group_state(str_bytes(state))
        .with_protocol_type(str_bytes(protocol_type))
        .with_protocol_data(str_bytes(g.assignor.name()))
        .with_members(members)
}

fn assignment(tps: &[Tp]) -> ConsumerProtocolAssignment {
    let mut topics: Vec<TopicPartition> = Vec::new();
    for (topic, p) in tps {
        match topics.last_mut() {
            Some(t) if *t.topic.0 == **topic => t.partitions.push(*p as i32),
            _ => topics.push(
                TopicPartition::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(vec![*p as i32]),
            ),
        }
    }
    ConsumerProtocolAssignment::default().with_assigned_partitions(topics)
}

/// A `consumer`-protocol message: its version (0) then its body.
fn consumer_protocol<T: Encodable>(message: &T) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    match message.encode(&mut buf, 0) {
        Ok(()) => buf.freeze(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a consumer-protocol message");
            Bytes::new()
        }
    }
}

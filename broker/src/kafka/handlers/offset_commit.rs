//! OffsetCommit through the group coordinator. A commit with no member (empty member id,
//! generation -1: a consumer that assigns partitions itself) is accepted for a group
//! without members, as in Kafka. Classic members commit with their generation
//! (ILLEGAL_GENERATION when it is not the group's, REBALANCE_IN_PROGRESS between join
//! and sync); static members with their instance id (v7+: FENCED_INSTANCE_ID once a newer
//! instance replaced them).

use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use runnel_protocol::messages as native;

use super::{kafka_code, topic_name};
use crate::net::order::ApplyOrder;
use {crate::native as handlers, crate::service::Broker};

pub const VERSIONS: RangeInclusive<i16> = 2..=9;

pub(crate) async fn handle(
    broker: &Arc<Broker>,
    req: OffsetCommitRequest,
    order: Option<ApplyOrder>,
) -> OffsetCommitResponse {
    let native_req = native::OffsetCommitRequest {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.generation_id_or_member_epoch,
        group_instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
        topics: req
            .topics
            .iter()
            .map(|t| native::OffsetCommitTopic {
                topic: t.name.0.to_string(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| native::OffsetCommitPartition {
                        partition: p.partition_index as u32,
                        offset: p.committed_offset,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect(),
    };
    let resp = handlers::offset_commit::handle(broker, native_req, order).await;
    // A request-level error (unknown member, bad group id) applies to every partition.
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = if resp.error_code != 0 {
                        resp.error_code
                    } else {
                        resp.topics
                            .iter()
                            .filter(|r| *r.topic == *t.name.0)
                            .flat_map(|r| &r.partitions)
                            .find(|r| r.partition as i32 == p.partition_index)
                            .map_or(0, |r| r.error_code)
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(kafka_code(code))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic_name(&t.name.0))
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

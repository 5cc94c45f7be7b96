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

use super::{kafka_code, topic_name};
use crate::group::OffsetCommit;
use crate::net::order::ApplyOrder;
use crate::service::groups::{self, Committer};
use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 2..=9;

pub(crate) async fn handle(
    broker: &Arc<Broker>,
    req: OffsetCommitRequest,
    order: Option<ApplyOrder>,
) -> OffsetCommitResponse {
    let commits = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| OffsetCommit {
                tp: (t.name.0.to_string(), p.partition_index.max(0) as u32),
                offset: p.committed_offset,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default(),
            })
        })
        .collect();
    let who = Committer {
        member_id: req.member_id.to_string(),
        member_epoch: req.generation_id_or_member_epoch,
        instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
    };
    let outcome = groups::commit_offsets(broker, &req.group_id.0, &who, commits, order).await;
    // A request-level failure (unknown member, bad group id) applies to every partition;
    // otherwise the outcomes come in request order.
    let mut outcomes = outcome.as_ref().ok().map(|r| r.iter());
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = match (&outcome, outcomes.as_mut().and_then(Iterator::next)) {
                        (Err(f), _) => f.code.code(),
                        (Ok(_), Some((_, Err(f)))) => f.code.code(),
                        _ => 0,
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

//! OffsetCommit: a member's commits for the partitions it owns (fenced by member epoch),
//! or an admin's for a group without members (`service::groups::commit_offsets`).
//! Answered once durable.

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{
    OffsetCommitPartitionResult, OffsetCommitRequest, OffsetCommitResponse, OffsetCommitTopicResult,
};
use runnel_protocol::Response;

use crate::group::OffsetCommit;
use crate::net::order::ApplyOrder;
use crate::service::groups::{self, Committer};
use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

/// `order`: commits take effect in the connection's request order (the last one sent
/// wins, as in Kafka).
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    req: OffsetCommitRequest,
    order: Option<ApplyOrder>,
) -> OffsetCommitResponse {
    let commits: Vec<OffsetCommit> = req
        .topics
        .into_iter()
        .flat_map(|t| {
            t.partitions.into_iter().map(move |p| OffsetCommit {
                tp: (t.topic.clone(), p.partition),
                offset: p.offset,
                metadata: p.metadata,
            })
        })
        .collect();
    let who = Committer {
        member_id: req.member_id,
        member_epoch: req.member_epoch,
        instance_id: req.group_instance_id,
    };
    let results = match groups::commit_offsets(broker, &req.group_id, &who, commits, order).await {
        Ok(r) => r,
        Err(f) => return OffsetCommitResponse::with_error(f.code, f.message),
    };
    let mut topics: Vec<OffsetCommitTopicResult> = Vec::new();
    for ((topic, partition), r) in results {
        let (error_code, error_message) = super::error_fields(r);
        let p = OffsetCommitPartitionResult {
            partition,
            error_code,
            error_message,
        };
        match topics.last_mut() {
            Some(t) if t.topic == topic => t.partitions.push(p),
            _ => topics.push(OffsetCommitTopicResult {
                topic,
                partitions: vec![p],
            }),
        }
    }
    OffsetCommitResponse {
        topics,
        ..Default::default()
    }
}

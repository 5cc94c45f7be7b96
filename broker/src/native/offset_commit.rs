//! OffsetCommit: a member's commits for the partitions it owns (fenced by member epoch),
//! or an admin's for a group without members. Answered once durable.

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{
    OffsetCommitPartitionResult, OffsetCommitRequest, OffsetCommitResponse, OffsetCommitTopicResult,
};
use runnel_protocol::{ErrorCode, Response};

use crate::group::OffsetCommit;
use crate::net::order::{in_turn, ApplyOrder};
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
    // Durability is awaited below, outside the turn.
    let committed = in_turn(order, || {
        broker.groups.commit(
            &req.group_id,
            &req.member_id,
            req.member_epoch,
            req.group_instance_id.as_deref(),
            commits,
        )
    })
    .await;
    let (results, durable) = match committed {
        Ok(r) => r,
        Err(e) => return OffsetCommitResponse::with_error(e.code, e.message),
    };
    let stored = durable.wait().await;
    let mut topics: Vec<OffsetCommitTopicResult> = Vec::new();
    for ((topic, partition), r) in results {
        let (code, message) = match (&r, &stored) {
            (Err(e), _) => (e.code, e.message.clone()),
            (Ok(()), Err(e)) => (ErrorCode::StorageError, format!("offset not stored: {e}")),
            (Ok(()), Ok(())) => (ErrorCode::None, String::new()),
        };
        let p = OffsetCommitPartitionResult {
            partition,
            error_code: code.code(),
            error_message: message,
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

//! OffsetDelete: drops committed offsets of partitions the group no longer consumes
//! (GROUP_SUBSCRIBED_TO_TOPIC for those it does).

use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use runnel_protocol::ErrorCode;

use super::group_error;
use crate::service::{groups, Broker};

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let tps = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index as u32))
        })
        .collect();
    let (results, durable) = match groups::delete_offsets(broker, &req.group_id.0, tps) {
        Ok(r) => r,
        Err(e) => return OffsetDeleteResponse::default().with_error_code(group_error(&e)),
    };
    if let Err(e) = durable.wait().await {
        tracing::warn!(group = %req.group_id.0, error = %e, "offset deletion not stored");
        return OffsetDeleteResponse::default().with_error_code(ErrorCode::CoordinatorNotAvailable.code() as i16);
    }
    let mut results = results.into_iter();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = results
                        .next()
                        .map_or(0, |(_, r)| r.err().map_or(0, |e| group_error(&e)));
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}

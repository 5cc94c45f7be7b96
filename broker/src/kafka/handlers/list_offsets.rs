//! ListOffsets: earliest (-2), latest (-1) or the first offset at or after a timestamp,
//! through the native handler.

use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use runnel_protocol::messages as native;

use super::kafka_code;
use crate::storage::log::INITIAL_LEADER_EPOCH;
use {crate::native as handlers, crate::service::Broker};

pub const VERSIONS: RangeInclusive<i16> = 1..=7;

pub async fn handle(broker: &Arc<Broker>, version: i16, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let native_req = native::ListOffsetsRequest {
        topics: req
            .topics
            .iter()
            .map(|t| native::ListOffsetsTopic {
                name: t.name.0.to_string(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| native::ListOffsetsPartition {
                        partition: p.partition_index as u32,
                        timestamp: p.timestamp,
                    })
                    .collect(),
            })
            .collect(),
    };
    let resp = handlers::list_offsets::handle(broker, native_req).await;
    let topics = resp
        .topics
        .into_iter()
        .zip(&req.topics)
        .map(|(t, kt)| {
            ListOffsetsTopicResponse::default()
                .with_name(kt.name.clone())
                .with_partitions(
                    t.partitions
                        .into_iter()
                        .map(|p| {
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition as i32)
                                .with_error_code(kafka_code(p.error_code))
                                .with_offset(p.offset)
                                .with_timestamp(p.timestamp)
                                .with_leader_epoch(if p.offset >= 0 && version >= 4 {
                                    INITIAL_LEADER_EPOCH
                                } else {
                                    -1
                                })
                        })
                        .collect(),
                )
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

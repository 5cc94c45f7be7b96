//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3) or the first offset at or
//! after a timestamp, through `service::records`.

use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::kafka_code;
use crate::service::records::{self, OffsetSpec};
use crate::service::Broker;
use crate::storage::log::INITIAL_LEADER_EPOCH;

pub const VERSIONS: RangeInclusive<i16> = 1..=7;

pub async fn handle(broker: &Arc<Broker>, version: i16, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let found = match OffsetSpec::from_timestamp(p.timestamp) {
                Ok(spec) => records::list_offset(broker, &t.name.0, p.partition_index.max(0) as u32, spec).await,
                Err(f) => Err(f),
            };
            let (code, offset, timestamp) = match found {
                Ok(f) => (0, f.offset, f.timestamp),
                Err(f) => (f.code.code(), -1, -1),
            };
            partitions.push(
                ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(kafka_code(code))
                    .with_offset(offset)
                    .with_timestamp(timestamp)
                    .with_leader_epoch(if offset >= 0 && version >= 4 {
                        INITIAL_LEADER_EPOCH
                    } else {
                        -1
                    }),
            );
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

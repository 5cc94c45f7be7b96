//! OffsetFetch (one group per request, v1-7): committed offsets, -1 where none.

use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::messages::offset_fetch_response::{OffsetFetchResponsePartition, OffsetFetchResponseTopic};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};
use runnel_protocol::messages as native;

use super::{str_bytes, topic_name};
use crate::server::{handlers, Broker};

pub const VERSIONS: RangeInclusive<i16> = 1..=7;

pub async fn handle(broker: &Arc<Broker>, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let native_req = native::OffsetFetchRequest {
        group_id: req.group_id.0.to_string(),
        // None (v2+): every partition the group committed.
        topics: req
            .topics
            .iter()
            .flatten()
            .map(|t| native::TopicPartitions {
                topic: t.name.0.to_string(),
                partitions: t.partition_indexes.iter().map(|p| *p as u32).collect(),
            })
            .collect(),
    };
    let resp = handlers::offset_fetch::handle(broker, native_req).await;
    let topics = resp
        .topics
        .into_iter()
        .map(|t| {
            OffsetFetchResponseTopic::default()
                .with_name(topic_name(&t.topic))
                .with_partitions(
                    t.partitions
                        .into_iter()
                        .map(|p| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p.partition as i32)
                                .with_committed_offset(p.offset)
                                .with_metadata(Some(str_bytes(&p.metadata)))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

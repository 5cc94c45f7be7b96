//! OffsetFetch: committed offsets, -1 where none. v1–7 name one group; v8+ a batch of
//! groups (v9 adds the consumer protocol's member id and epoch, which are not checked:
//! reading offsets changes nothing).

use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use runnel_protocol::messages as native;

use super::{str_bytes, topic_name};
use {crate::native as handlers, crate::service::Broker};

pub const VERSIONS: RangeInclusive<i16> = 1..=9;

pub async fn handle(broker: &Arc<Broker>, version: i16, req: OffsetFetchRequest) -> OffsetFetchResponse {
    if version < 8 {
        let wanted = req.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name, t.partition_indexes))
                .collect::<Vec<_>>()
        });
        let topics = fetch(broker, &req.group_id, wanted)
            .await
            .into_iter()
            .map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|p| {
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(p.partition as i32)
                            .with_committed_offset(p.offset)
                            .with_metadata(Some(str_bytes(&p.metadata)))
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect();
        return OffsetFetchResponse::default().with_topics(topics);
    }
    let mut groups = Vec::with_capacity(req.groups.len());
    for g in req.groups {
        let wanted = g.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name, t.partition_indexes))
                .collect::<Vec<_>>()
        });
        let topics = fetch(broker, &g.group_id, wanted)
            .await
            .into_iter()
            .map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|p| {
                        OffsetFetchResponsePartitions::default()
                            .with_partition_index(p.partition as i32)
                            .with_committed_offset(p.offset)
                            .with_committed_leader_epoch(-1)
                            .with_metadata(Some(str_bytes(&p.metadata)))
                    })
                    .collect();
                OffsetFetchResponseTopics::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect();
        groups.push(
            OffsetFetchResponseGroup::default()
                .with_group_id(g.group_id)
                .with_topics(topics),
        );
    }
    OffsetFetchResponse::default().with_groups(groups)
}

/// One group's offsets through the native handler: of these partitions, or (`None`)
/// of every partition it committed.
async fn fetch(
    broker: &Arc<Broker>,
    group: &GroupId,
    wanted: Option<Vec<(TopicName, Vec<i32>)>>,
) -> Vec<(TopicName, Vec<native::OffsetFetchPartition>)> {
    let native_req = native::OffsetFetchRequest {
        group_id: group.0.to_string(),
        topics: wanted
            .into_iter()
            .flatten()
            .map(|(name, partitions)| native::TopicPartitions {
                topic: name.0.to_string(),
                partitions: partitions.iter().map(|p| *p as u32).collect(),
            })
            .collect(),
    };
    handlers::offset_fetch::handle(broker, native_req)
        .await
        .topics
        .into_iter()
        .map(|t| (topic_name(&t.topic), t.partitions))
        .collect()
}

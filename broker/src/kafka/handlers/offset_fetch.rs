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

use super::{str_bytes, topic_name};
use crate::service::{groups, Broker, Outcome};

pub const VERSIONS: RangeInclusive<i16> = 1..=9;

pub async fn handle(broker: &Arc<Broker>, version: i16, req: OffsetFetchRequest) -> OffsetFetchResponse {
    if version < 8 {
        let wanted = req.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name, t.partition_indexes))
                .collect::<Vec<_>>()
        });
        let fetched = match fetch(broker, &req.group_id, wanted) {
            Ok(f) => f,
            // v1 has no request-level error: it answers with no offsets.
            Err(f) if version >= 2 => return OffsetFetchResponse::default().with_error_code(f.code.code() as i16),
            Err(_) => Vec::new(),
        };
        let topics = fetched
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
        let fetched = match fetch(broker, &g.group_id, wanted) {
            Ok(f) => f,
            Err(f) => {
                groups.push(
                    OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(f.code.code() as i16),
                );
                continue;
            }
        };
        let topics = fetched
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

/// One group's offsets, by topic: of these partitions (`None` where nothing is
/// committed), or (`None`) of every partition it committed.
fn fetch(
    broker: &Broker,
    group: &GroupId,
    wanted: Option<Vec<(TopicName, Vec<i32>)>>,
) -> Outcome<Vec<(TopicName, Vec<Fetched>)>> {
    let wanted = wanted.map(|topics| {
        topics
            .into_iter()
            .flat_map(|(name, partitions)| {
                let topic = name.0.to_string();
                partitions.into_iter().map(move |p| (topic.clone(), p.max(0) as u32))
            })
            .collect()
    });
    Ok(groups::by_topic(groups::fetch_offsets(broker, &group.0, wanted)?)
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(partition, c)| Fetched {
                    partition,
                    offset: c.as_ref().map_or(-1, |c| c.offset),
                    metadata: c.map(|c| c.metadata).unwrap_or_default(),
                })
                .collect();
            (topic_name(&topic), partitions)
        })
        .collect())
}

/// One partition's committed offset (-1: none) and its metadata.
struct Fetched {
    partition: u32,
    offset: i64,
    metadata: String,
}

//! OffsetFetch: a group's committed offsets (-1 where nothing is committed).

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{OffsetFetchPartition, OffsetFetchRequest, OffsetFetchResponse, OffsetFetchTopic};

use crate::group::Tp;
use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let wanted: Option<Vec<Tp>> = (!req.topics.is_empty()).then(|| {
        req.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.clone(), *p)))
            .collect()
    });
    let committed = broker.groups.committed(&req.group_id, wanted.as_deref());
    let mut by_topic: BTreeMap<String, Vec<OffsetFetchPartition>> = BTreeMap::new();
    let all: Vec<Tp> = wanted.unwrap_or_else(|| committed.keys().cloned().collect());
    for (topic, partition) in all {
        let c = committed.get(&(topic.clone(), partition));
        by_topic.entry(topic).or_default().push(OffsetFetchPartition {
            partition,
            offset: c.map_or(-1, |c| c.offset),
            metadata: c.map(|c| c.metadata.clone()).unwrap_or_default(),
            commit_timestamp_ms: c.map_or(-1, |c| c.commit_timestamp_ms),
        });
    }
    OffsetFetchResponse {
        topics: by_topic
            .into_iter()
            .map(|(topic, partitions)| OffsetFetchTopic { topic, partitions })
            .collect(),
        ..Default::default()
    }
}

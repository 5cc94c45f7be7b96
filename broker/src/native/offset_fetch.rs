//! OffsetFetch: a group's committed offsets (-1 where nothing is committed), through
//! `service::groups::fetch_offsets`.

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{OffsetFetchPartition, OffsetFetchRequest, OffsetFetchResponse, OffsetFetchTopic};

use crate::group::Tp;
use crate::service::groups;
use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let wanted: Option<Vec<Tp>> = (!req.topics.is_empty()).then(|| {
        req.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.clone(), *p)))
            .collect()
    });
    let committed = match groups::fetch_offsets(broker, &req.group_id, wanted) {
        Ok(c) => c,
        Err(f) => {
            return OffsetFetchResponse {
                error_code: f.code.code(),
                error_message: f.message,
                ..Default::default()
            }
        }
    };
    OffsetFetchResponse {
        topics: groups::by_topic(committed)
            .into_iter()
            .map(|(topic, partitions)| OffsetFetchTopic {
                topic,
                partitions: partitions
                    .into_iter()
                    .map(|(partition, c)| OffsetFetchPartition {
                        partition,
                        offset: c.as_ref().map_or(-1, |c| c.offset),
                        commit_timestamp_ms: c.as_ref().map_or(-1, |c| c.commit_timestamp_ms),
                        metadata: c.map(|c| c.metadata).unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect(),
        ..Default::default()
    }
}

//! Metadata: brokers, topics, partitions with their leader and offsets.

use std::ops::RangeInclusive;

use runnel_protocol::messages::{BrokerInfo, MetadataRequest, MetadataResponse, PartitionMetadata, TopicMetadata};
use runnel_protocol::ErrorCode;

use crate::server::Broker;
use crate::storage::log::INITIAL_LEADER_EPOCH;
use crate::storage::Topic;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub fn handle(broker: &Broker, req: MetadataRequest) -> MetadataResponse {
    let topics = if req.topics.is_empty() {
        broker.storage.topics().iter().map(|t| describe(broker, t)).collect()
    } else {
        req.topics
            .iter()
            .map(|name| match broker.storage.topic(name) {
                Some(t) => describe(broker, &t),
                None => TopicMetadata {
                    name: name.clone(),
                    error_code: ErrorCode::UnknownTopicOrPartition.code(),
                    error_message: format!("unknown topic {name:?}"),
                    ..Default::default()
                },
            })
            .collect()
    };
    MetadataResponse {
        brokers: vec![BrokerInfo {
            node_id: broker.node_id,
            host: broker.advertised_host.clone(),
            port: broker.advertised_port as u32,
        }],
        controller_id: broker.node_id,
        topics,
        ..Default::default()
    }
}

fn describe(broker: &Broker, t: &Topic) -> TopicMetadata {
    TopicMetadata {
        name: t.name.clone(),
        topic_id: t.id.clone(),
        partitions: t
            .partitions
            .iter()
            .enumerate()
            .map(|(p, log)| PartitionMetadata {
                partition: p as u32,
                error_code: 0,
                leader_id: broker.node_id,
                leader_epoch: INITIAL_LEADER_EPOCH,
                log_start_offset: log.start_offset() as i64,
                log_end_offset: log.end_offset() as i64,
                size_bytes: log.size_bytes(),
            })
            .collect(),
        ..Default::default()
    }
}

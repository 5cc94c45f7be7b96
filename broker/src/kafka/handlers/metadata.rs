//! Metadata: this broker (at its Kafka address) and the topics asked for.

use std::ops::RangeInclusive;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use runnel_protocol::ErrorCode;

use super::{str_bytes, topic_name};
use crate::kafka::Request;
use crate::server::Broker;
use crate::storage::log::INITIAL_LEADER_EPOCH;
use crate::storage::Topic;

pub const VERSIONS: RangeInclusive<i16> = 0..=12;

pub fn handle(broker: &Broker, req: &Request, body: MetadataRequest) -> MetadataResponse {
    // v0: an empty list means every topic; v1+: a null list does.
    let all = match &body.topics {
        None => true,
        Some(t) => t.is_empty() && req.version == 0,
    };
    let topics = if all {
        broker.storage.topics().iter().map(|t| describe(broker, t)).collect()
    } else {
        let by_id = |id: &uuid::Uuid| {
            let id = id.to_string();
            broker.storage.topics().into_iter().find(|t| t.id == id)
        };
        body.topics
            .iter()
            .flatten()
            // v10+: a topic may be named by its id alone.
            .map(|t| match &t.name {
                Some(name) => (broker.storage.topic(name), t),
                None => (by_id(&t.topic_id), t),
            })
            .map(|(found, asked)| match found {
                Some(t) => describe(broker, &t),
                // Topics are created explicitly (CreateTopics, `runnel topic create`); no
                // auto-creation on metadata requests.
                None => MetadataResponseTopic::default()
                    .with_name(asked.name.clone())
                    .with_topic_id(asked.topic_id)
                    .with_error_code(ErrorCode::UnknownTopicOrPartition.code() as i16),
            })
            .collect()
    };
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(broker.node_id))
            .with_host(str_bytes(&broker.advertised_host))
            .with_port(i32::from(broker.kafka_port.unwrap_or(0)))])
        .with_cluster_id(Some(str_bytes("runnel")))
        .with_controller_id(BrokerId(broker.node_id))
        .with_topics(topics)
}

fn describe(broker: &Broker, t: &Topic) -> MetadataResponseTopic {
    let node = BrokerId(broker.node_id);
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&t.name)))
        .with_topic_id(uuid::Uuid::parse_str(&t.id).unwrap_or_default())
        .with_is_internal(false)
        .with_partitions(
            (0..t.partitions.len())
                .map(|p| {
                    MetadataResponsePartition::default()
                        .with_partition_index(p as i32)
                        .with_leader_id(node)
                        .with_leader_epoch(INITIAL_LEADER_EPOCH)
                        .with_replica_nodes(vec![node])
                        .with_isr_nodes(vec![node])
                })
                .collect(),
        )
}

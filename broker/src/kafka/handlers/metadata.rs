//! Metadata: the cluster's live brokers (at their Kafka addresses), the controller, and
//! the topics asked for with each partition's leader, epoch, replicas and ISR, creating
//! the missing ones when the request allows it (Kafka's `auto.create.topics.enable`).

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use runnel_protocol::ErrorCode;

use super::{kafka_code, str_bytes, topic_name};
use crate::kafka::Request;
use crate::service::{cluster, topics, Broker};
use crate::storage::Topic;

pub const VERSIONS: RangeInclusive<i16> = 0..=12;

pub async fn handle(broker: &Arc<Broker>, req: &Request, body: MetadataRequest) -> MetadataResponse {
    // v0: an empty list means every topic; v1+: a null list does.
    let all = match &body.topics {
        None => true,
        Some(t) => t.is_empty() && req.version == 0,
    };
    // Before v4 a Metadata request always allowed auto-creation, as in Kafka.
    let allow_create = req.version < 4 || body.allow_auto_topic_creation;
    let not_created = if all || !allow_create {
        BTreeMap::new()
    } else {
        let names: Vec<String> = body
            .topics
            .iter()
            .flatten()
            .filter_map(|t| Some(t.name.as_ref()?.0.to_string()))
            .collect();
        topics::auto_create(broker, &names).await
    };
    let topics = if all {
        topics::all(broker).iter().map(|t| describe(broker, t)).collect()
    } else {
        let by_id = |id: &uuid::Uuid| {
            let id = id.to_string();
            topics::by_id(broker, &id)
        };
        body.topics
            .iter()
            .flatten()
            // v10+: a topic may be named by its id alone.
            .map(|t| match &t.name {
                Some(name) => (topics::topic(broker, name), t),
                None => (by_id(&t.topic_id), t),
            })
            .map(|(found, asked)| match found {
                Some(t) => describe(broker, &t),
                None => {
                    let code = match &asked.name {
                        Some(name) => topics::missing_topic(name, not_created.get(name.as_str())).code,
                        None => ErrorCode::UnknownTopicOrPartition,
                    };
                    MetadataResponseTopic::default()
                        .with_name(asked.name.clone())
                        .with_topic_id(asked.topic_id)
                        .with_error_code(kafka_code(code.code()))
                }
            })
            .collect()
    };
    let cluster_id = broker.cluster.cluster_id().unwrap_or_else(|| "runnel".into());
    MetadataResponse::default()
        .with_brokers(
            cluster::live_brokers(broker, true)
                .into_iter()
                .map(|(id, host, port)| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(id))
                        .with_host(str_bytes(&host))
                        .with_port(i32::from(port))
                })
                .collect(),
        )
        .with_cluster_id(Some(str_bytes(&cluster_id)))
        .with_controller_id(BrokerId(broker.cluster.controller_id().unwrap_or(-1)))
        .with_topics(topics)
}

fn describe(broker: &Broker, t: &Topic) -> MetadataResponseTopic {
    let ids = |v: Vec<i32>| v.into_iter().map(BrokerId).collect::<Vec<_>>();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&t.name)))
        .with_topic_id(uuid::Uuid::parse_str(&t.id).unwrap_or_default())
        .with_is_internal(false)
        .with_partitions(
            (0..t.partitions.len())
                .map(|p| {
                    let l = cluster::leadership(broker, &t.name, p as u32);
                    let code = if l.leader == crate::cluster::NO_LEADER {
                        kafka_code(ErrorCode::LeaderNotAvailable.code())
                    } else {
                        0
                    };
                    MetadataResponsePartition::default()
                        .with_partition_index(p as i32)
                        .with_error_code(code)
                        .with_leader_id(BrokerId(l.leader))
                        .with_leader_epoch(l.leader_epoch)
                        .with_replica_nodes(ids(l.replicas))
                        .with_isr_nodes(ids(l.isr))
                })
                .collect(),
        )
}

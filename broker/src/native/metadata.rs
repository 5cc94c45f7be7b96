//! Metadata: brokers, topics, partitions with their leader and offsets; and topic
//! auto-creation (Kafka's `auto.create.topics.enable`), shared with the Kafka listener.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{BrokerInfo, MetadataRequest, MetadataResponse, PartitionMetadata, TopicMetadata};
use runnel_protocol::ErrorCode;

use super::{blocking, code_and_message};
use crate::error::Error;
use crate::service::Broker;
use crate::storage::log::INITIAL_LEADER_EPOCH;
use crate::storage::manager::check_legal_topic_name;
use crate::storage::{NewTopic, Topic};

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: MetadataRequest) -> MetadataResponse {
    let not_created = if req.allow_auto_topic_creation {
        auto_create(broker, &req.topics).await
    } else {
        BTreeMap::new()
    };
    let topics = if req.topics.is_empty() {
        broker.storage.topics().iter().map(|t| describe(broker, t)).collect()
    } else {
        req.topics
            .iter()
            .map(|name| match broker.storage.topic(name) {
                Some(t) => describe(broker, &t),
                None => {
                    let (error_code, error_message) = missing_topic(name, not_created.get(name));
                    TopicMetadata {
                        name: name.clone(),
                        error_code: error_code.code(),
                        error_message,
                        ..Default::default()
                    }
                }
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

/// Why a topic a Metadata request named is not there: an illegal name is
/// INVALID_TOPIC_EXCEPTION (a client must not wait for it), a failed auto-creation its
/// own error, anything else UNKNOWN_TOPIC_OR_PARTITION.
pub(crate) fn missing_topic(name: &str, not_created: Option<&Error>) -> (ErrorCode, String) {
    if let Err(e) = check_legal_topic_name(name) {
        return (e.code(), e.to_string());
    }
    match not_created {
        // Created by someone else meanwhile, not yet visible: ask again.
        Some(Error::TopicExists(_)) => (
            ErrorCode::LeaderNotAvailable,
            format!("topic {name:?} is being created"),
        ),
        Some(e) => {
            let (code, message) = code_and_message(e);
            (ErrorCode::from_i32(code), message)
        }
        None => (ErrorCode::UnknownTopicOrPartition, format!("unknown topic {name:?}")),
    }
}

/// Creates the topics among `names` that do not exist, as Kafka does for a Metadata
/// request that allows it when `auto_create_topics_enable` is on: `num_partitions`
/// partitions, `default_replication_factor` replicas, the broker's topic defaults. Names
/// that are illegal or reserved are never created. Returns why each name that should
/// have been created was not.
pub(crate) async fn auto_create(broker: &Arc<Broker>, names: &[String]) -> BTreeMap<String, Error> {
    let cfg = &broker.config();
    let wanted: Vec<String> = names
        .iter()
        .filter(|n| broker.storage.topic(n).is_none() && check_legal_topic_name(n).is_ok())
        .cloned()
        .collect();
    if !cfg.auto_create_topics_enable || wanted.is_empty() {
        return BTreeMap::new();
    }
    if let Err(e) = check_replication_factor(broker, i64::from(cfg.default_replication_factor)) {
        return wanted.into_iter().map(|n| (n, e.for_each_of_many())).collect();
    }
    let storage = broker.storage.clone();
    let partitions = i64::from(cfg.num_partitions);
    let names = wanted.clone();
    let results = blocking(move || {
        let none = BTreeMap::new();
        let new: Vec<NewTopic<'_>> = names
            .iter()
            .map(|name| NewTopic {
                name,
                partitions,
                overrides: &none,
            })
            .collect();
        Ok(storage.create_topics(&new))
    })
    .await;
    match results {
        Ok(results) => wanted
            .into_iter()
            .zip(results)
            .filter_map(|(name, r)| Some((name, r.err()?)))
            .inspect(|(name, e)| tracing::warn!(topic = %name, error = %e, "topic auto-creation failed"))
            .collect(),
        Err(e) => wanted.into_iter().map(|n| (n, e.for_each_of_many())).collect(),
    }
}

/// A topic's replication factor checked against the live brokers (one, until brokers
/// form a cluster).
pub(crate) fn check_replication_factor(_broker: &Broker, asked: i64) -> Result<(), Error> {
    let brokers = 1usize;
    if asked < 1 || asked > brokers as i64 {
        return Err(Error::InvalidReplicationFactor { asked, brokers });
    }
    Ok(())
}

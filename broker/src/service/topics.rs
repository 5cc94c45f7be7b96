//! Topics: create (with the broker's defaults, or only validated), delete, grow, change
//! configs, and Kafka's auto-creation on Metadata. Each topic succeeds or fails on its
//! own. Topic changes sync the metadata log, so they run on blocking threads.

use std::collections::BTreeMap;
use std::sync::Arc;

use runnel_protocol::ErrorCode;

use super::{Broker, Failure, Outcome};
use crate::cluster::controller::{ControllerCall, TopicCreate};
use crate::error::Error;
use crate::storage::config::TOPIC_CONFIG_KEYS;
use crate::storage::manager::check_legal_topic_name;
use crate::storage::{LogConfig, NewTopic, Topic};

/// A topic to create. -1 partitions (or replicas) means the broker's default, as
/// Kafka's (KIP-464); 0 replicas too.
#[derive(Debug, Clone, Default)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    pub configs: BTreeMap<String, String>,
}

/// Creates `specs` (or, with `validate_only`, checks them as a creation would and
/// creates nothing); one outcome per topic, in order. The controller places each
/// topic's replicas over the live brokers and commits all topics to the metadata log
/// together; the call returns once this broker has them.
pub async fn create_topics(broker: &Arc<Broker>, specs: Vec<TopicSpec>, validate_only: bool) -> Vec<Outcome<()>> {
    let cfg = broker.config();
    let creates: Vec<TopicCreate> = specs
        .into_iter()
        .map(|t| TopicCreate {
            partitions: match t.partitions {
                -1 => i64::from(cfg.num_partitions),
                n => i64::from(n),
            },
            replication_factor: match t.replication_factor {
                0 | -1 => i64::from(cfg.default_replication_factor),
                n => i64::from(n),
            },
            name: t.name,
            configs: t.configs,
        })
        .collect();
    if validate_only {
        return creates
            .iter()
            .map(|t| {
                check_replication_factor(broker, t.replication_factor)?;
                broker.storage.check_new_topic(&NewTopic {
                    name: &t.name,
                    id: None,
                    partitions: t.partitions,
                    overrides: &t.configs,
                })?;
                Ok(())
            })
            .map(|r: Result<(), Error>| r.map_err(Failure::from))
            .collect();
    }
    let count = creates.len();
    match broker
        .cluster
        .call_controller(ControllerCall::CreateTopics { topics: creates })
        .await
    {
        Ok(results) => results.into_iter().map(|r| r.map_err(Failure::from)).collect(),
        Err(r) => (0..count).map(|_| Err(Failure::from(r.clone()))).collect(),
    }
}

/// One change through the controller; its single outcome.
async fn controller_change(broker: &Broker, call: ControllerCall) -> Outcome<()> {
    match broker.cluster.call_controller(call).await {
        Ok(mut results) => results.pop().unwrap_or(Ok(())).map_err(Failure::from),
        Err(r) => Err(Failure::from(r)),
    }
}

/// Deletes each topic with its records, on every broker; one outcome per name, in
/// order.
pub async fn delete_topics(broker: &Arc<Broker>, names: &[String]) -> Vec<Outcome<()>> {
    let mut results = Vec::with_capacity(names.len());
    for name in names {
        let result = controller_change(broker, ControllerCall::DeleteTopic { name: name.clone() }).await;
        if result.is_ok() {
            // Its traffic series go too (a topic re-created later starts from zero).
            broker.metrics().remove_topic(name);
        }
        results.push(result);
    }
    results
}

/// Grows a topic to `count` partitions (or only checks that it could).
pub async fn create_partitions(broker: &Arc<Broker>, name: &str, count: i64, validate_only: bool) -> Outcome<()> {
    if validate_only {
        return broker
            .storage
            .check_partitions_increase(name, count)
            .map(|_| ())
            .map_err(Failure::from);
    }
    controller_change(
        broker,
        ControllerCall::CreatePartitions {
            name: name.to_owned(),
            count,
        },
    )
    .await
}

/// Changes a topic's configs: `change` turns its current overrides into the new ones,
/// which are validated and (unless `validate_only`) committed to the metadata log.
pub async fn alter_configs(
    broker: &Arc<Broker>,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Error> + Send + 'static,
) -> Outcome<()> {
    let storage = broker.storage.clone();
    let topic = storage
        .topic(name)
        .ok_or_else(|| Failure::from(Error::UnknownTopic(name.to_owned())))?;
    let overrides = change(&topic.overrides).map_err(Failure::from)?;
    LogConfig::with_overrides(&storage.config().log_defaults, &overrides).map_err(Failure::from)?;
    if validate_only {
        return Ok(());
    }
    controller_change(
        broker,
        ControllerCall::SetTopicConfigs {
            name: name.to_owned(),
            configs: overrides,
        },
    )
    .await
}

/// Where a topic config's value comes from, with Kafka's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigSource {
    TopicConfig = 1,
    StaticBrokerConfig = 4,
    DefaultConfig = 5,
}

/// Every config of `topic`: key, effective value, and where the value comes from — the
/// topic itself, the broker's topic defaults (`--topic-default`), or the built-in default.
pub fn topic_configs<'a>(
    topic: &'a Topic,
    broker_defaults: &'a LogConfig,
) -> impl Iterator<Item = (&'static str, String, ConfigSource)> + 'a {
    let built_in = LogConfig::default();
    TOPIC_CONFIG_KEYS.iter().map(move |key| {
        let value = topic.config.get(key).unwrap_or_default();
        let source = if topic.overrides.contains_key(*key) {
            ConfigSource::TopicConfig
        } else if broker_defaults.get(key) != built_in.get(key) {
            ConfigSource::StaticBrokerConfig
        } else {
            ConfigSource::DefaultConfig
        };
        (*key, value, source)
    })
}

/// Why a topic a Metadata request named is not there: an illegal name is
/// INVALID_TOPIC_EXCEPTION (a client must not wait for it), a failed auto-creation its
/// own error, anything else UNKNOWN_TOPIC_OR_PARTITION.
pub fn missing_topic(name: &str, not_created: Option<&Failure>) -> Failure {
    if let Err(e) = check_legal_topic_name(name) {
        return Failure::from(e);
    }
    match not_created {
        // Created by someone else meanwhile, not yet visible: ask again.
        Some(f) if f.code == ErrorCode::TopicAlreadyExists => Failure::new(
            ErrorCode::LeaderNotAvailable,
            format!("topic {name:?} is being created"),
        ),
        Some(f) => f.clone(),
        None => Failure::new(ErrorCode::UnknownTopicOrPartition, format!("unknown topic {name:?}")),
    }
}

/// Creates the topics among `names` that do not exist, as Kafka does for a Metadata
/// request that allows it when `auto_create_topics_enable` is on: `num_partitions`
/// partitions, `default_replication_factor` replicas, the broker's topic defaults. Names
/// that are illegal or reserved are never created. Returns why each name that should
/// have been created was not.
pub async fn auto_create(broker: &Arc<Broker>, names: &[String]) -> BTreeMap<String, Failure> {
    let cfg = broker.config();
    let wanted: Vec<String> = names
        .iter()
        .filter(|n| broker.storage.topic(n).is_none() && check_legal_topic_name(n).is_ok())
        .cloned()
        .collect();
    if !cfg.auto_create_topics_enable || wanted.is_empty() {
        return BTreeMap::new();
    }
    let specs = wanted
        .iter()
        .map(|name| TopicSpec {
            name: name.clone(),
            partitions: -1,
            replication_factor: -1,
            configs: BTreeMap::new(),
        })
        .collect();
    wanted
        .into_iter()
        .zip(create_topics(broker, specs, false).await)
        .filter_map(|(name, r)| Some((name, r.err()?)))
        .inspect(|(name, f)| tracing::warn!(topic = %name, error = %f.message, "topic auto-creation failed"))
        .collect()
}

/// A topic's replication factor checked against the live brokers.
pub fn check_replication_factor(broker: &Broker, asked: i64) -> Result<(), Error> {
    let brokers = broker.cluster.image().live_brokers().len().max(1);
    if asked < 1 || asked > brokers as i64 {
        return Err(Error::InvalidReplicationFactor { asked, brokers });
    }
    Ok(())
}

/// The live topic `name`.
pub fn topic(broker: &Broker, name: &str) -> Option<Arc<Topic>> {
    broker.storage.topic(name)
}

/// Every live topic.
pub fn all(broker: &Broker) -> Vec<Arc<Topic>> {
    broker.storage.topics()
}

/// The live topic with this id.
pub fn by_id(broker: &Broker, id: &str) -> Option<Arc<Topic>> {
    broker.storage.topics().into_iter().find(|t| t.id == id)
}

/// The broker's topic defaults (`--topic-default` over the built-in ones).
pub fn log_defaults(broker: &Broker) -> &LogConfig {
    &broker.storage.config().log_defaults
}

/// Where the broker keeps its logs.
pub fn data_dir(broker: &Broker) -> &std::path::Path {
    &broker.storage.config().data_dir
}

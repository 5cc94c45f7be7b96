//! Topics: create (with the broker's defaults, or only validated), delete, grow, change
//! configs, and Kafka's auto-creation on Metadata. Each topic succeeds or fails on its
//! own. Topic changes sync the metadata log, so they run on blocking threads.

use std::collections::BTreeMap;
use std::sync::Arc;

use runnel_protocol::ErrorCode;

use super::{blocking, Broker, Failure, Outcome};
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
/// creates nothing); one outcome per topic, in order. All topics' records share one
/// metadata sync.
pub async fn create_topics(broker: &Arc<Broker>, specs: Vec<TopicSpec>, validate_only: bool) -> Vec<Outcome<()>> {
    let cfg = broker.config();
    let partitions: Vec<i64> = specs
        .iter()
        .map(|t| match t.partitions {
            -1 => i64::from(cfg.num_partitions),
            n => i64::from(n),
        })
        .collect();
    let replicas: Vec<Result<(), Error>> = specs
        .iter()
        .map(|t| match t.replication_factor {
            0 | -1 => check_replication_factor(broker, i64::from(cfg.default_replication_factor)),
            n => check_replication_factor(broker, i64::from(n)),
        })
        .collect();
    let storage = broker.storage.clone();
    let count = specs.len();
    let results = blocking(move || {
        let mut results: Vec<Option<Result<(), Error>>> = replicas.into_iter().map(|r| r.err().map(Err)).collect();
        let new: Vec<(usize, NewTopic<'_>)> = specs
            .iter()
            .enumerate()
            .filter(|(i, _)| results[*i].is_none())
            .map(|(i, t)| {
                let topic = NewTopic {
                    name: &t.name,
                    partitions: partitions[i],
                    overrides: &t.configs,
                };
                (i, topic)
            })
            .collect();
        if validate_only {
            for (i, t) in &new {
                results[*i] = Some(storage.check_new_topic(t).map(|_| ()));
            }
        } else {
            let topics: Vec<NewTopic<'_>> = new.iter().map(|(_, t)| *t).collect();
            for ((i, _), r) in new.iter().zip(storage.create_topics(&topics)) {
                results[*i] = Some(r.map(|_| ()));
            }
        }
        Ok(results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect::<Vec<_>>())
    })
    .await;
    match results {
        Ok(results) => results.into_iter().map(|r| r.map_err(Failure::from)).collect(),
        Err(e) => (0..count).map(|_| Err(Failure::from(&e))).collect(),
    }
}

/// Deletes each topic with its records; one outcome per name, in order.
pub async fn delete_topics(broker: &Arc<Broker>, names: &[String]) -> Vec<Outcome<()>> {
    let mut results = Vec::with_capacity(names.len());
    for name in names {
        let storage = broker.storage.clone();
        let n = name.clone();
        let result = blocking(move || storage.delete_topic(&n)).await;
        if result.is_ok() {
            // Its traffic series go too (a topic re-created later starts from zero).
            broker.metrics().remove_topic(name);
        }
        results.push(result.map_err(Failure::from));
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
    let storage = broker.storage.clone();
    let topic = name.to_owned();
    blocking(move || storage.create_partitions(&topic, count))
        .await
        .map(|_| ())
        .map_err(Failure::from)
}

/// Changes a topic's configs: `change` turns its current overrides into the new ones,
/// which are validated and (unless `validate_only`) stored.
pub async fn alter_configs(
    broker: &Arc<Broker>,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Error> + Send + 'static,
) -> Outcome<()> {
    let storage = broker.storage.clone();
    let name = name.to_owned();
    blocking(move || {
        let topic = storage.topic(&name).ok_or_else(|| Error::UnknownTopic(name.clone()))?;
        let overrides = change(&topic.overrides)?;
        LogConfig::with_overrides(&storage.config().log_defaults, &overrides)?;
        if !validate_only {
            storage.alter_topic_config(&name, &overrides)?;
        }
        Ok(())
    })
    .await
    .map_err(Failure::from)
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

/// A topic's replication factor checked against the live brokers (one, until brokers
/// form a cluster).
pub fn check_replication_factor(_broker: &Broker, asked: i64) -> Result<(), Error> {
    let brokers = 1usize;
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

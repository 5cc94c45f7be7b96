//! DescribeConfigs: a topic's configs (set on the topic, set as a broker default, or
//! built in — each with its source, and on request its synonyms and documentation), and
//! the broker's own settings as read-only static configs.

use std::ops::RangeInclusive;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use runnel_protocol::ErrorCode;

use super::{kafka_code, str_bytes};
use crate::service::topics::{self, topic_configs, ConfigSource};
use crate::service::Broker;
use crate::storage::config::{key_info, ConfigKind, LogConfig, TOPIC_CONFIG_KEYS};

pub const VERSIONS: RangeInclusive<i16> = 1..=4;

/// Kafka's config resource types.
pub const TOPIC: i8 = 2;
pub const BROKER: i8 = 4;

/// Kafka's config types (DescribeConfigs v3+).
fn config_type(kind: ConfigKind) -> i8 {
    match kind {
        ConfigKind::Boolean => 1,
        ConfigKind::String => 2,
        ConfigKind::Int => 3,
        ConfigKind::Long => 5,
        ConfigKind::List => 7,
    }
}

pub fn handle(broker: &Broker, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = req
        .resources
        .iter()
        .map(|res| {
            let base = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let configs = match res.resource_type {
                TOPIC => describe_topic(broker, &req, res),
                BROKER => describe_broker(broker, res),
                other => Err((
                    ErrorCode::InvalidRequest,
                    format!("resource type {other} is not supported (topics and brokers are)"),
                )),
            };
            match configs {
                Ok(configs) => base.with_configs(configs),
                Err((code, message)) => base
                    .with_error_code(kafka_code(code.code()))
                    .with_error_message(Some(str_bytes(&message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

type Described = Result<Vec<DescribeConfigsResourceResult>, (ErrorCode, String)>;

/// Whether the request asks for `key`: a null or empty list of keys means all of them.
fn wanted(res: &DescribeConfigsResource, key: &str) -> bool {
    res.configuration_keys
        .as_ref()
        .filter(|keys| !keys.is_empty())
        .is_none_or(|keys| keys.iter().any(|w| w.as_str() == key))
}

fn describe_topic(broker: &Broker, req: &DescribeConfigsRequest, res: &DescribeConfigsResource) -> Described {
    let name = res.resource_name.as_str();
    let topic = broker
        .storage
        .topic(name)
        .ok_or_else(|| (ErrorCode::UnknownTopicOrPartition, format!("unknown topic {name:?}")))?;
    let broker_defaults = topics::log_defaults(broker);
    let built_in = LogConfig::default();
    Ok(topic_configs(&topic, broker_defaults)
        .filter(|(key, _, _)| wanted(res, key))
        .map(|(key, value, source)| {
            let info = key_info(key).expect("every topic config key has info");
            let mut entry = DescribeConfigsResourceResult::default()
                .with_name(str_bytes(key))
                .with_value(Some(str_bytes(&value)))
                .with_config_source(source as i8)
                .with_config_type(config_type(info.kind));
            if req.include_synonyms {
                // Most specific first, as Kafka lists them.
                let mut synonyms = Vec::new();
                if let Some(v) = topic.overrides.get(key) {
                    synonyms.push(synonym(key, v, ConfigSource::TopicConfig));
                }
                let broker_value = broker_defaults.get(key).unwrap_or_default();
                if Some(&broker_value) != built_in.get(key).as_ref() {
                    synonyms.push(synonym(
                        info.broker_name,
                        &broker_value,
                        ConfigSource::StaticBrokerConfig,
                    ));
                }
                let default = built_in.get(key).unwrap_or_default();
                synonyms.push(synonym(info.broker_name, &default, ConfigSource::DefaultConfig));
                entry = entry.with_synonyms(synonyms);
            }
            if req.include_documentation {
                entry = entry.with_documentation(Some(str_bytes(info.doc)));
            }
            entry
        })
        .collect())
}

fn synonym(name: &str, value: &str, source: ConfigSource) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(value)))
        .with_source(source as i8)
}

/// The broker's settings under Kafka's names, read-only (they are set at start).
fn describe_broker(broker: &Broker, res: &DescribeConfigsResource) -> Described {
    let name = res.resource_name.as_str();
    if !name.is_empty() && name != broker.node_id.to_string() {
        return Err((
            ErrorCode::InvalidRequest,
            format!("no broker {name:?}: this is broker {}", broker.node_id),
        ));
    }
    let cfg = &broker.config();
    let log_defaults = topics::log_defaults(broker);
    let mut settings: Vec<(&str, String)> = vec![
        ("broker.id", broker.node_id.to_string()),
        ("log.dirs", topics::data_dir(broker).display().to_string()),
        ("auto.create.topics.enable", cfg.auto_create_topics_enable.to_string()),
        ("num.partitions", cfg.num_partitions.to_string()),
        ("default.replication.factor", cfg.default_replication_factor.to_string()),
        ("socket.request.max.bytes", cfg.max_request_frame_bytes.to_string()),
        ("max.connections", cfg.max_connections.to_string()),
        ("connections.max.idle.ms", cfg.idle_timeout_ms.to_string()),
        ("fetch.max.bytes", cfg.fetch_max_bytes.to_string()),
        (
            "group.min.session.timeout.ms",
            cfg.group.min_session_timeout_ms.to_string(),
        ),
        (
            "group.max.session.timeout.ms",
            cfg.group.max_session_timeout_ms.to_string(),
        ),
        (
            "offsets.retention.minutes",
            (cfg.group.offsets_retention_ms / 60_000).to_string(),
        ),
    ];
    for key in TOPIC_CONFIG_KEYS {
        let info = key_info(key).expect("every topic config key has info");
        settings.push((info.broker_name, log_defaults.get(key).unwrap_or_default()));
    }
    Ok(settings
        .into_iter()
        .filter(|(key, _)| wanted(res, key))
        .map(|(key, value)| {
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes(key))
                .with_value(Some(str_bytes(&value)))
                .with_read_only(true)
                .with_config_source(ConfigSource::StaticBrokerConfig as i8)
        })
        .collect())
}

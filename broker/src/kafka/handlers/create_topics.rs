//! CreateTopics: through `service::topics` (the native listener's validation, configs
//! and errors), with
//! Kafka's defaults (KIP-464: -1 partitions or replicas means the broker's), explicit
//! replica assignments naming this broker, `validate_only`, and — v5+ — each created
//! topic's partitions, replicas and configs in the response.

use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use runnel_protocol::ErrorCode;

use super::{kafka_code, str_bytes};
use crate::service::topics::{self, topic_configs, TopicSpec};
use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 2..=7;

/// What a topic asks for, once its replica assignment (if any) is checked: partitions
/// and replication factor for the native request, or the error that refuses it.
fn shape(broker: &Broker, t: &CreatableTopic) -> Result<(i32, i32), (ErrorCode, String)> {
    if t.assignments.is_empty() {
        return Ok((t.num_partitions, i32::from(t.replication_factor)));
    }
    if t.num_partitions != -1 || t.replication_factor != -1 {
        return Err((
            ErrorCode::InvalidRequest,
            "give either num_partitions and replication_factor or replica assignments, not both".into(),
        ));
    }
    for (i, a) in t.assignments.iter().enumerate() {
        if a.partition_index != i as i32 {
            return Err((
                ErrorCode::InvalidReplicaAssignment,
                format!(
                    "assignments must list partitions 0 to {} in order",
                    t.assignments.len() - 1
                ),
            ));
        }
        if a.broker_ids.len() != 1 || a.broker_ids[0].0 != broker.node_id {
            return Err((
                ErrorCode::InvalidReplicaAssignment,
                format!(
                    "partition {i} is assigned to brokers {:?}; this cluster has broker {} only",
                    a.broker_ids.iter().map(|b| b.0).collect::<Vec<_>>(),
                    broker.node_id
                ),
            ));
        }
    }
    Ok((t.assignments.len() as i32, 1))
}

pub async fn handle(broker: &Arc<Broker>, version: i16, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let shapes: Vec<_> = req.topics.iter().map(|t| shape(broker, t)).collect();
    let asked: Vec<&CreatableTopic> = req
        .topics
        .iter()
        .zip(&shapes)
        .filter(|(_, s)| s.is_ok())
        .map(|(t, _)| t)
        .collect();
    let specs = asked
        .iter()
        .zip(shapes.iter().flatten())
        .map(|(t, (partitions, replication_factor))| TopicSpec {
            name: t.name.0.to_string(),
            partitions: *partitions,
            replication_factor: *replication_factor,
            configs: t
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect(),
        })
        .collect();
    let outcomes = topics::create_topics(broker, specs, req.validate_only).await;
    let mut created = outcomes.into_iter();
    let topics = req
        .topics
        .iter()
        .zip(shapes)
        .map(|(t, shape)| {
            let base = CreatableTopicResult::default().with_name(t.name.clone());
            let (code, message) = match shape {
                Err(refused) => refused,
                Ok(_) => match created.next().expect("one result per topic asked") {
                    Ok(()) => (ErrorCode::None, String::new()),
                    Err(f) => (f.code, f.message),
                },
            };
            if code != ErrorCode::None {
                return base
                    .with_error_code(kafka_code(code.code()))
                    .with_error_message(Some(str_bytes(&message)))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1);
            }
            result(broker, version, t, req.validate_only, base)
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

/// A successful topic's result: its id, partitions and replicas, and (v5+) its configs.
fn result(
    broker: &Broker,
    version: i16,
    t: &CreatableTopic,
    validate_only: bool,
    base: CreatableTopicResult,
) -> CreatableTopicResult {
    let Some(topic) = topics::topic(broker, &t.name.0).filter(|_| !validate_only) else {
        // Validated only: what it would be.
        let partitions = match t.num_partitions {
            -1 if t.assignments.is_empty() => broker.config().num_partitions as i32,
            -1 => t.assignments.len() as i32,
            n => n,
        };
        return base
            .with_num_partitions(partitions)
            .with_replication_factor(i16::try_from(broker.config().default_replication_factor).unwrap_or(i16::MAX));
    };
    let base = base
        .with_topic_id(uuid::Uuid::parse_str(&topic.id).unwrap_or_default())
        .with_num_partitions(topic.partitions.len() as i32)
        .with_replication_factor(1);
    if version < 5 {
        return base;
    }
    let configs = topic_configs(&topic, topics::log_defaults(broker))
        .map(|(key, value, source)| {
            CreatableTopicConfigs::default()
                .with_name(str_bytes(key))
                .with_value(Some(str_bytes(&value)))
                .with_read_only(false)
                .with_config_source(source as i8)
                .with_is_sensitive(false)
        })
        .collect();
    base.with_configs(Some(configs))
}

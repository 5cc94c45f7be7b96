//! CreateTopics: through the native handler (same validation, configs and errors).

use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use runnel_protocol::messages as native;

use super::{kafka_code, str_bytes};
use crate::server::{handlers, Broker};

pub const VERSIONS: RangeInclusive<i16> = 2..=7;

pub async fn handle(broker: &Arc<Broker>, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| native::NewTopic {
            name: t.name.0.to_string(),
            // -1: the broker's default, as in Kafka.
            partitions: t.num_partitions,
            configs: t
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect(),
        })
        .collect();
    let resp = handlers::create_topics::handle(broker, native::CreateTopicsRequest { topics }).await;
    let topics = resp
        .topics
        .into_iter()
        .zip(&req.topics)
        .map(|(r, t)| {
            let partitions = broker.storage.topic(&r.name).map_or(-1, |t| t.partitions.len() as i32);
            CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_error_code(kafka_code(r.error_code))
                .with_error_message((!r.error_message.is_empty()).then(|| str_bytes(&r.error_message)))
                .with_num_partitions(partitions)
                .with_replication_factor(1)
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

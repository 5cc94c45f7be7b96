//! DeleteTopics, by name (v6's topic ids are not kept: a topic named only by id gets
//! UNKNOWN_TOPIC_ID), through `service::topics`.

use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use runnel_protocol::ErrorCode;

use super::{kafka_code, str_bytes};
use crate::service::{topics, Broker};

pub const VERSIONS: RangeInclusive<i16> = 1..=6;

/// Kafka's UNKNOWN_TOPIC_ID (topic ids exist only on the Kafka side of the protocol).
const UNKNOWN_TOPIC_ID: i32 = 100;

pub async fn handle(broker: &Arc<Broker>, version: i16, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    // v1-5 name topics in `topic_names`, v6 in `topics`.
    let named: Vec<Option<_>> = if version >= 6 {
        req.topics.iter().map(|t| t.name.clone()).collect()
    } else {
        req.topic_names.iter().cloned().map(Some).collect()
    };
    let names: Vec<String> = named.iter().flatten().map(|n| n.0.to_string()).collect();
    let mut results = topics::delete_topics(broker, &names).await.into_iter();
    let responses = named
        .into_iter()
        .map(|name| {
            let (code, message) = match &name {
                None => (
                    UNKNOWN_TOPIC_ID,
                    "topic ids are not supported; name the topic".to_owned(),
                ),
                Some(_) => match results.next() {
                    Some(Ok(())) => (0, String::new()),
                    Some(Err(f)) => (f.code.code(), f.message),
                    None => (ErrorCode::UnknownServerError.code(), String::new()),
                },
            };
            let mut r = DeletableTopicResult::default()
                .with_name(name)
                .with_error_code(kafka_code(code));
            if version >= 5 && !message.is_empty() {
                r = r.with_error_message(Some(str_bytes(&message)));
            }
            r
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

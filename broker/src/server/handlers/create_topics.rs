//! CreateTopics: each topic is created (or fails) on its own.

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, TopicResult};

use super::{blocking, code_and_message};
use crate::server::Broker;
use crate::storage::NewTopic;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let storage = broker.storage.clone();
    let names: Vec<String> = req.topics.iter().map(|t| t.name.clone()).collect();
    // All topics in one blocking call: their records share one metadata sync.
    let results = blocking(move || {
        let new: Vec<NewTopic<'_>> = req
            .topics
            .iter()
            .map(|t| NewTopic {
                name: &t.name,
                partitions: t.partitions as i64,
                overrides: &t.configs,
            })
            .collect();
        Ok(storage.create_topics(&new))
    })
    .await;
    let topics = names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let outcome = match &results {
                Ok(r) => r[i].as_ref().err().map(code_and_message),
                Err(e) => Some(code_and_message(e)),
            };
            let (error_code, error_message) = outcome.unwrap_or_default();
            TopicResult {
                name,
                error_code,
                error_message,
            }
        })
        .collect();
    CreateTopicsResponse {
        topics,
        ..Default::default()
    }
}

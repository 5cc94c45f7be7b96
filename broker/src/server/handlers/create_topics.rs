//! CreateTopics: each topic is created (or fails) on its own.

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, TopicResult};

use super::{blocking, code_and_message};
use crate::server::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let storage = broker.storage.clone();
        let name = t.name.clone();
        let result = blocking(move || storage.create_topic(&t.name, t.partitions as i64, &t.configs)).await;
        let (error_code, error_message) = result.err().as_ref().map(code_and_message).unwrap_or_default();
        topics.push(TopicResult {
            name,
            error_code,
            error_message,
        });
    }
    CreateTopicsResponse {
        topics,
        ..Default::default()
    }
}

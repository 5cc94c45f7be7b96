//! DeleteTopics: each topic is deleted (or fails) on its own.

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicResult};

use super::{blocking, code_and_message};
use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for name in req.topics {
        let storage = broker.storage.clone();
        let n = name.clone();
        let result = blocking(move || storage.delete_topic(&n)).await;
        if result.is_ok() {
            // Its traffic series go too (a topic re-created later starts from zero).
            broker.metrics().remove_topic(&name);
        }
        let (error_code, error_message) = result.err().as_ref().map(code_and_message).unwrap_or_default();
        topics.push(TopicResult {
            name,
            error_code,
            error_message,
        });
    }
    DeleteTopicsResponse {
        topics,
        ..Default::default()
    }
}

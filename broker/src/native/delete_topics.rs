//! DeleteTopics: `service::topics::delete_topics`, each topic deleted (or not) on its own.

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicResult};

use crate::service::topics;
use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let outcomes = topics::delete_topics(broker, &req.topics).await;
    DeleteTopicsResponse {
        topics: req
            .topics
            .into_iter()
            .zip(outcomes)
            .map(|(name, r)| {
                let (error_code, error_message) = r.err().map(|f| (f.code.code(), f.message)).unwrap_or_default();
                TopicResult {
                    name,
                    error_code,
                    error_message,
                }
            })
            .collect(),
        ..Default::default()
    }
}

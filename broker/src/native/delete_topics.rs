//! DeleteTopics: `service::topics::delete_topics`, each topic deleted (or not) on its own.

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};

use crate::service::topics;
use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let outcomes = topics::delete_topics(broker, &req.topics).await;
    DeleteTopicsResponse {
        topics: super::topic_results(req.topics, outcomes),
        ..Default::default()
    }
}

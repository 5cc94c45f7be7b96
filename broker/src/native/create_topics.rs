//! CreateTopics: `service::topics::create_topics` — each topic created (or refused) on
//! its own; `validate_only` checks them as a creation would and creates nothing.

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use crate::service::topics::{self, TopicSpec};
use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let names: Vec<String> = req.topics.iter().map(|t| t.name.clone()).collect();
    let specs = req
        .topics
        .into_iter()
        .map(|t| TopicSpec {
            name: t.name,
            partitions: t.partitions,
            replication_factor: t.replication_factor,
            configs: t.configs.into_iter().collect(),
        })
        .collect();
    let outcomes = topics::create_topics(broker, specs, req.validate_only).await;
    CreateTopicsResponse {
        topics: super::topic_results(names, outcomes),
        ..Default::default()
    }
}

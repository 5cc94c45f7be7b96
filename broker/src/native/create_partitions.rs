//! CreatePartitions: grows each topic to its new partition count (never shrinks), through
//! `service::topics::create_partitions`.

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, TopicResult};

use crate::service::topics;
use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let outcome = topics::create_partitions(broker, &t.topic, t.count as i64, false).await;
        let (error_code, error_message) = super::error_fields(outcome);
        results.push(TopicResult {
            name: t.topic,
            error_code,
            error_message,
        });
    }
    CreatePartitionsResponse {
        topics: results,
        ..Default::default()
    }
}

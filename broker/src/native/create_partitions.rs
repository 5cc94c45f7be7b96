//! CreatePartitions: grows each topic to its new partition count (never shrinks).

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, TopicResult};

use super::{blocking, code_and_message};
use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let storage = broker.storage.clone();
        let name = t.topic.clone();
        let result = blocking(move || storage.create_partitions(&name, t.count as i64)).await;
        let (error_code, error_message) = result.err().as_ref().map(code_and_message).unwrap_or_default();
        topics.push(TopicResult {
            name: t.topic,
            error_code,
            error_message,
        });
    }
    CreatePartitionsResponse {
        topics,
        ..Default::default()
    }
}

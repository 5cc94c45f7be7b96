//! CreatePartitions: grows topics (partitions are only ever added). With one broker a
//! replica assignment, if given, may only name this broker; `validate_only` checks
//! without changing anything.

use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::{kafka_code, str_bytes};
use crate::service::{topics, Broker};

pub const VERSIONS: RangeInclusive<i16> = 0..=3;

/// Kafka's INVALID_REPLICA_ASSIGNMENT.
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;

pub async fn handle(broker: &Arc<Broker>, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let foreign = t
            .assignments
            .iter()
            .flatten()
            .flat_map(|a| a.broker_ids.iter())
            .find(|b| b.0 != broker.node_id);
        let outcome: Result<(), (i16, String)> = if let Some(b) = foreign {
            Err((
                INVALID_REPLICA_ASSIGNMENT,
                format!(
                    "broker {} does not exist; this cluster is broker {}",
                    b.0, broker.node_id
                ),
            ))
        } else {
            topics::create_partitions(broker, &name, t.count as i64, req.validate_only)
                .await
                .map_err(|f| (kafka_code(f.code.code()), f.message))
        };
        let (code, message) = match outcome {
            Ok(()) => (0, None),
            Err((code, message)) => (code, Some(str_bytes(&message))),
        };
        results.push(
            CreatePartitionsTopicResult::default()
                .with_name(t.name)
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    CreatePartitionsResponse::default().with_results(results)
}

//! DeleteRecords: moves partitions' log start offsets forward, through
//! `service::records` (the native listener's checks and errors); -1 means the end of the log, as in Kafka.

use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::kafka_code;
use crate::service::{records, Broker};

pub const VERSIONS: RangeInclusive<i16> = 0..=2;

pub async fn handle(broker: &Arc<Broker>, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let asked = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| (p.partition_index.max(0) as u32, p.offset))
                .collect();
            (t.name.0.to_string(), partitions)
        })
        .collect();
    let outcomes = records::delete_records(broker, asked).await;
    let topics = req
        .topics
        .iter()
        .zip(outcomes)
        .map(|(t, outcomes)| {
            let partitions = t
                .partitions
                .iter()
                .zip(outcomes)
                .map(|(p, r)| {
                    let (code, low_watermark) = match r {
                        Ok(start) => (0, start),
                        Err(f) => (f.code.code(), -1),
                    };
                    DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(low_watermark)
                        .with_error_code(kafka_code(code))
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

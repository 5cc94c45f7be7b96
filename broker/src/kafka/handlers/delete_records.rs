//! DeleteRecords: moves partitions' log start offsets forward, through the native
//! handler (same checks and errors); -1 means the end of the log, as in Kafka.

use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use runnel_protocol::messages as native;

use super::kafka_code;
use {crate::native as handlers, crate::service::Broker};

pub const VERSIONS: RangeInclusive<i16> = 0..=2;

pub async fn handle(broker: &Arc<Broker>, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| native::DeleteRecordsTopic {
            name: t.name.0.to_string(),
            partitions: t
                .partitions
                .iter()
                .map(|p| native::DeleteRecordsPartition {
                    partition: p.partition_index.max(0) as u32,
                    offset: p.offset,
                })
                .collect(),
        })
        .collect();
    let resp = handlers::delete_records::handle(broker, native::DeleteRecordsRequest { topics }).await;
    let mut results = resp.topics.into_iter();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            // A request-level failure (the broker stopping) answers every partition.
            let partitions = match results.next() {
                Some(r) => r
                    .partitions
                    .iter()
                    .map(|p| (p.partition as i32, p.low_watermark, p.error_code))
                    .collect(),
                None => t
                    .partitions
                    .iter()
                    .map(|p| (p.partition_index, -1, resp.error_code))
                    .collect::<Vec<_>>(),
            };
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(partition, low_watermark, code)| {
                            DeleteRecordsPartitionResult::default()
                                .with_partition_index(partition)
                                .with_low_watermark(low_watermark)
                                .with_error_code(kafka_code(code))
                        })
                        .collect(),
                )
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

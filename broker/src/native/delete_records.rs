//! DeleteRecords: moves partitions' log start offsets forward (Kafka's DeleteRecords);
//! each partition succeeds or fails on its own. Shared by the Kafka listener.

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{
    DeleteRecordsPartitionResult, DeleteRecordsRequest, DeleteRecordsResponse, DeleteRecordsTopicResult,
};

use super::{blocking, code_and_message};
use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

/// An offset of -1 means the partition's end (everything is deleted), as in Kafka.
pub const TO_END: i64 = -1;

pub async fn handle(broker: &Arc<Broker>, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let storage = broker.storage.clone();
    // One blocking call for the whole request: each partition writes its new start durably.
    let topics = blocking(move || {
        Ok(req
            .topics
            .into_iter()
            .map(|t| DeleteRecordsTopicResult {
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| {
                        let moved = storage.partition(&t.name, p.partition).and_then(|log| match p.offset {
                            TO_END => log.delete_records_before(log.end_offset()),
                            o if o < 0 => Err(crate::Error::OffsetOutOfRange {
                                offset: 0,
                                start: log.start_offset(),
                                end: log.end_offset(),
                            }),
                            o => log.delete_records_before(o as u64),
                        });
                        let mut r = DeleteRecordsPartitionResult {
                            partition: p.partition,
                            low_watermark: -1,
                            ..Default::default()
                        };
                        match moved {
                            Ok(start) => r.low_watermark = start as i64,
                            Err(e) => (r.error_code, r.error_message) = code_and_message(&e),
                        }
                        r
                    })
                    .collect(),
                name: t.name,
            })
            .collect())
    })
    .await;
    match topics {
        Ok(topics) => DeleteRecordsResponse {
            topics,
            ..Default::default()
        },
        Err(e) => {
            let (error_code, error_message) = code_and_message(&e);
            DeleteRecordsResponse {
                error_code,
                error_message,
                ..Default::default()
            }
        }
    }
}

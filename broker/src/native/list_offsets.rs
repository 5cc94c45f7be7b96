//! ListOffsets: earliest (-2), latest (-1), the record with the largest timestamp (-3), or
//! the first offset at or after a timestamp.

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{
    ListOffsetsPartitionResult, ListOffsetsRequest, ListOffsetsResponse, ListOffsetsTopicResult,
};

use runnel_protocol::ErrorCode;

use super::{blocking, code_and_message};
use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const LATEST_TIMESTAMP: i64 = -1;
/// KIP-734 (ListOffsets v7): the record with the largest timestamp.
pub const MAX_TIMESTAMP: i64 = -3;

pub async fn handle(broker: &Arc<Broker>, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let mut r = ListOffsetsPartitionResult {
                partition: p.partition,
                offset: -1,
                timestamp: -1,
                ..Default::default()
            };
            match broker.storage.partition(&t.name, p.partition) {
                Err(e) => (r.error_code, r.error_message) = code_and_message(&e),
                Ok(log) => match p.timestamp {
                    EARLIEST_TIMESTAMP => r.offset = log.start_offset() as i64,
                    LATEST_TIMESTAMP => r.offset = log.end_offset() as i64,
                    // KIP-734: the record with the largest timestamp (the first of them).
                    MAX_TIMESTAMP => {
                        let max = log.max_timestamp();
                        if max >= 0 {
                            match blocking(move || log.offset_for_timestamp(max)).await {
                                Ok(Some((offset, timestamp))) => {
                                    r.offset = offset as i64;
                                    r.timestamp = timestamp;
                                }
                                Ok(None) => {}
                                Err(e) => (r.error_code, r.error_message) = code_and_message(&e),
                            }
                        }
                    }
                    ts if ts < 0 => {
                        r.error_code = ErrorCode::InvalidRequest.code();
                        r.error_message =
                            format!("timestamp {ts}: -1 (latest), -2 (earliest), -3 (max timestamp) or a time");
                    }
                    ts => {
                        // Reads a batch from disk (page cache, usually): off the runtime.
                        match blocking(move || log.offset_for_timestamp(ts)).await {
                            Ok(Some((offset, timestamp))) => {
                                r.offset = offset as i64;
                                r.timestamp = timestamp;
                            }
                            Ok(None) => {}
                            Err(e) => (r.error_code, r.error_message) = code_and_message(&e),
                        }
                    }
                },
            }
            partitions.push(r);
        }
        topics.push(ListOffsetsTopicResult {
            name: t.name,
            partitions,
        });
    }
    ListOffsetsResponse {
        topics,
        ..Default::default()
    }
}

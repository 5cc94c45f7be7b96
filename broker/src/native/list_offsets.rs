//! ListOffsets: earliest (-2), latest (-1), the record with the largest timestamp (-3), or
//! the first offset at or after a timestamp (`service::records::list_offset`).

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{
    ListOffsetsPartitionResult, ListOffsetsRequest, ListOffsetsResponse, ListOffsetsTopicResult,
};

use crate::service::records::{self, OffsetSpec};
use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

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
            let found = match OffsetSpec::from_timestamp(p.timestamp) {
                Ok(spec) => records::list_offset(broker, &t.name, p.partition, spec).await,
                Err(f) => Err(f),
            };
            match found {
                Ok(f) => (r.offset, r.timestamp) = (f.offset, f.timestamp),
                Err(f) => (r.error_code, r.error_message) = (f.code.code(), f.message),
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

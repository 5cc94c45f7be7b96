//! DeleteRecords: moves partitions' log start offsets forward (`service::records`); each
//! partition succeeds or fails on its own.

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{
    DeleteRecordsPartitionResult, DeleteRecordsRequest, DeleteRecordsResponse, DeleteRecordsTopicResult,
};

use crate::service::{records, Broker};

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let asked: Vec<(String, Vec<(u32, i64)>)> = req
        .topics
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.partitions.iter().map(|p| (p.partition, p.offset)).collect(),
            )
        })
        .collect();
    let outcomes = records::delete_records(broker, asked).await;
    DeleteRecordsResponse {
        topics: req
            .topics
            .into_iter()
            .zip(outcomes)
            .map(|(t, outcomes)| DeleteRecordsTopicResult {
                partitions: t
                    .partitions
                    .iter()
                    .zip(outcomes)
                    .map(|(p, r)| {
                        let mut out = DeleteRecordsPartitionResult {
                            partition: p.partition,
                            low_watermark: -1,
                            ..Default::default()
                        };
                        match r {
                            Ok(start) => out.low_watermark = start,
                            Err(f) => (out.error_code, out.error_message) = (f.code.code(), f.message),
                        }
                        out
                    })
                    .collect(),
                name: t.name,
            })
            .collect(),
        ..Default::default()
    }
}

//! Fetch: the service's long-poll fetch (`service::fetch`); the records of every
//! partition follow the response body as the frame's trailer, sent with `sendfile`.

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{FetchPartitionResult, FetchRequest, FetchResponse, FetchTopicResult};

use crate::service::fetch::{self, Fetch, FetchPartition, FetchTopic};
use crate::service::Broker;
use crate::storage::FileRegion;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: FetchRequest) -> (FetchResponse, Vec<FileRegion>) {
    let fetch = Fetch {
        max_wait_ms: req.max_wait_ms,
        min_bytes: req.min_bytes,
        max_bytes: req.max_bytes,
        topics: req
            .topics
            .into_iter()
            .map(|t| FetchTopic {
                name: t.name,
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| FetchPartition {
                        partition: p.partition,
                        offset: p.fetch_offset,
                        max_bytes: p.max_bytes,
                        current_leader_epoch: p.current_leader_epoch,
                    })
                    .collect(),
            })
            .collect(),
        replica_id: req.replica_id,
    };
    let reads = fetch::fetch(broker, &fetch).await;
    let mut regions = Vec::new();
    let topics = fetch
        .topics
        .into_iter()
        .zip(reads)
        .map(|(t, reads)| FetchTopicResult {
            name: t.name,
            partitions: reads
                .into_iter()
                .map(|r| {
                    let mut p = FetchPartitionResult {
                        partition: r.partition,
                        high_watermark: r.high_watermark,
                        log_start_offset: r.log_start_offset,
                        ..Default::default()
                    };
                    if let Some(f) = r.failure {
                        (p.error_code, p.error_message) = (f.code.code(), f.message);
                    }
                    // The trailer holds the regions in partition order.
                    if let Some(region) = r.region {
                        p.records_bytes = region.len as u32;
                        regions.push(region);
                    }
                    p
                })
                .collect(),
        })
        .collect();
    (
        FetchResponse {
            topics,
            ..Default::default()
        },
        regions,
    )
}

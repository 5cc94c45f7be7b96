//! Fetch (read uncommitted; there are no transactions): the service's fetch — long poll,
//! budgets, lock-free reads — and its file regions spliced into the Kafka response, sent
//! with `sendfile`.

use std::ops::RangeInclusive;
use std::sync::Arc;

use bytes::BytesMut;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use runnel_protocol::ErrorCode;

use crate::kafka::splice::{placeholder, SpliceBuf, MAX_PLACEHOLDER_BYTES};
use crate::kafka::{encode_response, reply, Request};
use crate::net::reply::Reply;
use crate::service::fetch::{Fetch, FetchPartition, FetchTopic};
use crate::service::{self, Broker};

pub const VERSIONS: RangeInclusive<i16> = 4..=12;

pub async fn handle(broker: &Arc<Broker>, req: &Request, fetch: FetchRequest) -> Option<Reply> {
    let wanted = Fetch {
        max_wait_ms: fetch.max_wait_ms.max(0) as u32,
        min_bytes: fetch.min_bytes.max(0) as u32,
        max_bytes: fetch.max_bytes.max(0) as u32,
        topics: fetch
            .topics
            .iter()
            .map(|t| FetchTopic {
                name: t.topic.0.to_string(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| FetchPartition {
                        partition: p.partition as u32,
                        offset: p.fetch_offset,
                        // A placeholder stands for at most this many bytes.
                        max_bytes: (p.partition_max_bytes.max(0) as u32).min(MAX_PLACEHOLDER_BYTES as u32 / 2),
                        current_leader_epoch: None,
                    })
                    .collect(),
            })
            .collect(),
        replica_id: None,
    };
    let reads = service::fetch::fetch(broker, &wanted).await;
    let mut kept = Vec::with_capacity(reads.iter().map(Vec::len).sum());
    let responses = reads
        .into_iter()
        .zip(&fetch.topics)
        .map(|(reads, kt)| {
            let partitions = reads
                .into_iter()
                .map(|r| {
                    let mut d = PartitionData::default()
                        .with_partition_index(r.partition as i32)
                        // (Counted for metrics by the service's fetch.)
                        .with_error_code(r.failure.map_or(0, |f| f.code.code() as i16))
                        .with_high_watermark(r.high_watermark)
                        .with_last_stable_offset(r.high_watermark)
                        .with_log_start_offset(r.log_start_offset);
                    if let Some(region) = r.region {
                        if (region.len as usize) <= MAX_PLACEHOLDER_BYTES {
                            d = d.with_records(Some(placeholder(region.len as usize)));
                            kept.push(region);
                        } else {
                            // A single batch over 64 MiB: more than a response may carry.
                            d = d.with_error_code(ErrorCode::MessageTooLarge.code() as i16);
                        }
                    }
                    d
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(kt.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    let body = FetchResponse::default().with_responses(responses);
    let mut buf = SpliceBuf::new(BytesMut::with_capacity(256));
    encode_response(req, &body, &mut buf)?;
    debug_assert_eq!(buf.splices.len(), kept.len());
    Some(reply(buf, kept))
}

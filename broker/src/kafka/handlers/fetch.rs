//! Fetch (read uncommitted; there are no transactions): the native fetch path — long
//! poll, budgets, lock-free reads — and its file regions spliced into the Kafka response,
//! sent with `sendfile`.

use std::ops::RangeInclusive;
use std::sync::Arc;

use bytes::BytesMut;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use runnel_protocol::messages as native;
use runnel_protocol::ErrorCode;

use crate::kafka::splice::{placeholder, SpliceBuf, MAX_PLACEHOLDER_BYTES};
use crate::kafka::{encode_response, reply, Request};
use crate::net::reply::Reply;
use {crate::native as handlers, crate::service::Broker};

pub const VERSIONS: RangeInclusive<i16> = 4..=12;

pub async fn handle(broker: &Arc<Broker>, req: &Request, fetch: FetchRequest) -> Option<Reply> {
    let native_req = native::FetchRequest {
        max_wait_ms: fetch.max_wait_ms.max(0) as u32,
        min_bytes: fetch.min_bytes.max(0) as u32,
        max_bytes: fetch.max_bytes.max(0) as u32,
        topics: fetch
            .topics
            .iter()
            .map(|t| native::FetchTopic {
                name: t.topic.0.to_string(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| native::FetchPartition {
                        partition: p.partition as u32,
                        fetch_offset: p.fetch_offset,
                        // A placeholder stands for at most this many bytes.
                        max_bytes: (p.partition_max_bytes.max(0) as u32).min(MAX_PLACEHOLDER_BYTES as u32 / 2),
                    })
                    .collect(),
            })
            .collect(),
    };
    let (resp, mut regions) = handlers::fetch::handle(broker, native_req).await;
    let mut kept = Vec::with_capacity(regions.len());
    let mut next_region = regions.drain(..);
    let responses = resp
        .topics
        .iter()
        .zip(&fetch.topics)
        .map(|(t, kt)| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut d = PartitionData::default()
                        .with_partition_index(p.partition as i32)
                        // (Counted for metrics by the native fetch.)
                        .with_error_code(p.error_code as i16)
                        .with_high_watermark(p.high_watermark)
                        .with_last_stable_offset(p.high_watermark)
                        .with_log_start_offset(p.log_start_offset);
                    if p.records_bytes > 0 {
                        let region = next_region.next().expect("one region per partition with records");
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
    drop(next_region);
    let body = FetchResponse::default().with_responses(responses);
    let mut buf = SpliceBuf::new(BytesMut::with_capacity(256));
    encode_response(req, &body, &mut buf)?;
    debug_assert_eq!(buf.splices.len(), kept.len());
    Some(reply(buf, kept))
}

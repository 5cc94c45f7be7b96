//! Produce: append each partition's batches, acknowledge per `acks`.
//!
//! Hot path. The batches arrive in the frame's trailer; each partition's share is split
//! off (no copy) and appended in place: the storage engine validates it, stamps offsets
//! into these very bytes and writes them with one `write(2)`. The write goes to the page
//! cache and runs on this task (microseconds; the single writer of a partition is a
//! mutex held only for that write). `fdatasync` never runs here: acks `all` waits for the
//! flusher threads' group commit.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use runnel_protocol::messages::{Acks, ProducePartitionResult, ProduceRequest, ProduceResponse, ProduceTopicResult};
use runnel_protocol::{ErrorCode, Response};

use super::code_and_message;
use crate::metrics;
use crate::net::order::ApplyOrder;
use crate::service::Broker;
use crate::storage::DurableWait;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

/// `None` for acks `none`: Kafka's acks=0 sends no response at all.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    req: ProduceRequest,
    mut trailer: BytesMut,
    order: Option<ApplyOrder>,
) -> Option<ProduceResponse> {
    let Ok(acks) = Acks::try_from(req.acks) else {
        return Some(ProduceResponse::with_error(
            ErrorCode::InvalidRequiredAcks,
            format!("unknown acks value {}", req.acks),
        ));
    };
    let announced: u64 = req
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.records_bytes as u64)
        .sum();
    if announced != trailer.len() as u64 {
        return Some(ProduceResponse::with_error(
            ErrorCode::InvalidRequest,
            format!(
                "partitions announce {announced} record bytes but the frame carries {}",
                trailer.len()
            ),
        ));
    }
    // Each partition's batches as a view of the frame (no copy).
    let parts = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| (p.partition, trailer.split_to(p.records_bytes as usize)))
                .collect();
            (t.name, partitions)
        })
        .collect();
    append(broker, acks, req.timeout_ms, parts, order).await
}

/// One topic's part of a produce request: its partitions and their batches.
pub(crate) type TopicParts = (String, Vec<(u32, BytesMut)>);

/// Appends each partition's batches and answers per `acks` (`None` for acks `none`).
/// Shared by the native and the Kafka listener.
pub(crate) async fn append(
    broker: &Arc<Broker>,
    acks: Acks,
    timeout_ms: u32,
    parts: Vec<TopicParts>,
    order: Option<ApplyOrder>,
) -> Option<ProduceResponse> {
    if broker.is_shutting_down() {
        return Some(ProduceResponse::with_error(
            ErrorCode::BrokerShuttingDown,
            "the broker is shutting down".into(),
        ));
    }

    // Appends in the connection's request order; the successor may append once this
    // request's appends are done (not durable: durability is awaited below, together).
    let mut order = order;
    if let Some(o) = order.as_mut() {
        o.wait_turn().await;
    }
    let mut topics = Vec::with_capacity(parts.len());
    // (topic index, partition index, wait) for acks `all`.
    let mut waits: Vec<(usize, usize, DurableWait)> = Vec::new();
    let appending = Instant::now();
    let metrics = &broker.metrics();
    for (ti, (name, partitions)) in parts.into_iter().enumerate() {
        let mut results = Vec::with_capacity(partitions.len());
        for (pi, (partition, mut batches)) in partitions.into_iter().enumerate() {
            let mut r = ProducePartitionResult {
                partition,
                base_offset: -1,
                log_append_time_ms: -1,
                log_start_offset: -1,
                ..Default::default()
            };
            let appended = broker.storage.partition(&name, partition).and_then(|log| {
                r.log_start_offset = log.start_offset() as i64;
                if acks == Acks::All {
                    log.append_durable(&mut batches).map(|(info, wait)| (info, Some(wait)))
                } else {
                    log.append(&mut batches).map(|info| (info, None))
                }
            });
            match appended {
                Ok((info, wait)) => {
                    let traffic = metrics.traffic(&name, partition);
                    traffic.records_in.inc_by(info.last_offset + 1 - info.base_offset);
                    traffic.bytes_in.inc_by(batches.len() as u64);
                    for h in runnel_protocol::batch::headers(&batches) {
                        metrics.produce_batch_bytes.observe(h.total_bytes() as f64);
                    }
                    r.base_offset = info.base_offset as i64;
                    r.log_append_time_ms = info.log_append_time_ms.unwrap_or(-1);
                    if let Some(w) = wait {
                        waits.push((ti, pi, w));
                    }
                }
                Err(e) => (r.error_code, r.error_message) = code_and_message(&e),
            }
            results.push(r);
        }
        topics.push(ProduceTopicResult {
            name,
            partitions: results,
        });
    }
    metrics::add_storage(appending.elapsed());
    if let Some(o) = order {
        o.applied();
    }
    if acks == Acks::None {
        return None;
    }

    // Durable acks: all partitions' syncs proceed together (group commit on the flusher
    // threads); the response waits for the slowest, bounded by the request's timeout.
    if !waits.is_empty() {
        let timeout_ms = if timeout_ms == 0 {
            broker.config().request_timeout_ms
        } else {
            (timeout_ms as u64).min(broker.config().request_timeout_ms)
        };
        let outcomes = metrics::in_storage(futures::future::join_all(waits.into_iter().map(
            |(ti, pi, w)| async move {
                let r = tokio::time::timeout(Duration::from_millis(timeout_ms), w.wait()).await;
                (ti, pi, r)
            },
        )))
        .await;
        for (ti, pi, outcome) in outcomes {
            let r = &mut topics[ti].partitions[pi];
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => (r.error_code, r.error_message) = code_and_message(&e),
                Err(_) => {
                    r.error_code = ErrorCode::RequestTimedOut.code();
                    r.error_message = format!("not durable within timeout_ms={timeout_ms}");
                }
            }
        }
    }
    for p in topics.iter().flat_map(|t| &t.partitions) {
        metrics::note_error_code(p.error_code);
    }
    Some(ProduceResponse {
        topics,
        ..Default::default()
    })
}

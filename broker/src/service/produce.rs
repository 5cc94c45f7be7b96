//! Produce: append each partition's batches, acknowledge per `acks`.
//!
//! Hot path. Each partition's batches are a view of the request frame (no copy) and are
//! appended in place: the storage engine validates them, stamps offsets into these very
//! bytes and writes them with one `write(2)`. The write goes to the page cache and runs
//! on this task (microseconds; the single writer of a partition is a mutex held only for
//! that write). `fdatasync` never runs here: acks `all` waits for the flusher threads'
//! group commit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use runnel_protocol::ErrorCode;

use super::{Broker, Failure, Outcome};
use crate::metrics;
use crate::net::order::ApplyOrder;
use crate::storage::DurableWait;

/// When a produce is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Not at all (Kafka's acks=0).
    None,
    /// Once in the leader's log (acks=1).
    Leader,
    /// Once durable under the topic's flush policy (acks=all).
    All,
}

/// One topic's part of a produce request: its partitions and their batches.
pub type TopicParts = (String, Vec<(u32, BytesMut)>);

/// Where one partition's batches landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    /// The broker's time for a LogAppendTime topic, -1 otherwise.
    pub log_append_time_ms: i64,
}

/// One partition's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionResult {
    pub partition: u32,
    /// The log start offset when appended (-1 for an unknown partition).
    pub log_start_offset: i64,
    pub appended: Outcome<Appended>,
}

/// Appends each partition's batches and answers per `acks`: `None` for acks `none`,
/// else each topic's partitions in request order, or a failure of the whole request.
/// The appends take their turn in the connection's order (`order`), released once they
/// are written (durability is awaited after, all partitions together).
// Long by choice: the produce hot path — turn, appends, metrics, durability — top to
// bottom without detours.
pub(crate) async fn append(
    broker: &Arc<Broker>,
    acks: Acks,
    timeout_ms: u32,
    parts: Vec<TopicParts>,
    order: Option<ApplyOrder>,
) -> Option<Outcome<Vec<(String, Vec<PartitionResult>)>>> {
    if broker.is_shutting_down() {
        return Some(Err(Failure::new(
            ErrorCode::BrokerShuttingDown,
            "the broker is shutting down",
        )));
    }
    let mut order = order;
    if let Some(o) = order.as_mut() {
        o.wait_turn().await;
    }
    let mut topics = Vec::with_capacity(parts.len());
    // (topic index, partition index, wait) for acks `all`.
    let mut waits: Vec<(usize, usize, DurableWait)> = Vec::new();
    let appending = Instant::now();
    let metrics = broker.metrics();
    for (ti, (name, partitions)) in parts.into_iter().enumerate() {
        let mut results = Vec::with_capacity(partitions.len());
        for (pi, (partition, mut batches)) in partitions.into_iter().enumerate() {
            let mut log_start_offset = -1;
            let appended = super::cluster::led_partition(broker, &name, partition).and_then(|log| {
                log_start_offset = log.start_offset() as i64;
                if acks == Acks::All {
                    log.append_durable(&mut batches).map(|(info, wait)| (info, Some(wait)))
                } else {
                    log.append(&mut batches).map(|info| (info, None))
                }
                .map_err(Failure::from)
            });
            let appended = match appended {
                Ok((info, wait)) => {
                    let traffic = metrics.traffic(&name, partition);
                    traffic.records_in.inc_by(info.last_offset + 1 - info.base_offset);
                    traffic.bytes_in.inc_by(batches.len() as u64);
                    for h in runnel_protocol::batch::headers(&batches) {
                        metrics.produce_batch_bytes.observe(h.total_bytes() as f64);
                    }
                    if let Some(w) = wait {
                        waits.push((ti, pi, w));
                    }
                    Ok(Appended {
                        base_offset: info.base_offset as i64,
                        log_append_time_ms: info.log_append_time_ms.unwrap_or(-1),
                    })
                }
                Err(f) => Err(f),
            };
            results.push(PartitionResult {
                partition,
                log_start_offset,
                appended,
            });
        }
        topics.push((name, results));
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
            let r = &mut topics[ti].1[pi];
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => r.appended = Err(Failure::from(e)),
                Err(_) => {
                    r.appended = Err(Failure::new(
                        ErrorCode::RequestTimedOut,
                        format!("not durable within timeout_ms={timeout_ms}"),
                    ))
                }
            }
        }
    }
    for p in topics.iter().flat_map(|t| &t.1) {
        if let Err(f) = &p.appended {
            metrics::note_error(f.code);
        }
    }
    Some(Ok(topics))
}

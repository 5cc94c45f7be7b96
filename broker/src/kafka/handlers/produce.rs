//! Produce (magic 2 batches): appended through the native path.
//!
//! One copy per request, unlike the native protocol: the storage engine stamps offsets
//! into a mutable buffer, and the frame a Kafka request was decoded from is shared (with
//! the connection's read buffer and the decoder's views), so each partition's records are
//! copied into a buffer of their own. Removing it needs appends that write the stamped
//! base offset beside the bytes rather than into them. Batches of an older magic fail
//! validation and get `CORRUPT_MESSAGE` (Produce v3+ carries only magic 2).
//!
//! Idempotent producers' sequences are checked by the log (`storage::producers`).
//! Transactions: not served (not advertised).

use std::ops::RangeInclusive;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use runnel_protocol::messages::Acks;
use runnel_protocol::ErrorCode;

use super::{str_bytes, topic_name};
use crate::kafka::{decode, respond, Request};
use crate::server::dispatch::AppendOrder;
use crate::server::handlers::produce::{append, TopicParts};
use crate::server::reply::Reply;
use crate::server::Broker;

pub const VERSIONS: RangeInclusive<i16> = 3..=9;

pub(crate) async fn handle(
    broker: &Arc<Broker>,
    req: &Request,
    body: Bytes,
    order: Option<AppendOrder>,
) -> Result<Option<Reply>, Reply> {
    let produce: ProduceRequest = decode(req, body)?;
    // The request's shape (topic names, partition indexes) for the response, and each
    // partition's records in a buffer of their own.
    let mut shape: Vec<(String, Vec<i32>)> = Vec::with_capacity(produce.topic_data.len());
    let mut parts: Vec<TopicParts> = Vec::with_capacity(produce.topic_data.len());
    for t in &produce.topic_data {
        let name = t.name.0.to_string();
        let records = t
            .partition_data
            .iter()
            .map(|p| {
                (
                    p.index as u32,
                    p.records.as_deref().map(BytesMut::from).unwrap_or_default(),
                )
            })
            .collect();
        shape.push((name.clone(), t.partition_data.iter().map(|p| p.index).collect()));
        parts.push((name, records));
    }
    let acks = match produce.acks {
        -1 => Acks::All,
        1 => Acks::Leader,
        0 => Acks::None,
        other => {
            let message = format!("acks must be -1, 0 or 1, not {other}");
            let code = ErrorCode::InvalidRequiredAcks.code();
            crate::metrics::note_error(ErrorCode::InvalidRequiredAcks);
            return Ok(respond(
                req,
                &response(req.version, shape, |_, _| (code, &message, -1, -1, -1)),
            ));
        }
    };
    let timeout_ms = produce.timeout_ms.max(0) as u32;
    drop(produce);
    let Some(native) = append(broker, acks, timeout_ms, parts, order).await else {
        return Ok(None); // acks 0: no response
    };
    // The native response lists topics and partitions in request order; a request-level
    // error (shutting down) applies to every partition.
    let resp = response(req.version, shape, |ti, pi| {
        match native.topics.get(ti).and_then(|t| t.partitions.get(pi)) {
            Some(p) if native.error_code == 0 => (
                p.error_code,
                &p.error_message,
                p.base_offset,
                p.log_append_time_ms,
                p.log_start_offset,
            ),
            _ => (native.error_code, &native.error_message, -1, -1, -1),
        }
    });
    Ok(respond(req, &resp))
}

/// (error code, message, base offset, log append time, log start offset) of a partition.
type Outcome<'a> = (i32, &'a String, i64, i64, i64);

/// The response for the request's `shape`, each partition's outcome from `outcome(topic
/// index, partition index)`, with only the fields `version` carries.
fn response<'a>(
    version: i16,
    shape: Vec<(String, Vec<i32>)>,
    outcome: impl Fn(usize, usize) -> Outcome<'a>,
) -> ProduceResponse {
    let responses = shape
        .into_iter()
        .enumerate()
        .map(|(ti, (name, indexes))| {
            let partitions = indexes
                .into_iter()
                .enumerate()
                .map(|(pi, index)| {
                    let (code, message, base_offset, append_time, start_offset) = outcome(ti, pi);
                    let mut r = PartitionProduceResponse::default()
                        .with_index(index)
                        // (Counted for metrics where the code arose: `append`, or above.)
                        .with_error_code(code as i16)
                        .with_base_offset(base_offset)
                        .with_log_append_time_ms(append_time);
                    if version >= 5 {
                        r = r.with_log_start_offset(start_offset);
                    }
                    if version >= 8 && !message.is_empty() {
                        r = r.with_error_message(Some(str_bytes(message)));
                    }
                    r
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(topic_name(&name))
                .with_partition_responses(partitions)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

//! Produce (magic 2 batches): appended through the native path, zero-copy.
//!
//! The decoded request's `records` are views of the frame. Their places in the frame are
//! noted, the decoded request dropped, and the frame — now uniquely owned again — split
//! into one buffer per partition (no copy), which the storage engine validates, stamps
//! and appends as for the native protocol. Batches of an older magic fail validation and
//! get `CORRUPT_MESSAGE` (Produce v3+ carries only magic 2).
//!
//! Not yet: idempotent sequence checks (producer ids are stored as sent) and
//! transactions (not advertised).

use std::ops::{Range, RangeInclusive};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use runnel_protocol::messages::Acks;
use runnel_protocol::ErrorCode;

use super::{kafka_code, str_bytes};
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
    let frame_start = body.as_ptr() as usize;
    let produce: ProduceRequest = decode(req, body.clone())?;
    // The request's shape (topic names, partition indexes) for the response, and where
    // each partition's records sit in `body`.
    let mut shape: Vec<(TopicName, Vec<i32>)> = Vec::with_capacity(produce.topic_data.len());
    let mut layout: Layout = Vec::with_capacity(produce.topic_data.len());
    for t in &produce.topic_data {
        let mut ranges = Vec::with_capacity(t.partition_data.len());
        for p in &t.partition_data {
            let range = match &p.records {
                Some(r) if !r.is_empty() => {
                    let start = r.as_ptr() as usize - frame_start;
                    start..start + r.len()
                }
                _ => 0..0,
            };
            ranges.push((p.index as u32, range));
        }
        shape.push((t.name.clone(), t.partition_data.iter().map(|p| p.index).collect()));
        layout.push((t.name.0.to_string(), ranges));
    }
    let (acks, timeout_ms) = (produce.acks, produce.timeout_ms.max(0) as u32);
    // Only `body` refers to the frame now: it splits without copying.
    drop(produce);
    let acks = match acks {
        -1 => Acks::All,
        1 => Acks::Leader,
        0 => Acks::None,
        other => {
            let message = format!("acks must be -1, 0 or 1, not {other}");
            let code = ErrorCode::InvalidRequiredAcks.code();
            return Ok(respond(
                req,
                &response(req.version, shape, |_, _| (code, &message, -1, -1, -1)),
            ));
        }
    };
    let mut frame = match body.try_into_mut() {
        Ok(f) => f,
        // Still shared (not expected): copy once rather than fail.
        Err(shared) => BytesMut::from(&shared[..]),
    };
    let parts = split_parts(&mut frame, layout);
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

/// Splits `frame` into each partition's records, in order, without copying.
/// Per topic: its partitions and where each one's records sit in the frame.
type Layout = Vec<(String, Vec<(u32, Range<usize>)>)>;

fn split_parts(frame: &mut BytesMut, layout: Layout) -> Vec<TopicParts> {
    let mut consumed = 0usize;
    layout
        .into_iter()
        .map(|(name, partitions)| {
            let parts = partitions
                .into_iter()
                .map(|(p, range)| {
                    if range.is_empty() || range.start < consumed {
                        return (p, BytesMut::new());
                    }
                    let _ = frame.split_to(range.start - consumed);
                    consumed = range.end;
                    (p, frame.split_to(range.len()))
                })
                .collect();
            (name, parts)
        })
        .collect()
}

/// (error code, message, base offset, log append time, log start offset) of a partition.
type Outcome<'a> = (i32, &'a String, i64, i64, i64);

/// The response for the request's `shape`, each partition's outcome from `outcome(topic
/// index, partition index)`, with only the fields `version` carries.
fn response<'a>(
    version: i16,
    shape: Vec<(TopicName, Vec<i32>)>,
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
                        .with_error_code(kafka_code(code))
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
                .with_name(name)
                .with_partition_responses(partitions)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

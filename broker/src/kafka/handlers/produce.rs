//! Produce (magic 2 batches): appended through the native path.
//!
//! The storage engine stamps offsets into the records' own buffer, so a partition's
//! records must be writable memory. The request is decoded from the frame, which the
//! decoded fields share; once they are dropped (names and shapes copied out first), the
//! frame is taken back as writable memory when this request is its last holder, and cut
//! into each partition's records without copying. The connection reader gives frames of
//! [`IN_PLACE_MIN_BYTES`] or more an allocation of their own (`Protocol::wants_own_buffer`),
//! so that is the case for them; smaller ones have their records copied, as would a
//! frame found still shared. Batches of an older magic fail validation and get `CORRUPT_MESSAGE`
//! (Produce v3+ carries only magic 2).
//!
//! Idempotent producers' sequences are checked by the log (`storage::producers`).
//! Transactions: not served (not advertised).

use std::ops::RangeInclusive;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use runnel_protocol::ErrorCode;

use super::{str_bytes, topic_name};
use crate::kafka::{decode, respond, Request};
use crate::net::order::ApplyOrder;
use crate::net::reply::Reply;
use crate::service::produce::{self, append, TopicParts};
use {crate::net::ServerStats, crate::service::Broker};

pub const VERSIONS: RangeInclusive<i16> = 3..=9;

/// Produce frames at least this large get their own allocation from the connection
/// reader (see the module docs); below it copying the records is as cheap.
pub const IN_PLACE_MIN_BYTES: usize = 16 * 1024;

pub(crate) async fn handle(
    broker: &Arc<Broker>,
    req: &Request,
    body: Bytes,
    order: Option<ApplyOrder>,
) -> Result<Option<Reply>, Reply> {
    let frame = body.clone();
    let produce: ProduceRequest = decode(req, body)?;
    // The request's shape (topic names, partition indexes) for the response.
    let shape: Vec<(String, Vec<i32>)> = produce
        .topic_data
        .iter()
        .map(|t| (t.name.0.to_string(), t.partition_data.iter().map(|p| p.index).collect()))
        .collect();
    let acks = match produce.acks {
        -1 => produce::Acks::All,
        1 => produce::Acks::Leader,
        0 => produce::Acks::None,
        other => {
            let message = format!("acks must be -1, 0 or 1, not {other}");
            let code = ErrorCode::InvalidRequiredAcks.code();
            crate::metrics::note_error(ErrorCode::InvalidRequiredAcks);
            return Ok(respond(
                req,
                &response(req.version, shape, |_, _| (code, message.as_str(), -1, -1, -1)),
            ));
        }
    };
    let timeout_ms = produce.timeout_ms.max(0) as u32;
    let (records, copied) = take_records(frame, produce);
    ServerStats::add(&broker.stats().kafka_produce_copied_bytes, copied as u64);
    let mut records = records.into_iter();
    let parts: Vec<TopicParts> = shape
        .iter()
        .map(|(name, indexes)| {
            let parts = indexes
                .iter()
                .map(|&i| (i as u32, records.next().expect("one per partition")))
                .collect();
            (name.clone(), parts)
        })
        .collect();
    let Some(outcome) = append(broker, acks, timeout_ms, parts, order).await else {
        return Ok(None); // acks 0: no response
    };
    // Topics and partitions come back in request order; a request-level failure
    // (shutting down) applies to every partition.
    let resp = response(req.version, shape, |ti, pi| match &outcome {
        Ok(topics) => {
            let p = &topics[ti].1[pi];
            match &p.appended {
                Ok(a) => (0, "", a.base_offset, a.log_append_time_ms, p.log_start_offset),
                Err(f) => (f.code.code(), f.message.as_str(), -1, -1, p.log_start_offset),
            }
        }
        Err(f) => (f.code.code(), f.message.as_str(), -1, -1, -1),
    });
    Ok(respond(req, &resp))
}

/// Each partition's records (in request order) as writable memory, and how many bytes
/// were copied to get it. Once everything else of the request is dropped, the records
/// are cut from `frame` itself when it has no other holder and they lie in order inside
/// it (as the encoding puts them); otherwise they are copied. Null records give an empty
/// buffer.
pub(crate) fn take_records(frame: Bytes, produce: ProduceRequest) -> (Vec<BytesMut>, usize) {
    let records: Vec<Option<Bytes>> = produce
        .topic_data
        .into_iter()
        .flat_map(|t| t.partition_data.into_iter().map(|p| p.records))
        .collect();
    let base = frame.as_ptr() as usize;
    let mut end = 0;
    let spans: Option<Vec<Option<(usize, usize)>>> = records
        .iter()
        .map(|r| match r {
            None => Some(None),
            Some(r) => {
                let at = (r.as_ptr() as usize).checked_sub(base)?;
                (at >= end && at + r.len() <= frame.len()).then(|| {
                    end = at + r.len();
                    Some((at, r.len()))
                })
            }
        })
        .collect();
    let Some(spans) = spans else {
        return copied(records.iter().map(Option::as_deref));
    };
    drop(records);
    match frame.try_into_mut() {
        Ok(mut rest) => {
            let mut at = 0;
            let parts = spans
                .iter()
                .map(|span| match *span {
                    Some((pos, n)) => {
                        rest.advance(pos - at);
                        at = pos + n;
                        rest.split_to(n)
                    }
                    None => BytesMut::new(),
                })
                .collect();
            (parts, 0)
        }
        Err(frame) => copied(spans.iter().map(|s| s.map(|(pos, n)| &frame[pos..pos + n]))),
    }
}

/// Copies of `records` (empty for null), and their total length.
fn copied<'a>(records: impl Iterator<Item = Option<&'a [u8]>>) -> (Vec<BytesMut>, usize) {
    let parts: Vec<BytesMut> = records.map(|r| r.map(BytesMut::from).unwrap_or_default()).collect();
    let n = parts.iter().map(BytesMut::len).sum();
    (parts, n)
}

/// (error code, message, base offset, log append time, log start offset) of a partition.
type Outcome<'a> = (i32, &'a str, i64, i64, i64);

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

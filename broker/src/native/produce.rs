//! Produce: the batches arrive in the frame's trailer; each partition's share is split
//! off (no copy) and handed to the service's append (`service::produce`), which appends
//! them in place.

use std::ops::RangeInclusive;
use std::sync::Arc;

use bytes::BytesMut;
use runnel_protocol::messages::{Acks, ProducePartitionResult, ProduceRequest, ProduceResponse, ProduceTopicResult};
use runnel_protocol::{ErrorCode, Response};

use crate::net::order::ApplyOrder;
use crate::service::produce::{self, PartitionResult};
use crate::service::{Broker, Outcome};

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
    let acks = match acks {
        Acks::None => produce::Acks::None,
        Acks::Leader => produce::Acks::Leader,
        Acks::All => produce::Acks::All,
    };
    produce::append(broker, acks, req.timeout_ms, parts, order)
        .await
        .map(|outcome| response(broker, outcome))
}

/// The native form of a produce's answer.
fn response(broker: &Broker, outcome: Outcome<Vec<(String, Vec<PartitionResult>)>>) -> ProduceResponse {
    let topics = match outcome {
        Ok(topics) => topics,
        Err(f) => return ProduceResponse::with_error(f.code, f.message),
    };
    ProduceResponse {
        topics: topics
            .into_iter()
            .map(|(name, partitions)| ProduceTopicResult {
                partitions: partitions
                    .into_iter()
                    .map(|p| {
                        let mut r = ProducePartitionResult {
                            partition: p.partition,
                            base_offset: -1,
                            log_append_time_ms: -1,
                            log_start_offset: p.log_start_offset,
                            ..Default::default()
                        };
                        match p.appended {
                            Ok(a) => {
                                r.base_offset = a.base_offset;
                                r.log_append_time_ms = a.log_append_time_ms;
                            }
                            Err(f) => {
                                if matches!(f.code, ErrorCode::NotLeaderOrFollower | ErrorCode::FencedLeaderEpoch) {
                                    let l = crate::service::cluster::leadership(broker, &name, p.partition);
                                    if l.leader >= 0 && l.leader != broker.node_id {
                                        r.current_leader_id = Some(l.leader);
                                        r.current_leader_epoch = Some(l.leader_epoch);
                                    }
                                }
                                (r.error_code, r.error_message) = (f.code.code(), f.message);
                            }
                        }
                        r
                    })
                    .collect(),
                name,
            })
            .collect(),
        ..Default::default()
    }
}

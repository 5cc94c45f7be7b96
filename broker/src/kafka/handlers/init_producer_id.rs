//! InitProducerId: a producer id and epoch for an idempotent producer (no transactions:
//! a transactional id gets COORDINATOR_NOT_AVAILABLE).
//!
//! Ids come from [`Broker::new_producer_id`], shared with the native API. A producer that
//! presents its id and epoch (v3+, after a fatal error) keeps the id with the next epoch,
//! which fences batches of its older incarnation (INVALID_PRODUCER_EPOCH).

use std::ops::RangeInclusive;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use runnel_protocol::ErrorCode;

use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=4;

pub fn handle(broker: &Broker, req: InitProducerIdRequest) -> InitProducerIdResponse {
    if req.transactional_id.as_ref().is_some_and(|t| !t.is_empty()) {
        return InitProducerIdResponse::default()
            .with_error_code(ErrorCode::CoordinatorNotAvailable.code() as i16)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    let (id, epoch) = if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX {
        (req.producer_id.0, req.producer_epoch + 1)
    } else {
        (broker.new_producer_id(), 0)
    };
    InitProducerIdResponse::default()
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(epoch)
}

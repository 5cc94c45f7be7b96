//! InitProducerId: a new producer id, epoch 0, for an idempotent native producer. The
//! producer numbers its batches per partition from there (`storage::producers` checks
//! them); it moves to a higher epoch on its own when it must renumber a partition.

use std::ops::RangeInclusive;

use runnel_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};

use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub fn handle(broker: &Broker, _req: InitProducerIdRequest) -> InitProducerIdResponse {
    InitProducerIdResponse {
        producer_id: broker.new_producer_id(),
        producer_epoch: 0,
        ..Default::default()
    }
}

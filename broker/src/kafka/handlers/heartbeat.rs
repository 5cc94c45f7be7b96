//! Heartbeat (classic protocol): keeps the member's session; REBALANCE_IN_PROGRESS
//! tells it to rejoin.

use std::ops::RangeInclusive;

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::group_error;
use crate::service::{groups, Broker};

pub const VERSIONS: RangeInclusive<i16> = 0..=4;

pub fn handle(broker: &Broker, body: HeartbeatRequest) -> HeartbeatResponse {
    let instance = super::instance_id(&body.group_instance_id);
    let code = match groups::classic_heartbeat(
        broker,
        &body.group_id.0,
        &body.member_id,
        instance.as_deref(),
        body.generation_id,
    ) {
        Ok(()) => 0,
        Err(e) => group_error(&e),
    };
    HeartbeatResponse::default().with_error_code(code)
}

//! FindCoordinator: groups are coordinated by this broker (at its Kafka address).
//! Transaction coordinators do not exist (no transactions): COORDINATOR_NOT_AVAILABLE.

use std::ops::RangeInclusive;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::ErrorCode;

use super::str_bytes;
use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=4;

const GROUP: i8 = 0;

pub fn handle(broker: &Broker, version: i16, req: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let (code, message, node, host, port) = if req.key_type == GROUP {
        let port = i32::from(broker.kafka_port.unwrap_or(0));
        (
            0,
            None,
            BrokerId(broker.node_id),
            str_bytes(&broker.advertised_host),
            port,
        )
    } else {
        let message = str_bytes("no transaction coordinator: transactions are not supported");
        let code = ErrorCode::CoordinatorNotAvailable.code() as i16;
        (code, Some(message), BrokerId(-1), StrBytes::default(), -1)
    };
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(node)
                    .with_host(host.clone())
                    .with_port(port)
                    .with_error_code(code)
                    .with_error_message(message.clone())
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let resp = FindCoordinatorResponse::default()
        .with_error_code(code)
        .with_node_id(node)
        .with_host(host)
        .with_port(port);
    if version >= 1 {
        resp.with_error_message(message)
    } else {
        resp
    }
}

//! FindCoordinator: a group's coordinator is the broker leading its offsets-log
//! partition (named at its Kafka address).
//! Transaction coordinators do not exist (no transactions): COORDINATOR_NOT_AVAILABLE.

use std::ops::RangeInclusive;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::ErrorCode;

use super::str_bytes;
use crate::service::groups::find_coordinator;
use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=4;

const GROUP: i8 = 0;

pub async fn handle(broker: &Broker, version: i16, req: FindCoordinatorRequest) -> FindCoordinatorResponse {
    // v0–3 name one key; v4 a batch (all groups here: one lookup each).
    let keys: Vec<StrBytes> = if version >= 4 {
        req.coordinator_keys.clone()
    } else {
        vec![req.key.clone()]
    };
    let mut found = Vec::with_capacity(keys.len());
    for key in &keys {
        found.push(if req.key_type == GROUP {
            lookup(broker, key).await
        } else {
            let message = str_bytes("no transaction coordinator: transactions are not supported");
            let code = ErrorCode::CoordinatorNotAvailable.code() as i16;
            (code, Some(message), BrokerId(-1), StrBytes::default(), -1)
        });
    }
    if version >= 4 {
        let coordinators = keys
            .into_iter()
            .zip(found)
            .map(|(key, (code, message, node, host, port))| {
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(node)
                    .with_host(host)
                    .with_port(port)
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let (code, message, node, host, port) = found.pop().expect("one key");
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

/// The coordinator of group `key` at its Kafka address: (code, message, node, host, port).
async fn lookup(broker: &Broker, key: &str) -> (i16, Option<StrBytes>, BrokerId, StrBytes, i32) {
    let not_available = |code: ErrorCode, why: String| {
        (
            code.code() as i16,
            Some(str_bytes(&why)),
            BrokerId(-1),
            StrBytes::default(),
            -1,
        )
    };
    match find_coordinator(broker, key).await {
        Ok(c) => match c.kafka.as_deref().and_then(|a| a.rsplit_once(':')) {
            Some((host, port)) => (
                0,
                None,
                BrokerId(c.node_id),
                str_bytes(host),
                port.parse().unwrap_or(-1),
            ),
            None => not_available(
                ErrorCode::CoordinatorNotAvailable,
                format!("the coordinator, broker {}, runs no Kafka listener", c.node_id),
            ),
        },
        Err(f) => not_available(f.code, f.message),
    }
}

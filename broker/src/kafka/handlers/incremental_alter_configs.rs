//! IncrementalAlterConfigs: per key SET, DELETE (back to the default), APPEND or SUBTRACT
//! (list configs: `cleanup.policy`), as Kafka; `validate_only` checks without storing.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::alter_configs::alter;
use super::{kafka_code, str_bytes};
use crate::error::Error;
use crate::service::Broker;
use crate::storage::config::{key_info, ConfigKind};

pub const VERSIONS: RangeInclusive<i16> = 0..=1;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub async fn handle(broker: &Arc<Broker>, req: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for res in req.resources {
        let ops = res.configs.clone();
        let (code, message) = alter(
            broker,
            res.resource_type,
            &res.resource_name,
            req.validate_only,
            move |now| apply(now, &ops),
        )
        .await;
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name)
                .with_error_code(kafka_code(code.code()))
                .with_error_message(message.map(|m| str_bytes(&m))),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn invalid(key: &str, value: &str, reason: &str) -> Error {
    Error::InvalidConfig {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The overrides after `ops`, each applied in order to `now`.
fn apply(now: &BTreeMap<String, String>, ops: &[AlterableConfig]) -> Result<BTreeMap<String, String>, Error> {
    let mut next = now.clone();
    for op in ops {
        let key = op.name.as_str();
        let value = op.value.as_deref().unwrap_or_default();
        let info = key_info(key).ok_or_else(|| invalid(key, value, "unknown topic config"))?;
        match op.config_operation {
            SET => {
                next.insert(key.to_owned(), value.to_owned());
            }
            DELETE => {
                next.remove(key);
            }
            APPEND | SUBTRACT => {
                if info.kind != ConfigKind::List {
                    return Err(invalid(key, value, "APPEND and SUBTRACT apply to list configs only"));
                }
                let current = next.get(key).cloned().unwrap_or_else(|| "delete".to_owned());
                let mut items: Vec<String> = current
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                for v in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if op.config_operation == APPEND {
                        if !items.iter().any(|i| i == v) {
                            items.push(v.to_owned());
                        }
                    } else {
                        items.retain(|i| i != v);
                    }
                }
                next.insert(key.to_owned(), items.join(","));
            }
            other => return Err(invalid(key, value, &format!("unknown operation {other}"))),
        }
    }
    Ok(next)
}

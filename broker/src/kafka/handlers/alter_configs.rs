//! AlterConfigs (the legacy, non-incremental API): a topic's overrides become exactly the
//! configs given (keys not given return to their defaults), as in Kafka; `validate_only`
//! checks without storing. Broker configs are static (set by `runnel-broker` flags).

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::ErrorCode;

use super::describe_configs::{BROKER, TOPIC};
use super::{kafka_code, str_bytes};
use crate::error::Error;
use crate::service::{topics, Broker};

pub const VERSIONS: RangeInclusive<i16> = 0..=2;

pub async fn handle(broker: &Arc<Broker>, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for res in req.resources {
        let set: BTreeMap<String, String> = res
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        let (code, message) = alter(broker, res.resource_type, &res.resource_name, req.validate_only, |_| {
            Ok(set)
        })
        .await;
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name)
                .with_error_code(kafka_code(code.code()))
                .with_error_message(message.map(|m| str_bytes(&m))),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// Changes one resource's configs: for a topic, `change` turns its current overrides
/// into the new ones, which are validated and (unless `validate_only`) stored. Shared
/// with IncrementalAlterConfigs.
pub(crate) async fn alter(
    broker: &Arc<Broker>,
    resource_type: i8,
    resource_name: &StrBytes,
    validate_only: bool,
    change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Error> + Send + 'static,
) -> (ErrorCode, Option<String>) {
    match resource_type {
        TOPIC => {}
        BROKER => {
            return (
                ErrorCode::InvalidRequest,
                Some(
                    "broker configs are static: set them with runnel-broker's flags, environment or config file".into(),
                ),
            )
        }
        other => {
            return (
                ErrorCode::InvalidRequest,
                Some(format!("resource type {other} is not supported (topics are)")),
            )
        }
    }
    match topics::alter_configs(broker, resource_name.as_str(), validate_only, change).await {
        Ok(()) => (ErrorCode::None, None),
        Err(f) => (f.code, Some(f.message)),
    }
}

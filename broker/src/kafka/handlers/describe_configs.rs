//! DescribeConfigs: a topic's configs (overrides as dynamic topic configs, the rest as
//! defaults), through the native handler. Broker resources get an empty list.

use std::ops::RangeInclusive;

use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use runnel_protocol::messages as native;
use runnel_protocol::ErrorCode;

use super::{kafka_code, str_bytes};
use crate::server::{handlers, Broker};

pub const VERSIONS: RangeInclusive<i16> = 1..=4;

/// Kafka's resource types and config sources.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DEFAULT_CONFIG: i8 = 5;

pub fn handle(broker: &Broker, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = req
        .resources
        .iter()
        .map(|res| {
            let base = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            match res.resource_type {
                TOPIC => {
                    let resp = handlers::describe_configs::handle(
                        broker,
                        native::DescribeConfigsRequest {
                            topics: vec![res.resource_name.to_string()],
                        },
                    );
                    let Some(t) = resp.topics.into_iter().next() else {
                        return base.with_error_code(ErrorCode::UnknownServerError.code() as i16);
                    };
                    if t.error_code != 0 {
                        return base
                            .with_error_code(kafka_code(t.error_code))
                            .with_error_message(Some(str_bytes(&t.error_message)));
                    }
                    let wanted = |k: &str| {
                        res.configuration_keys
                            .as_ref()
                            .is_none_or(|keys| keys.iter().any(|w| w.as_str() == k))
                    };
                    base.with_configs(
                        t.entries
                            .into_iter()
                            .filter(|e| wanted(&e.key))
                            .map(|e| {
                                DescribeConfigsResourceResult::default()
                                    .with_name(str_bytes(&e.key))
                                    .with_value(Some(str_bytes(&e.value)))
                                    .with_config_source(if e.is_default {
                                        DEFAULT_CONFIG
                                    } else {
                                        DYNAMIC_TOPIC_CONFIG
                                    })
                            })
                            .collect(),
                    )
                }
                BROKER => base,
                other => base
                    .with_error_code(ErrorCode::InvalidRequest.code() as i16)
                    .with_error_message(Some(str_bytes(&format!("resource type {other} is not supported")))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

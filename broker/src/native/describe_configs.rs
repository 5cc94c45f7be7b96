//! DescribeConfigs: every topic config key with its effective value.

use std::ops::RangeInclusive;

use runnel_protocol::messages::{ConfigEntry, DescribeConfigsRequest, DescribeConfigsResponse, TopicConfigs};
use runnel_protocol::ErrorCode;

use crate::service::{topics, Broker};
use crate::storage::config::TOPIC_CONFIG_KEYS;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub fn handle(broker: &Broker, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|name| match topics::topic(broker, &name) {
            Some(t) => TopicConfigs {
                entries: TOPIC_CONFIG_KEYS
                    .iter()
                    .map(|k| ConfigEntry {
                        key: (*k).to_owned(),
                        value: t.config.get(k).unwrap_or_default(),
                        is_default: !t.overrides.contains_key(*k),
                    })
                    .collect(),
                name,
                ..Default::default()
            },
            None => TopicConfigs {
                error_code: ErrorCode::UnknownTopicOrPartition.code(),
                error_message: format!("unknown topic {name:?}"),
                name,
                ..Default::default()
            },
        })
        .collect();
    DescribeConfigsResponse {
        topics,
        ..Default::default()
    }
}

//! AlterConfigs (incremental): set some keys, return others to the default.

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, TopicResult};

use crate::error::Error;
use crate::service::{topics, Broker};
use crate::storage::config::TOPIC_CONFIG_KEYS;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for change in req.topics {
        let (set, delete) = (change.set, change.delete);
        let outcome = topics::alter_configs(broker, &change.name, false, move |now| {
            let mut overrides = now.clone();
            for key in &delete {
                if !TOPIC_CONFIG_KEYS.contains(&key.as_str()) {
                    return Err(Error::InvalidConfig {
                        key: key.clone(),
                        value: String::new(),
                        reason: "unknown config key".into(),
                    });
                }
                overrides.remove(key);
            }
            overrides.extend(set);
            Ok(overrides)
        })
        .await;
        let (error_code, error_message) = super::error_fields(outcome);
        topics.push(TopicResult {
            name: change.name,
            error_code,
            error_message,
        });
    }
    AlterConfigsResponse {
        topics,
        ..Default::default()
    }
}

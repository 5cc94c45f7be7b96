//! AlterConfigs (incremental): set some keys, return others to the default.

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, TopicResult};

use super::{blocking, code_and_message};
use crate::error::Error;
use crate::service::Broker;
use crate::storage::config::TOPIC_CONFIG_KEYS;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for change in req.topics {
        let storage = broker.storage.clone();
        let name = change.name.clone();
        let result = blocking(move || {
            let topic = storage
                .topic(&change.name)
                .ok_or_else(|| Error::UnknownTopic(change.name.clone()))?;
            let mut overrides = topic.overrides.clone();
            for key in &change.delete {
                if !TOPIC_CONFIG_KEYS.contains(&key.as_str()) {
                    return Err(Error::InvalidConfig {
                        key: key.clone(),
                        value: String::new(),
                        reason: "unknown config key".into(),
                    });
                }
                overrides.remove(key);
            }
            overrides.extend(change.set);
            storage.alter_topic_config(&change.name, &overrides).map(|_| ())
        })
        .await;
        let (error_code, error_message) = result.err().as_ref().map(code_and_message).unwrap_or_default();
        topics.push(TopicResult {
            name,
            error_code,
            error_message,
        });
    }
    AlterConfigsResponse {
        topics,
        ..Default::default()
    }
}

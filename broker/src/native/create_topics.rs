//! CreateTopics: each topic is created (or fails) on its own; `validate_only` checks
//! them as a creation would and creates nothing.

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, TopicResult};

use super::metadata::check_replication_factor;
use super::{blocking, code_and_message};
use crate::error::Error;
use crate::service::Broker;
use crate::storage::NewTopic;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let cfg = &broker.config();
    let names: Vec<String> = req.topics.iter().map(|t| t.name.clone()).collect();
    // Defaults as Kafka's (KIP-464): -1 partitions or replicas means the broker's.
    let partitions: Vec<i64> = req
        .topics
        .iter()
        .map(|t| match t.partitions {
            -1 => i64::from(cfg.num_partitions),
            n => i64::from(n),
        })
        .collect();
    let replicas: Vec<Result<(), Error>> = req
        .topics
        .iter()
        .map(|t| match t.replication_factor {
            0 | -1 => check_replication_factor(broker, i64::from(cfg.default_replication_factor)),
            n => check_replication_factor(broker, i64::from(n)),
        })
        .collect();
    let storage = broker.storage.clone();
    let validate_only = req.validate_only;
    // All topics in one blocking call: their records share one metadata sync.
    let results = blocking(move || {
        let mut results: Vec<Option<Result<(), Error>>> = replicas.into_iter().map(|r| r.err().map(Err)).collect();
        let new: Vec<(usize, NewTopic<'_>)> = req
            .topics
            .iter()
            .enumerate()
            .filter(|(i, _)| results[*i].is_none())
            .map(|(i, t)| {
                let topic = NewTopic {
                    name: &t.name,
                    partitions: partitions[i],
                    overrides: &t.configs,
                };
                (i, topic)
            })
            .collect();
        if validate_only {
            for (i, t) in &new {
                results[*i] = Some(storage.check_new_topic(t).map(|_| ()));
            }
        } else {
            let topics: Vec<NewTopic<'_>> = new.iter().map(|(_, t)| *t).collect();
            for ((i, _), r) in new.iter().zip(storage.create_topics(&topics)) {
                results[*i] = Some(r.map(|_| ()));
            }
        }
        Ok(results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect::<Vec<_>>())
    })
    .await;
    let topics = names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let outcome = match &results {
                Ok(r) => r[i].as_ref().err().map(code_and_message),
                Err(e) => Some(code_and_message(e)),
            };
            let (error_code, error_message) = outcome.unwrap_or_default();
            TopicResult {
                name,
                error_code,
                error_message,
            }
        })
        .collect();
    CreateTopicsResponse {
        topics,
        ..Default::default()
    }
}

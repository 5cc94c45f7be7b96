//! Metadata: brokers, topics, partitions with their leader and offsets; missing topics
//! created when the request allows it (`service::topics::auto_create`).

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{BrokerInfo, MetadataRequest, MetadataResponse, PartitionMetadata, TopicMetadata};

use crate::service::{cluster, topics, Broker};
use crate::storage::Topic;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: MetadataRequest) -> MetadataResponse {
    let not_created = if req.allow_auto_topic_creation {
        topics::auto_create(broker, &req.topics).await
    } else {
        BTreeMap::new()
    };
    let topics = if req.topics.is_empty() {
        topics::all(broker).iter().map(|t| describe(broker, t)).collect()
    } else {
        req.topics
            .iter()
            .map(|name| match topics::topic(broker, name) {
                Some(t) => describe(broker, &t),
                None => {
                    let missing = topics::missing_topic(name, not_created.get(name));
                    TopicMetadata {
                        name: name.clone(),
                        error_code: missing.code.code(),
                        error_message: missing.message,
                        ..Default::default()
                    }
                }
            })
            .collect()
    };
    MetadataResponse {
        brokers: cluster::live_brokers(broker, false)
            .into_iter()
            .map(|(node_id, host, port)| BrokerInfo {
                node_id,
                host,
                port: u32::from(port),
            })
            .collect(),
        controller_id: broker.cluster.controller_id().unwrap_or(-1),
        answered_by: broker.node_id,
        topics,
        ..Default::default()
    }
}

fn describe(broker: &Broker, t: &Topic) -> TopicMetadata {
    TopicMetadata {
        name: t.name.clone(),
        topic_id: t.id.clone(),
        partitions: t
            .partitions
            .iter()
            .enumerate()
            .map(|(p, log)| {
                let l = cluster::leadership(broker, &t.name, p as u32);
                PartitionMetadata {
                    partition: p as u32,
                    error_code: 0,
                    leader_id: l.leader,
                    leader_epoch: l.leader_epoch,
                    log_start_offset: log.start_offset() as i64,
                    log_end_offset: log.end_offset() as i64,
                    size_bytes: log.size_bytes(),
                    replicas: l.replicas,
                    isr: l.isr,
                }
            })
            .collect(),
        ..Default::default()
    }
}

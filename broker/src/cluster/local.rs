//! What a committed metadata record does on this broker: every broker keeps every topic's
//! partition directories (empty where it leads nothing), so that topic lookups, configs
//! and — with replication — follower logs are local. Creating, growing, re-configuring
//! and deleting topics here follows the metadata log; a failure is logged and retried by
//! the next full reconcile (start-up or a snapshot), never undone in the log.

use std::sync::Arc;

use tracing::{error, info, warn};

use super::image::{Image, MetaCommand, TopicRecord};
use crate::storage::{LogManager, NewTopic};

#[derive(Clone)]
pub struct LocalReplicas {
    storage: Arc<LogManager>,
}

impl LocalReplicas {
    pub fn new(storage: Arc<LogManager>) -> LocalReplicas {
        LocalReplicas { storage }
    }

    /// Makes storage follow one applied record (`image`: the image right after it).
    /// Internal topics (`__consumer_offsets`) are the group coordinator's logs, not
    /// storage topics: nothing to do here.
    pub async fn apply(&self, cmd: &MetaCommand, image: &Image) {
        let name = match cmd {
            MetaCommand::CreateTopic { name, .. }
            | MetaCommand::AddPartitions { name, .. }
            | MetaCommand::SetTopicConfigs { name, .. } => name.clone(),
            MetaCommand::DeleteTopic { name } if name.starts_with("__") => return,
            MetaCommand::DeleteTopic { name } => {
                let storage = self.storage.clone();
                let n = name.clone();
                blocking(move || {
                    if storage.topic(&n).is_some() {
                        if let Err(e) = storage.delete_topic(&n) {
                            error!(topic = %n, error = %e, "could not delete the topic's local files");
                        }
                    }
                })
                .await;
                return;
            }
            MetaCommand::InitCluster { .. }
            | MetaCommand::RegisterBroker { .. }
            | MetaCommand::FenceBroker { .. }
            | MetaCommand::SetIsr { .. }
            | MetaCommand::SetScramCredential { .. } => return,
        };
        if name.starts_with("__") {
            return;
        }
        if let Some(t) = image.topics.get(&name) {
            let storage = self.storage.clone();
            let t = t.clone();
            blocking(move || follow(&storage, &name, &t)).await;
        }
    }

    /// Makes storage hold exactly the image's topics (a snapshot installed: records may
    /// have been skipped). Local topics the image does not have are deleted.
    pub async fn reconcile_all(&self, image: &Image) {
        let storage = self.storage.clone();
        let image = image.clone();
        blocking(move || {
            for local in storage.topics() {
                if !image.topics.contains_key(&local.name) {
                    warn!(topic = %local.name, "deleting a local topic the cluster no longer has");
                    if let Err(e) = storage.delete_topic(&local.name) {
                        error!(topic = %local.name, error = %e, "could not delete the topic's local files");
                    }
                }
            }
            for (name, t) in image.topics.iter().filter(|(n, _)| !n.starts_with("__")) {
                follow(&storage, name, t);
            }
        })
        .await;
    }
}

async fn blocking(f: impl FnOnce() + Send + 'static) {
    if tokio::task::spawn_blocking(f).await.is_err() {
        error!("a metadata change's local work panicked");
    }
}

/// Brings the local copy of topic `name` to `t`: created with the cluster's id (an older
/// local topic of the same name but another id is deleted first), grown, re-configured.
fn follow(storage: &LogManager, name: &str, t: &TopicRecord) {
    let mut local = storage.topic(name);
    if local.as_ref().is_some_and(|l| l.id != t.id) {
        info!(topic = name, "replacing a local topic of another incarnation");
        if let Err(e) = storage.delete_topic(name) {
            error!(topic = name, error = %e, "could not delete the old local topic");
            return;
        }
        local = None;
    }
    let wanted = t.partitions.len() as i64;
    let result = match local {
        None => storage
            .create_topics(&[NewTopic {
                name,
                id: Some(&t.id),
                partitions: wanted,
                overrides: &t.configs,
            }])
            .pop()
            .expect("one result per topic")
            .map(|_| ()),
        Some(l) => {
            let mut r = Ok(());
            if (l.partitions.len() as i64) < wanted {
                r = storage.create_partitions(name, wanted).map(|_| ());
            }
            if r.is_ok() && l.overrides != t.configs {
                r = storage.alter_topic_config(name, &t.configs).map(|_| ());
            }
            r
        }
    };
    if let Err(e) = result {
        error!(topic = name, error = %e, "could not make the local copy of the topic follow the cluster");
    }
}

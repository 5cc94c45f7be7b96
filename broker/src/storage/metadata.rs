//! The metadata log: topic records, replayed at start to rebuild the topic registry.
//!
//! It is an ordinary partition log (`__cluster_metadata-0` in the data directory, flush
//! policy `always`, never deleted by retention), so it gets the same framing, CRC checks and
//! crash recovery as data, and a consensus log can carry the same records once brokers
//! replicate (as KRaft does). Each record's value is one JSON object with a `type`
//! (`topic`, `topic_config`, `topic_partitions`, `remove_topic`); JSON keeps it readable with `runnel consume`
//! and easy to extend with new fields.
//!
//! Growth: one record per create, alter or delete. That is small next to data, so the log
//! is not compacted yet; a snapshot (KRaft-style) is the plan when groups add offsets here.

use std::collections::BTreeMap;
use std::sync::Arc;

use runnel_protocol::{BatchBuilder, BatchOptions, Record, RecordBatch};
use serde::{Deserialize, Serialize};

use super::log::{now_ms, PartitionLog};
use crate::error::{Error, Result};

pub(crate) const METADATA_DIR: &str = "__cluster_metadata-0";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum MetadataRecord {
    Topic {
        name: String,
        id: String,
        partitions: u32,
        configs: BTreeMap<String, String>,
    },
    TopicConfig {
        name: String,
        id: String,
        configs: BTreeMap<String, String>,
    },
    RemoveTopic {
        name: String,
        id: String,
    },
    /// The topic grew to `partitions`.
    TopicPartitions {
        name: String,
        id: String,
        partitions: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicMeta {
    pub id: String,
    pub partitions: u32,
    pub configs: BTreeMap<String, String>,
}

/// Appends `record` and waits until it is on disk. Blocking.
pub(crate) fn append(log: &Arc<PartitionLog>, record: &MetadataRecord) -> Result<()> {
    append_all(log, std::slice::from_ref(record))
}

/// Appends `records` as one batch and waits until it is on disk (one sync, shared with
/// any other append waiting at the same time). Blocking.
pub(crate) fn append_all(log: &Arc<PartitionLog>, records: &[MetadataRecord]) -> Result<()> {
    let mut b = BatchBuilder::new(BatchOptions::default());
    let now = now_ms();
    for record in records {
        let value = serde_json::to_vec(record).expect("metadata records serialize");
        b.push(&Record::new(now, None, Some(&value)));
    }
    let mut bytes = b.finish()?;
    let (_, wait) = log.append_durable(&mut bytes)?;
    wait.wait_blocking()
}

/// Replays the whole metadata log into the live topics.
pub(crate) fn replay(log: &PartitionLog) -> Result<BTreeMap<String, TopicMeta>> {
    let mut topics = BTreeMap::new();
    let mut next = log.start_offset();
    loop {
        let Some(region) = log.read(next, 1 << 20)?.region else {
            break;
        };
        let bytes = region
            .read_to_vec()
            .map_err(Error::io("read metadata log", log.dir()))?;
        for batch in RecordBatch::split_all(bytes.into())? {
            for rec in batch.records()? {
                let value = rec.value.unwrap_or_default();
                let record: MetadataRecord = serde_json::from_slice(&value)
                    .map_err(|e| Error::CorruptMetadata(format!("record at offset {}: {e}", rec.offset)))?;
                apply(&mut topics, record);
            }
            next = batch.header().next_offset() as u64;
        }
    }
    Ok(topics)
}

fn apply(topics: &mut BTreeMap<String, TopicMeta>, record: MetadataRecord) {
    match record {
        MetadataRecord::Topic {
            name,
            id,
            partitions,
            configs,
        } => {
            topics.insert(
                name,
                TopicMeta {
                    id,
                    partitions,
                    configs,
                },
            );
        }
        MetadataRecord::TopicConfig { name, id, configs } => {
            if let Some(t) = topics.get_mut(&name).filter(|t| t.id == id) {
                t.configs = configs;
            }
        }
        MetadataRecord::TopicPartitions { name, id, partitions } => {
            if let Some(t) = topics.get_mut(&name).filter(|t| t.id == id) {
                t.partitions = t.partitions.max(partitions);
            }
        }
        MetadataRecord::RemoveTopic { name, id } => {
            if topics.get(&name).is_some_and(|t| t.id == id) {
                topics.remove(&name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_tagged_json() {
        let r = MetadataRecord::RemoveTopic {
            name: "a".into(),
            id: "x".into(),
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(s, r#"{"type":"remove_topic","name":"a","id":"x"}"#);
        assert_eq!(serde_json::from_str::<MetadataRecord>(&s).unwrap(), r);
    }

    #[test]
    fn remove_of_an_older_incarnation_is_ignored() {
        let mut t = BTreeMap::new();
        let topic = |id: &str| MetadataRecord::Topic {
            name: "t".into(),
            id: id.into(),
            partitions: 1,
            configs: BTreeMap::new(),
        };
        apply(&mut t, topic("1"));
        apply(
            &mut t,
            MetadataRecord::RemoveTopic {
                name: "t".into(),
                id: "1".into(),
            },
        );
        apply(&mut t, topic("2"));
        apply(
            &mut t,
            MetadataRecord::RemoveTopic {
                name: "t".into(),
                id: "1".into(),
            },
        );
        assert_eq!(t["t"].id, "2");
    }
}

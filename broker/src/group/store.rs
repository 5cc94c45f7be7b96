//! The offsets log: how group state becomes records and comes back at start.
//!
//! Each record's key is a `GroupLogKey` (protobuf; see `protocol/proto/group_log.proto`):
//! a committed offset per (group, topic, partition), and one membership record per group
//! (members, epochs, owned partitions, target). The latest record of a key wins; a record
//! without a value deletes the key. Records are appended under the group's shard lock,
//! so the log's order is the order of the changes, and acknowledged only once durable
//! (the log syncs every append; concurrent commits share a sync) and replicated to the
//! partition's in-sync replicas, as an acks=all produce.
//!
//! Bounded size: once a partition of the log has taken more than
//! `max(offsets_segment_bytes, 2 × live state)` bytes since its last snapshot, the
//! coordinator appends a snapshot — every live key once more — and, when that is durable,
//! deletes every segment that lies wholly before it. Replaying from the log start still
//! sees each key's latest value, so the log holds about the live state, the records since
//! the last snapshot and one partly filled segment. Writing a snapshot costs at most half
//! of what was appended since the previous one.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use runnel_protocol::group_log::{
    ClassicGroupValue, ClassicMemberValue, ClassicProtocol, GroupLogKey, GroupValue, MemberValue, OffsetValue,
    OwnedPartition, TargetPartition, TopicCount,
};
use runnel_protocol::{BatchBuilder, BatchOptions, RecordBatch};
use tracing::warn;

use super::assignor::{Assignor, Tp};
use super::classic::{Classic, ClassicMember, ClassicState};
use super::state::{compile_regex, Committed, Member};
use super::Group;
use super::GroupConfig;
use crate::error::{Error, Result};
use crate::storage::{DurableWait, FlushPolicy, LogConfig, PartitionLog};

const KIND_OFFSET: u32 = 0;
const KIND_GROUP: u32 = 1;
/// Records per batch written; a batch stays well under `max.message.bytes`.
const BATCH_BYTES: usize = 512 * 1024;

pub fn log_config(cfg: &GroupConfig) -> LogConfig {
    LogConfig {
        segment_bytes: cfg.offsets_segment_bytes,
        flush_policy: FlushPolicy::Always,
        retention_ms: -1,
        retention_bytes: -1,
        max_message_bytes: 64 << 20,
        ..LogConfig::default()
    }
}

/// Records to append, as (key, value) pairs; `None` deletes the key.
#[derive(Default)]
pub struct Records(Vec<(Vec<u8>, Option<Vec<u8>>)>);

impl Records {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn offset(&mut self, group: &str, tp: &Tp, committed: Option<&Committed>) {
        let key = GroupLogKey {
            kind: KIND_OFFSET,
            group_id: group.to_owned(),
            topic: tp.0.clone(),
            partition: tp.1,
        };
        let value = committed.map(|c| {
            OffsetValue {
                offset: c.offset,
                metadata: c.metadata.clone(),
                commit_timestamp_ms: c.commit_timestamp_ms,
            }
            .encode_to_vec()
        });
        self.0.push((key.encode_to_vec(), value));
    }

    pub fn group(&mut self, group: &str, state: Option<&Group>) {
        let key = GroupLogKey {
            kind: KIND_GROUP,
            group_id: group.to_owned(),
            ..GroupLogKey::default()
        };
        self.0
            .push((key.encode_to_vec(), state.map(|g| group_value(g).encode_to_vec())));
    }

    /// Appends the records (in batches) to `log`; returns the bytes written and the wait
    /// for all of them to be durable and held by every in-sync replica.
    pub fn append_to(self, log: &std::sync::Arc<PartitionLog>) -> Result<(u64, DurableWait)> {
        let now = crate::storage::log::now_ms();
        let mut written = 0u64;
        let mut builder = BatchBuilder::new(BatchOptions::default());
        let mut batches = Vec::new();
        for (key, value) in &self.0 {
            builder.push_parts(now, Some(key), value.as_deref(), &[]);
            if builder.uncompressed_bytes() >= BATCH_BYTES {
                batches.push(std::mem::replace(
                    &mut builder,
                    BatchBuilder::new(BatchOptions::default()),
                ));
            }
        }
        if !builder.is_empty() {
            batches.push(builder);
        }
        let mut end = 0;
        for b in batches {
            let mut buf = b.finish()?;
            written += buf.len() as u64;
            end = log.append(&mut buf)?.last_offset + 1;
        }
        Ok((written, log.wait_acknowledged(end)))
    }
}

fn group_value(g: &Group) -> GroupValue {
    GroupValue {
        empty_since_ms: g.empty_since_ms.unwrap_or(0),
        group_epoch: g.epoch,
        assignment_epoch: g.assignment_epoch,
        assignor: g.assignor.name().to_owned(),
        members: g
            .members
            .values()
            .map(|m| MemberValue {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone().unwrap_or_default(),
                member_epoch: m.epoch,
                previous_epoch: m.previous_epoch,
                session_timeout_ms: m.session_timeout_ms,
                subscribed_topics: m.topics.iter().cloned().collect(),
                subscribed_topic_regex: m.regex_str().to_owned(),
                owned: m
                    .owned
                    .iter()
                    .map(|((topic, partition), since)| OwnedPartition {
                        topic: topic.clone(),
                        partition: *partition,
                        since_epoch: *since,
                    })
                    .collect(),
                target: g
                    .target
                    .get(&m.id)
                    .into_iter()
                    .flatten()
                    .map(|(topic, partition)| TargetPartition {
                        topic: topic.clone(),
                        partition: *partition,
                    })
                    .collect(),
                left: m.left,
            })
            .collect(),
        topics: g
            .topics
            .iter()
            .map(|(topic, n)| TopicCount {
                topic: topic.clone(),
                partitions: *n,
            })
            .collect(),
        classic: (g.classic.generation > 0 || !g.classic.members.is_empty()).then(|| classic_value(&g.classic)),
    }
}

fn classic_value(c: &Classic) -> ClassicGroupValue {
    ClassicGroupValue {
        generation: c.generation,
        state: c.state.name().to_owned(),
        protocol_type: c.protocol_type.clone(),
        protocol: c.protocol.clone(),
        leader: c.leader.clone(),
        members: c
            .members
            .values()
            .map(|m| ClassicMemberValue {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone().unwrap_or_default(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocols: m
                    .protocols
                    .iter()
                    .map(|(name, metadata)| ClassicProtocol {
                        name: name.clone(),
                        metadata: metadata.to_vec(),
                    })
                    .collect(),
                assignment: m.assignment.to_vec(),
            })
            .collect(),
    }
}

fn restore_classic(v: ClassicGroupValue, now: Instant) -> Classic {
    let members = v
        .members
        .into_iter()
        .map(|m| ClassicMember {
            id: m.member_id,
            instance_id: (!m.instance_id.is_empty()).then_some(m.instance_id),
            client_id: m.client_id,
            client_host: m.client_host,
            session_timeout_ms: m.session_timeout_ms,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            protocols: m
                .protocols
                .into_iter()
                .map(|p| (p.name, Bytes::from(p.metadata)))
                .collect(),
            assignment: Bytes::from(m.assignment),
            deadline: now + Duration::from_millis(m.session_timeout_ms as u64),
            synced: true,
        })
        .collect();
    Classic::restore(
        v.generation,
        ClassicState::parse(&v.state).unwrap_or(ClassicState::PreparingRebalance),
        v.protocol_type,
        v.protocol,
        v.leader,
        members,
        now,
    )
}

/// Restores membership from a record. Sessions restart now: members that do not come
/// back within their session timeout expire as usual.
fn apply_group_value(g: &mut Group, v: GroupValue, now: Instant) {
    g.epoch = v.group_epoch;
    g.assignment_epoch = v.assignment_epoch;
    g.assignor = Assignor::parse(&v.assignor).unwrap_or(Assignor::DEFAULT);
    g.topics = v.topics.into_iter().map(|t| (t.topic, t.partitions)).collect();
    g.members.clear();
    g.target.clear();
    g.classic = v.classic.map(|c| restore_classic(c, now)).unwrap_or_default();
    g.empty_since_ms = (v.empty_since_ms > 0).then_some(v.empty_since_ms);
    for m in v.members {
        let regex = (!m.subscribed_topic_regex.is_empty())
            .then(|| compile_regex(&m.subscribed_topic_regex).ok())
            .flatten();
        g.target.insert(
            m.member_id.clone(),
            m.target
                .into_iter()
                .map(|t| (t.topic, t.partition))
                .collect::<BTreeSet<Tp>>(),
        );
        g.members.insert(
            m.member_id.clone(),
            Member {
                id: m.member_id,
                instance_id: (!m.instance_id.is_empty()).then_some(m.instance_id),
                epoch: m.member_epoch,
                previous_epoch: m.previous_epoch,
                session_timeout_ms: m.session_timeout_ms,
                topics: m.subscribed_topics.into_iter().collect(),
                regex,
                owned: m
                    .owned
                    .into_iter()
                    .map(|o| ((o.topic, o.partition), o.since_epoch))
                    .collect(),
                left: m.left,
                deadline: now + Duration::from_millis(m.session_timeout_ms as u64),
                rebalance_timeout_ms: super::state::DEFAULT_REBALANCE_TIMEOUT_MS,
                revoking_since: None,
            },
        );
    }
}

/// Rebuilds the groups of one offsets-log partition; returns them and the bytes read.
pub fn replay(log: &PartitionLog, now: Instant) -> Result<(HashMap<String, Group>, u64)> {
    let mut groups: HashMap<String, Group> = HashMap::new();
    let mut offset = log.start_offset();
    let mut bytes = 0u64;
    while offset < log.end_offset() {
        let Some(region) = log.read(offset, 1 << 20)?.region else {
            break;
        };
        let buf = region.read_to_vec().map_err(Error::io("read offsets log", log.dir()))?;
        bytes += buf.len() as u64;
        let batches = RecordBatch::split_all(Bytes::from(buf))?;
        for batch in batches {
            for r in batch.records()? {
                if (r.offset as u64) < offset {
                    continue;
                }
                if !apply_record(&mut groups, r.key.as_deref(), r.value.as_deref(), now) {
                    warn!(log = %log.dir().display(), offset = r.offset, "skipping offsets-log record without a readable key");
                }
            }
            offset = offset.max(batch.header().next_offset() as u64);
        }
    }
    groups.retain(|_, g| !g.is_dead());
    Ok((groups, bytes))
}

/// Applies one offsets-log record (key and value as stored) to `groups`; false, changing
/// nothing, when the key cannot be read.
pub fn apply_record(
    groups: &mut HashMap<String, Group>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    now: Instant,
) -> bool {
    match key.and_then(|k| GroupLogKey::decode(k).ok()) {
        Some(key) => {
            apply(groups, key, value, now);
            true
        }
        None => false,
    }
}

fn apply(groups: &mut HashMap<String, Group>, key: GroupLogKey, value: Option<&[u8]>, now: Instant) {
    let g = groups
        .entry(key.group_id.clone())
        .or_insert_with(|| Group::new(&key.group_id));
    match key.kind {
        KIND_OFFSET => {
            let tp = (key.topic, key.partition);
            match value.and_then(|v| OffsetValue::decode(v).ok()) {
                Some(v) => {
                    g.offsets.insert(
                        tp,
                        Committed {
                            offset: v.offset,
                            metadata: v.metadata,
                            commit_timestamp_ms: v.commit_timestamp_ms,
                        },
                    );
                }
                None => {
                    g.offsets.remove(&tp);
                }
            }
        }
        KIND_GROUP => match value.and_then(|v| GroupValue::decode(v).ok()) {
            Some(v) => apply_group_value(g, v, now),
            None => {
                g.members.clear();
                g.target.clear();
                g.classic = Classic::default();
            }
        },
        other => warn!(kind = other, group = %key.group_id, "skipping offsets-log record of unknown kind"),
    }
}

/// Every live key of these groups once more.
pub fn snapshot<'a>(groups: impl Iterator<Item = &'a Group>) -> Records {
    let mut records = Records::default();
    for g in groups {
        if !g.members.is_empty() || g.epoch > 0 || g.classic.generation > 0 || g.empty_since_ms.is_some() {
            records.group(&g.id, Some(g));
        }
        for (tp, c) in &g.offsets {
            records.offset(&g.id, tp, Some(c));
        }
    }
    records
}

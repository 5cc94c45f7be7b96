//! The group shell: one consumer group's members, epochs, target assignment and
//! committed offsets, shared by both protocols — the consumer protocol (KIP-848,
//! `consumer`: join, keep-alive, leave, reconciliation) and the classic protocol
//! (`super::classic`, reached only through [`ClassicMembers`]), which depend on it, never
//! the reverse. No I/O: the coordinator calls in with the time and the topic catalog,
//! persists what changed, and answers the member.
//!
//! Epochs. The group epoch rises whenever membership, a subscription or a subscribed
//! topic's partition count changes; the target assignment is recomputed at that epoch
//! (`assignment_epoch`). A member's epoch follows the assignment epoch once it has
//! released everything the new target takes from it.
//!
//! Handover. A partition is owned by at most one member at a time. A member that must give
//! up partitions is sent its assignment without them and keeps its epoch; the partitions
//! are freed only when its next heartbeat no longer lists them in `owned` (after it has
//! committed their offsets). A member whose target holds a partition someone else still
//! owns gets it on a later heartbeat, once freed; until then it is told to heartbeat
//! soon. Meanwhile everyone keeps consuming the partitions that do not move.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use regex::Regex;

use super::assignor::{Assignment, Assignor, MemberSpec, Tp};
use super::error::GroupErrorKind;
pub use super::error::{GroupError, GroupResult};

pub const JOIN_EPOCH: i32 = 0;
pub const LEAVE_EPOCH: i32 = -1;
pub const STATIC_LEAVE_EPOCH: i32 = -2;

#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub session_timeout_ms: u32,
    pub topics: BTreeSet<String>,
    pub regex: Option<Regex>,
    /// What it holds, with the member epoch at which it received each partition.
    pub owned: BTreeMap<Tp, i32>,
    /// Left as a static member: waits (without heartbeats) for its instance to return.
    pub left: bool,
    pub deadline: Instant,
    pub rebalance_timeout_ms: u32,
    /// Since when it has been told to release partitions it still holds.
    pub revoking_since: Option<Instant>,
}

impl Member {
    /// Its subscription resolved against the topic catalog.
    pub fn subscribed(&self, catalog: &BTreeMap<String, u32>) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self
            .topics
            .iter()
            .filter(|t| catalog.contains_key(*t))
            .cloned()
            .collect();
        if let Some(re) = &self.regex {
            out.extend(
                catalog
                    .keys()
                    .filter(|t| !t.starts_with("__") && re.is_match(t))
                    .cloned(),
            );
        }
        out
    }

    pub fn regex_str(&self) -> &str {
        self.regex.as_ref().map_or("", |r| {
            let s = r.as_str();
            // Stored anchored as ^(?:...)$; show what the member sent.
            s.strip_prefix("^(?:").and_then(|s| s.strip_suffix(")$")).unwrap_or(s)
        })
    }
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// A heartbeat, in the coordinator's terms.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub session_timeout_ms: u32,
    /// 0: [`DEFAULT_REBALANCE_TIMEOUT_MS`].
    pub rebalance_timeout_ms: u32,
    pub topics: BTreeSet<String>,
    pub regex: Option<String>,
    pub assignor: Option<String>,
    pub owned: BTreeSet<Tp>,
}

/// How long a member may hold partitions it was told to release (Kafka's default
/// `max.poll.interval.ms`).
pub const DEFAULT_REBALANCE_TIMEOUT_MS: u32 = 300_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub member_id: String,
    pub member_epoch: i32,
    /// Still moving partitions to or from this member: heartbeat again soon.
    pub reconciling: bool,
    pub assignment: BTreeSet<Tp>,
}

/// What the group shell needs of the classic protocol's state, which `classic`
/// implements: the shell depends on no protocol; the protocols depend on it.
pub trait ClassicMembers: Default + std::fmt::Debug {
    /// No member speaks the classic protocol.
    fn is_empty(&self) -> bool;
    /// How many classic members there are.
    fn len(&self) -> usize;
    /// Kafka's name for the classic group's state.
    fn state_name(&self) -> &'static str;
    /// The topics the classic members subscribe to; `Err(protocol type)` when their
    /// subscriptions cannot be read (a protocol type other than `consumer`).
    fn subscribed_topics(&self) -> Result<BTreeSet<String>, String>;
    /// Whether a classic member's commit (at its generation) is accepted.
    fn check_commit(&self, member_id: &str, generation: i32, instance_id: Option<&str>) -> GroupResult<()>;
}

/// A group: its consumer-protocol members and assignment, its committed offsets, and its
/// classic members (`C`; the coordinator uses `classic::Classic`).
#[derive(Debug)]
pub struct Group<C> {
    pub id: String,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: Assignor,
    pub members: BTreeMap<String, Member>,
    pub target: Assignment,
    /// Partition counts of the subscribed topics the target was computed for.
    pub topics: BTreeMap<String, u32>,
    pub offsets: BTreeMap<Tp, Committed>,
    /// Members of the classic protocol (Kafka's JoinGroup/SyncGroup). A group has
    /// members of one protocol at a time; its offsets are shared.
    pub classic: C,
    /// When the group lost its last member (ms since the epoch); `None` while it has
    /// members (or until the next tick notices it has none).
    pub empty_since_ms: Option<i64>,
    /// Membership changed since it was last persisted.
    pub dirty: bool,
    /// Bumped, and `changed` notified, whenever a membership change is persisted: wakes
    /// long-polling heartbeats.
    pub version: u64,
    pub changed: std::sync::Arc<tokio::sync::Notify>,
}

/// Anchors a subscription regex to the whole topic name, as Kafka's pattern matching does.
pub fn compile_regex(pattern: &str) -> GroupResult<Regex> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        GroupError::new(
            GroupErrorKind::InvalidRegularExpression,
            format!("invalid topic regex {pattern:?}: {e}"),
        )
    })
}

impl<C: ClassicMembers> Group<C> {
    pub fn new(id: &str) -> Group<C> {
        Group {
            id: id.to_owned(),
            epoch: 0,
            assignment_epoch: 0,
            assignor: Assignor::DEFAULT,
            members: BTreeMap::new(),
            target: Assignment::new(),
            topics: BTreeMap::new(),
            offsets: BTreeMap::new(),
            classic: Default::default(),
            empty_since_ms: None,
            dirty: false,
            version: 0,
            changed: Default::default(),
        }
    }

    /// `empty`, `reconciling` (someone holds other than its target) or `stable`.
    /// Classic groups report Kafka's classic state names.
    pub fn state(&self) -> &'static str {
        if self.is_classic() {
            self.classic.state_name()
        } else if self.members.is_empty() {
            "empty"
        } else if self.members.values().any(|m| {
            let target = self.target.get(&m.id);
            m.owned.len() != target.map_or(0, |t| t.len())
                || !m.owned.keys().all(|tp| target.is_some_and(|t| t.contains(tp)))
        }) {
            "reconciling"
        } else {
            "stable"
        }
    }

    /// Notes when the group became empty (a member arriving clears it) and, once it has
    /// been empty for `retention_ms`, removes and returns the offsets committed longer
    /// than that ago. With members, and given the topic `catalog`, it removes the offsets
    /// committed that long ago of topics no member subscribes to (none while a member's
    /// subscription cannot be read). 0 keeps offsets for ever.
    pub fn expire_offsets(
        &mut self,
        now_ms: i64,
        retention_ms: u64,
        catalog: Option<&BTreeMap<String, u32>>,
    ) -> Vec<Tp> {
        let empty = self.members.is_empty() && self.classic.is_empty();
        match (empty, self.empty_since_ms) {
            (true, None) => {
                self.empty_since_ms = Some(now_ms);
                self.dirty = true;
            }
            (false, Some(_)) => {
                self.empty_since_ms = None;
                self.dirty = true;
            }
            _ => {}
        }
        if retention_ms == 0 {
            return Vec::new();
        }
        let retention = retention_ms.min(i64::MAX as u64) as i64;
        let expired: Vec<Tp> = match (self.empty_since_ms, catalog) {
            (Some(since), _) if now_ms.saturating_sub(since) >= retention => self
                .offsets
                .iter()
                .filter(|(_, c)| now_ms.saturating_sub(c.commit_timestamp_ms.max(since)) >= retention)
                .map(|(tp, _)| tp.clone())
                .collect(),
            (None, Some(catalog)) => {
                let Ok(subscribed) = self.subscribed_topics(catalog) else {
                    return Vec::new();
                };
                self.offsets
                    .iter()
                    .filter(|((topic, _), c)| {
                        !subscribed.contains(topic) && now_ms.saturating_sub(c.commit_timestamp_ms) >= retention
                    })
                    .map(|(tp, _)| tp.clone())
                    .collect()
            }
            _ => return Vec::new(),
        };
        for tp in &expired {
            self.offsets.remove(tp);
        }
        expired
    }

    /// Whether the group holds nothing worth keeping.
    pub fn is_dead(&self) -> bool {
        self.members.is_empty() && self.classic.is_empty() && self.offsets.is_empty()
    }

    /// Every topic some member consumes. For a classic group that means reading its
    /// members' `consumer`-protocol subscriptions; other protocol types are opaque.
    pub fn subscribed_topics(&self, catalog: &BTreeMap<String, u32>) -> GroupResult<BTreeSet<String>> {
        let mut out: BTreeSet<String> = self.members.values().flat_map(|m| m.subscribed(catalog)).collect();
        let classic = self.classic.subscribed_topics().map_err(|protocol_type| {
            GroupError::new(
                GroupErrorKind::NonEmptyGroup,
                format!(
                    "group {} has members of protocol type {protocol_type:?} whose subscriptions the broker cannot read",
                    self.id
                ),
            )
        })?;
        out.extend(classic);
        Ok(out)
    }

    /// Whether its members speak the classic protocol.
    pub fn is_classic(&self) -> bool {
        !self.classic.is_empty()
    }

    pub fn owner_of(&self, tp: &Tp) -> Option<&str> {
        self.members
            .values()
            .find(|m| m.owned.contains_key(tp))
            .map(|m| m.id.as_str())
    }

    /// Whether a commit for `tp` from this member (at this epoch) is accepted. An admin
    /// (empty member id, negative epoch) commits only while the group has no members.
    /// Classic members commit with their generation (and static ones with their instance
    /// id, `instance_id`).
    pub fn check_commit(&self, member_id: &str, epoch: i32, instance_id: Option<&str>, tp: &Tp) -> GroupResult<()> {
        if member_id.is_empty() {
            let members = self.members.len() + self.classic.len();
            if members > 0 {
                return Err(GroupError::new(
                    GroupErrorKind::NonEmptyGroup,
                    format!(
                        "group {} has {members} member(s); stop them before changing its offsets",
                        self.id,
                    ),
                ));
            }
            return Ok(());
        }
        if self.is_classic() {
            return self.classic.check_commit(member_id, epoch, instance_id);
        }
        let m = self
            .members
            .get(member_id)
            .ok_or_else(|| unknown_member(&self.id, member_id))?;
        if epoch > m.epoch {
            return Err(GroupError::new(
                GroupErrorKind::FencedMemberEpoch,
                format!(
                    "member {member_id} committed with epoch {epoch}; its epoch is {}",
                    m.epoch
                ),
            ));
        }
        match m.owned.get(tp) {
            Some(since) if epoch >= *since => Ok(()),
            Some(since) => Err(GroupError::new(
                GroupErrorKind::StaleMemberEpoch,
                format!(
                    "member {member_id} committed {}-{} with epoch {epoch}, older than the epoch {since} it received the partition in",
                    tp.0, tp.1
                ),
            )),
            None => Err(GroupError::new(
                GroupErrorKind::StaleMemberEpoch,
                format!(
                    "member {member_id} (epoch {epoch}) does not own {}-{}: it was reassigned, so this commit is rejected",
                    tp.0, tp.1
                ),
            )),
        }
    }
}

fn rebalance_timeout(ms: u32) -> u32 {
    if ms == 0 {
        DEFAULT_REBALANCE_TIMEOUT_MS
    } else {
        ms
    }
}

fn unknown_member(group: &str, member: &str) -> GroupError {
    GroupError::new(
        GroupErrorKind::UnknownMemberId,
        format!("group {group} has no member {member:?} (it left or its session expired): rejoin"),
    )
}

mod consumer;

#[cfg(test)]
mod tests;

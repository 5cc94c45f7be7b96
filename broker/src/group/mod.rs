//! The group coordinator: consumer groups with server-side, incremental assignment (the
//! design of Kafka's KIP-848) and committed offsets kept in an internal log.
//!
//! - [`assignor`]: `range` and `uniform`, pure functions of subscriptions and topics
//! - [`state`]: one group's members, epochs, target assignment and handover rules
//! - [`classic`]: Kafka's JoinGroup/SyncGroup protocol for the same groups (a group's
//!   members all speak one protocol; offsets are shared)
//! - [`store`]: the offsets log's records, replay at start, and snapshots that bound it
//! - this file: [`Coordinator`], which owns the groups, serialises each group's changes,
//!   persists them before answering, and expires members whose session ended
//!
//! Group → coordinator. A group lives in one partition of the offsets log,
//! `partition_for(group)` — Kafka's rule, `abs(java_hash(group)) % partitions` — and the
//! leader of that partition is its coordinator. On one broker every partition is local;
//! a cluster spreads the offsets partitions, and so the groups, over its brokers, and
//! `FindCoordinator` tells clients where each group lives.

pub mod assignor;
pub mod classic;
pub mod error;
pub mod lag;
mod ownership;
pub mod state;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::error::Result;
use crate::storage::{DurableWait, LogManager, PartitionLog};
pub use assignor::{Assignment, Assignor, Tp};
pub use classic::{ClassicMember, ClassicState, Delivery, JoinRequest, JoinResult, SyncRequest, SyncResult};
use error::GroupErrorKind;
use ownership::Loaded;
pub use ownership::{Leadership, Ownership};
pub use state::{Committed, GroupError, GroupResult, Heartbeat, HeartbeatReply, Member};

/// A group as the coordinator keeps it: the shell with the classic protocol's members.
pub type Group = state::Group<classic::Classic>;
use store::Records;

/// Directory name prefix of the offsets log's partitions (`__consumer_offsets-3`).
pub const OFFSETS_LOG: &str = "__consumer_offsets";
/// Partitions of the offsets log. Fixed: changing it would move groups away from their
/// offsets. Several partitions keep groups independent (one lock and one log each).
pub const OFFSETS_PARTITIONS: u32 = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// Bounds on the session timeout a member asks for (Kafka's
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`).
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    /// When the member asks for none.
    pub default_session_timeout_ms: u32,
    /// The heartbeat interval given to members (at most a third of their session).
    pub heartbeat_interval_ms: u32,
    /// The interval while partitions are moving to or from the member, so handovers
    /// take milliseconds rather than a heartbeat interval.
    pub reconcile_heartbeat_interval_ms: u32,
    /// Longest commit metadata (Kafka's `offset.metadata.max.bytes`).
    pub max_metadata_bytes: usize,
    /// Segment size of the offsets log; the log is snapshotted and its older segments
    /// deleted once about this much (or twice the live state) has been written.
    pub offsets_segment_bytes: u64,
    /// How often sessions are checked and snapshots considered.
    pub tick_ms: u64,
    /// How long a classic group starting from empty waits for more members before its
    /// first rebalance completes (Kafka's `group.initial.rebalance.delay.ms`, 3 s there;
    /// shorter here so a lone consumer gets records quickly).
    pub initial_rebalance_delay_ms: u32,
    /// How long the committed offsets of a group without members are kept (Kafka's
    /// `offsets.retention.minutes`, 7 days): from when it lost its last member, or from
    /// the commit if that is later. A group with members loses, as long after their
    /// commit, the offsets of topics none of them subscribes to any more. 0 keeps
    /// offsets for ever.
    pub offsets_retention_ms: u64,
    /// How often groups with members are checked for such offsets (Kafka's
    /// `offsets.retention.check.interval.ms`, 10 min); empty groups on every tick.
    pub offsets_retention_check_interval_ms: u64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 1_000,
            max_session_timeout_ms: 300_000,
            default_session_timeout_ms: 45_000,
            heartbeat_interval_ms: 3_000,
            reconcile_heartbeat_interval_ms: 100,
            max_metadata_bytes: 4096,
            offsets_segment_bytes: 16 << 20,
            tick_ms: 100,
            initial_rebalance_delay_ms: 1_000,
            offsets_retention_ms: 7 * 24 * 3_600_000,
            offsets_retention_check_interval_ms: 600_000,
        }
    }
}

/// Kafka's group → offsets partition: `Utils.abs(groupId.hashCode()) % partitions`, with
/// Java's `String.hashCode` over UTF-16 code units.
pub fn partition_for(group: &str) -> u32 {
    let h = group
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32));
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs as u32 % OFFSETS_PARTITIONS
}

/// One offsets-log partition and the groups it holds.
///
/// Concurrency: `state` covers the shard's groups and its snapshot bookkeeping. It is
/// held across the offsets log's append (`Coordinator::write`) and while a snapshot's
/// records are built, on purpose: the log's order must be the order of the state
/// changes (a commit applied after another must land after it), and a snapshot must be
/// a consistent cut. Both are bounded: the append is a page-cache `write(2)` of a few
/// records (never `fdatasync`: durability is awaited after the lock is released), and a
/// snapshot copies only this shard's live keys, one eighth of the groups. No `.await`
/// happens under it. Requests of groups in other shards are not held up.
struct Shard {
    index: u32,
    log: Arc<PartitionLog>,
    state: Mutex<ShardState>,
}

#[derive(Default)]
struct ShardState {
    /// Whose groups these are; requests are served only while it matches the
    /// partition's current leadership (checked under this lock).
    loaded: Loaded,
    groups: HashMap<String, Group>,
    /// Record bytes appended since the last snapshot began.
    since_snapshot: u64,
    /// Size of the last snapshot: the live state.
    snapshot_bytes: u64,
}

/// A group in a listing.
#[derive(Debug, Clone)]
pub struct GroupListing {
    pub id: String,
    pub state: &'static str,
    pub members: usize,
    /// The assignor (consumer protocol) or the classic protocol chosen (`range`,
    /// `cooperative-sticky`, ...).
    pub assignor: String,
    /// `classic` (JoinGroup members, or offsets only) or `consumer`, as Kafka's
    /// ListGroups names group types.
    pub kind: &'static str,
    pub protocol_type: String,
}

/// A classic group's generation and members.
#[derive(Debug, Clone)]
pub struct ClassicSnapshot {
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: String,
    pub leader: String,
    pub members: Vec<ClassicMember>,
}

/// A group as described to admins.
#[derive(Debug, Clone)]
pub struct GroupSnapshot {
    pub id: String,
    pub state: &'static str,
    pub assignor: Assignor,
    /// Set when its members speak the classic protocol (then `members` is empty).
    pub classic: Option<ClassicSnapshot>,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub members: Vec<Member>,
    pub target: Assignment,
    pub offsets: BTreeMap<Tp, Committed>,
    pub offsets_partition: u32,
}

/// A partition's outcome in a commit.
pub type CommitResult = (Tp, GroupResult<()>);

/// One committed-offset request entry.
#[derive(Debug, Clone)]
pub struct OffsetCommit {
    pub tp: Tp,
    pub offset: i64,
    pub metadata: String,
}

/// Owns every group (sharded by offsets-log partition: [`partition_for`]). Shared by
/// every request task and the tick task; each shard's lock covers its groups (see
/// `Shard`), `retention_checked` only the time of the last offsets-retention pass.
pub struct Coordinator {
    storage: Arc<LogManager>,
    config: GroupConfig,
    shards: Vec<Shard>,
    /// When groups with members were last checked for unsubscribed offsets.
    retention_checked: Mutex<Instant>,
    /// Set by a cluster; without one this broker coordinates every group.
    ownership: OnceLock<Ownership>,
}

/// A shard's state, its poison ignored (`crate::sync`): group state changes are applied
/// whole before the lock is released.
fn lock(shard: &Shard) -> MutexGuard<'_, ShardState> {
    crate::sync::lock(&shard.state)
}

impl Coordinator {
    /// Opens the offsets log and rebuilds every group from it. Blocking.
    pub fn open(storage: Arc<LogManager>, config: GroupConfig) -> Result<Arc<Coordinator>> {
        let started = Instant::now();
        let mut shards = Vec::with_capacity(OFFSETS_PARTITIONS as usize);
        let mut groups = 0;
        for p in 0..OFFSETS_PARTITIONS {
            let log = storage.internal_log(&format!("{OFFSETS_LOG}-{p}"), store::log_config(&config))?;
            let (state, bytes) = store::replay(&log, Instant::now())?;
            groups += state.len();
            shards.push(Shard {
                index: p,
                log,
                state: Mutex::new(ShardState {
                    loaded: Loaded::Open,
                    groups: state,
                    since_snapshot: bytes,
                    snapshot_bytes: 0,
                }),
            });
        }
        info!(
            groups,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "group coordinator loaded"
        );
        Ok(Arc::new(Coordinator {
            storage,
            config,
            shards,
            retention_checked: Mutex::new(Instant::now()),
            ownership: OnceLock::new(),
        }))
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    fn shard(&self, group: &str) -> &Shard {
        &self.shards[partition_for(group) as usize]
    }

    /// Topic name → partition count, for subscriptions.
    fn catalog(&self) -> BTreeMap<String, u32> {
        self.storage
            .topics()
            .iter()
            .map(|t| (t.name.clone(), t.partitions.len() as u32))
            .collect()
    }

    /// The group's change counter and the `Notify` fired when it moves (for long polls).
    pub fn watch(&self, group_id: &str) -> Option<(u64, Arc<tokio::sync::Notify>)> {
        let shard = self.shard(group_id);
        let mut st = lock(shard);
        self.check_owned(shard, &mut st, group_id).ok()?;
        st.groups.get(group_id).map(|g| (g.version, g.changed.clone()))
    }

    /// Handles one heartbeat. Returns the reply with the heartbeat interval to give the
    /// member, and the wait for the change to be durable (answer only after it).
    pub fn heartbeat(&self, group_id: &str, mut hb: Heartbeat) -> (GroupResult<(HeartbeatReply, u32)>, DurableWait) {
        if let Err(e) = check_group_id(group_id) {
            return (Err(e), DurableWait::ready());
        }
        if hb.session_timeout_ms == 0 {
            hb.session_timeout_ms = self.config.default_session_timeout_ms;
        }
        let session = hb.session_timeout_ms;
        if let Err(e) = self.check_session(session) {
            return (Err(e), DurableWait::ready());
        }
        let catalog = self.catalog();
        let changed = self.change(group_id, |group, _| {
            group.heartbeat(hb, Instant::now(), &catalog, || uuid::Uuid::new_v4().to_string())
        });
        let (result, wait) = match changed {
            Ok(done) => done,
            Err(e) => return (Err(e), DurableWait::ready()),
        };
        let interval = match &result {
            Ok(r) if r.reconciling => self.config.reconcile_heartbeat_interval_ms,
            _ => self.config.heartbeat_interval_ms.min(session / 3).max(1),
        };
        (result.map(|r| (r, interval)), wait)
    }

    fn check_session(&self, session_timeout_ms: u32) -> GroupResult<()> {
        let (lo, hi) = (self.config.min_session_timeout_ms, self.config.max_session_timeout_ms);
        if session_timeout_ms < lo || session_timeout_ms > hi {
            return Err(GroupError::new(
                GroupErrorKind::InvalidSessionTimeout,
                format!("session timeout {session_timeout_ms} ms is outside the broker's bounds [{lo}, {hi}] ms"),
            ));
        }
        Ok(())
    }

    /// Runs `f` on the group (created if absent) under its shard's lock, persists what
    /// changed and delivers the classic protocol's waiting answers once that is durable.
    /// A group created for nothing is dropped again. Refused (`f` not run) when this
    /// broker does not coordinate the group.
    fn change<T>(
        &self,
        group_id: &str,
        f: impl FnOnce(&mut Group, &mut Vec<Delivery>) -> T,
    ) -> GroupResult<(T, DurableWait)> {
        let shard = self.shard(group_id);
        let mut st = lock(shard);
        self.check_owned(shard, &mut st, group_id)?;
        let existed = st.groups.contains_key(group_id);
        let group = st
            .groups
            .entry(group_id.to_owned())
            .or_insert_with(|| Group::new(group_id));
        let mut out = Vec::new();
        let result = f(group, &mut out);
        let mut records = Records::default();
        if !existed && group.is_dead() {
            st.groups.remove(group_id);
        } else {
            persist_group(&mut st, group_id, &mut records);
        }
        let wait = self.write(shard, &mut st, records);
        drop(st);
        if out.is_empty() {
            return Ok((result, wait));
        }
        // Answers wait for the change to be durable; so does the caller, after them.
        let (tx, rx) = oneshot::channel();
        deliver(out, wait, Some(tx));
        Ok((result, DurableWait::from_receiver(rx)))
    }

    /// Handles a classic JoinGroup. The answer comes when the join phase ends.
    pub fn join(&self, group_id: &str, req: JoinRequest) -> oneshot::Receiver<JoinResult> {
        let (tx, rx) = oneshot::channel();
        if let Err(e) = check_group_id(group_id).and_then(|()| self.check_session(req.session_timeout_ms)) {
            let _ = tx.send(Err(e));
            return rx;
        }
        let delay = Duration::from_millis(self.config.initial_rebalance_delay_ms as u64);
        // The answer itself waits for durability (see `change`).
        let mut answer = Some(tx);
        let changed = self.change(group_id, |g, out| {
            let tx = answer.take().expect("answered once");
            if !g.members.is_empty() {
                let e = GroupError::new(
                    GroupErrorKind::InconsistentGroupProtocol,
                    format!(
                        "group {group_id} has members of the consumer protocol (ConsumerGroupHeartbeat); a group uses one protocol at a time"
                    ),
                );
                out.push(Delivery::Join(tx, Err(e)));
                return;
            }
            g.classic.join(req, tx, Instant::now(), delay, || uuid::Uuid::new_v4().to_string(), out);
        });
        if let (Err(e), Some(tx)) = (changed, answer) {
            let _ = tx.send(Err(e));
        }
        rx
    }

    /// Handles a classic SyncGroup. Followers' answers come with the leader's assignment.
    pub fn sync(&self, group_id: &str, req: SyncRequest) -> oneshot::Receiver<SyncResult> {
        let (tx, rx) = oneshot::channel();
        if let Err(e) = check_group_id(group_id) {
            let _ = tx.send(Err(e));
            return rx;
        }
        let mut answer = Some(tx);
        let changed = self.change(group_id, |g, out| {
            let tx = answer.take().expect("answered once");
            g.classic.sync(req, tx, Instant::now(), out)
        });
        if let (Err(e), Some(tx)) = (changed, answer) {
            let _ = tx.send(Err(e));
        }
        rx
    }

    /// Handles a classic Heartbeat.
    pub fn classic_heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> GroupResult<()> {
        check_group_id(group_id)?;
        let shard = self.shard(group_id);
        let mut st = lock(shard);
        self.check_owned(shard, &mut st, group_id)?;
        match st.groups.get_mut(group_id) {
            Some(g) => g.classic.heartbeat(member_id, instance_id, generation, Instant::now()),
            None => Err(GroupError::new(
                GroupErrorKind::UnknownMemberId,
                format!("group {group_id} does not exist: rejoin"),
            )),
        }
    }

    /// Handles a classic LeaveGroup: (member id, instance id) each, answered per member
    /// with the member id that left.
    pub fn leave(
        &self,
        group_id: &str,
        members: Vec<(String, Option<String>)>,
    ) -> (Vec<GroupResult<String>>, DurableWait) {
        if let Err(e) = check_group_id(group_id) {
            return (members.iter().map(|_| Err(e.clone())).collect(), DurableWait::ready());
        }
        let count = members.len();
        let changed = self.change(group_id, |g, out| {
            let now = Instant::now();
            members
                .into_iter()
                .map(|(id, inst)| {
                    let r = g.classic.leave(&id, inst.as_deref(), now, out);
                    if let Ok(id) = &r {
                        info!(group = %g.id, member = %id, "member left the group");
                    }
                    r
                })
                .collect()
        });
        changed.unwrap_or_else(|e| ((0..count).map(|_| Err(e.clone())).collect(), DurableWait::ready()))
    }

    /// Deletes committed offsets of partitions the group no longer consumes.
    pub fn delete_offsets(&self, group_id: &str, tps: Vec<Tp>) -> GroupResult<(Vec<CommitResult>, DurableWait)> {
        check_group_id(group_id)?;
        let catalog = self.catalog();
        let shard = self.shard(group_id);
        let mut st = lock(shard);
        self.check_owned(shard, &mut st, group_id)?;
        let g = st.groups.get_mut(group_id).ok_or_else(|| {
            GroupError::new(
                GroupErrorKind::GroupIdNotFound,
                format!("group {group_id} does not exist"),
            )
        })?;
        let subscribed = g.subscribed_topics(&catalog)?;
        let mut records = Records::default();
        let results = tps
            .into_iter()
            .map(|tp| {
                if subscribed.contains(&tp.0) {
                    let e = GroupError::new(
                        GroupErrorKind::GroupSubscribedToTopic,
                        format!("group {group_id} still consumes {}", tp.0),
                    );
                    return (tp, Err(e));
                }
                if g.offsets.remove(&tp).is_some() {
                    records.offset(group_id, &tp, None);
                }
                (tp, Ok(()))
            })
            .collect();
        if g.is_dead() {
            st.groups.remove(group_id);
            records.group(group_id, None);
        }
        let wait = self.write(shard, &mut st, records);
        Ok((results, wait))
    }

    /// Commits offsets. Per-partition results; what was accepted is durable once the
    /// returned wait resolves. `instance_id`: a static classic member's.
    pub fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
        instance_id: Option<&str>,
        commits: Vec<OffsetCommit>,
    ) -> GroupResult<(Vec<CommitResult>, DurableWait)> {
        check_group_id(group_id)?;
        let shard = self.shard(group_id);
        let mut st = lock(shard);
        self.check_owned(shard, &mut st, group_id)?;
        let now_ms = crate::storage::log::now_ms();
        if !st.groups.contains_key(group_id) {
            if !member_id.is_empty() {
                return Err(GroupError::new(
                    GroupErrorKind::UnknownMemberId,
                    format!("group {group_id} has no member {member_id:?}: rejoin"),
                ));
            }
            st.groups.insert(group_id.to_owned(), Group::new(group_id));
        }
        let group = st.groups.get_mut(group_id).expect("present");
        let mut records = Records::default();
        let mut results = Vec::with_capacity(commits.len());
        for c in commits {
            let r = if c.metadata.len() > self.config.max_metadata_bytes {
                Err(GroupError::new(
                    GroupErrorKind::OffsetMetadataTooLarge,
                    format!(
                        "commit metadata is {} bytes; the limit is {}",
                        c.metadata.len(),
                        self.config.max_metadata_bytes
                    ),
                ))
            } else if c.offset < 0 {
                Err(GroupError::new(
                    GroupErrorKind::InvalidRequest,
                    format!("cannot commit negative offset {}", c.offset),
                ))
            } else if let Err(e) = self.storage.partition(&c.tp.0, c.tp.1) {
                // As Kafka: an offset for a partition that does not exist is refused.
                Err(GroupError::new(GroupErrorKind::UnknownTopicOrPartition, e.to_string()))
            } else {
                group.check_commit(member_id, member_epoch, instance_id, &c.tp)
            };
            if r.is_ok() {
                let committed = Committed {
                    offset: c.offset,
                    metadata: c.metadata,
                    commit_timestamp_ms: now_ms,
                };
                records.offset(group_id, &c.tp, Some(&committed));
                group.offsets.insert(c.tp.clone(), committed);
            }
            results.push((c.tp, r));
        }
        if group.is_dead() {
            st.groups.remove(group_id);
        }
        let wait = self.write(shard, &mut st, records);
        Ok((results, wait))
    }

    /// A consumer-protocol member as the coordinator knows it.
    pub fn member(&self, group_id: &str, member_id: &str) -> Option<Member> {
        let shard = self.shard(group_id);
        let mut st = lock(shard);
        self.check_owned(shard, &mut st, group_id).ok()?;
        st.groups.get(group_id)?.members.get(member_id).cloned()
    }

    /// Committed offsets of `group`: of `partitions`, or all when `None`.
    pub fn committed(&self, group_id: &str, partitions: Option<&[Tp]>) -> GroupResult<BTreeMap<Tp, Committed>> {
        let shard = self.shard(group_id);
        let mut st = lock(shard);
        self.check_owned(shard, &mut st, group_id)?;
        let Some(g) = st.groups.get(group_id) else {
            return Ok(BTreeMap::new());
        };
        Ok(match partitions {
            None => g.offsets.clone(),
            Some(tps) => tps
                .iter()
                .filter_map(|tp| g.offsets.get(tp).map(|c| (tp.clone(), c.clone())))
                .collect(),
        })
    }

    /// Every group this broker coordinates (as Kafka's ListGroups: a client asks every
    /// broker).
    pub fn list(&self) -> Vec<GroupListing> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut st = lock(shard);
            if self.check_owned(shard, &mut st, "").is_err() {
                continue;
            }
            for g in st.groups.values() {
                let classic = g.is_classic();
                let kind = if classic || (g.members.is_empty() && g.epoch == 0) {
                    "classic"
                } else {
                    "consumer"
                };
                out.push(GroupListing {
                    id: g.id.clone(),
                    state: g.state(),
                    members: g.members.len() + g.classic.members.len(),
                    assignor: if classic {
                        g.classic.protocol.clone()
                    } else {
                        g.assignor.name().to_owned()
                    },
                    kind,
                    protocol_type: if kind == "classic" {
                        g.classic.protocol_type.clone()
                    } else {
                        "consumer".to_owned()
                    },
                });
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// A group's state; `None` for a group this coordinator does not have.
    pub fn describe(&self, group_id: &str) -> GroupResult<Option<GroupSnapshot>> {
        let shard = self.shard(group_id);
        let mut st = lock(shard);
        self.check_owned(shard, &mut st, group_id)?;
        let Some(g) = st.groups.get(group_id) else {
            return Ok(None);
        };
        Ok(Some(GroupSnapshot {
            id: g.id.clone(),
            state: g.state(),
            assignor: g.assignor,
            classic: g.is_classic().then(|| ClassicSnapshot {
                generation: g.classic.generation,
                protocol_type: g.classic.protocol_type.clone(),
                protocol: g.classic.protocol.clone(),
                leader: g.classic.leader.clone(),
                members: g.classic.members.values().cloned().collect(),
            }),
            epoch: g.epoch,
            assignment_epoch: g.assignment_epoch,
            members: g.members.values().cloned().collect(),
            target: g.target.clone(),
            offsets: g.offsets.clone(),
            offsets_partition: shard.index,
        }))
    }

    /// Deletes a group without members, with its offsets.
    pub fn delete(&self, group_id: &str) -> GroupResult<DurableWait> {
        let shard = self.shard(group_id);
        let mut st = lock(shard);
        self.check_owned(shard, &mut st, group_id)?;
        let g = st.groups.get(group_id).ok_or_else(|| {
            GroupError::new(
                GroupErrorKind::GroupIdNotFound,
                format!("group {group_id} does not exist"),
            )
        })?;
        let members = g.members.len() + g.classic.members.len();
        if members > 0 {
            return Err(GroupError::new(
                GroupErrorKind::NonEmptyGroup,
                format!("group {group_id} has {members} member(s); stop them before deleting it"),
            ));
        }
        let g = st.groups.remove(group_id).expect("present");
        let mut records = Records::default();
        records.group(group_id, None);
        for tp in g.offsets.keys() {
            records.offset(group_id, tp, None);
        }
        info!(group = group_id, "deleted group");
        Ok(self.write(shard, &mut st, records))
    }

    /// Appends records to a shard's log under its lock (so the log's order is the order
    /// of the state changes). Errors leave the in-memory state ahead of the log; they are
    /// reported to the waiter.
    fn write(&self, shard: &Shard, st: &mut ShardState, records: Records) -> DurableWait {
        if records.is_empty() {
            return DurableWait::ready();
        }
        match records.append_to(&shard.log) {
            Ok((bytes, wait)) => {
                st.since_snapshot += bytes;
                wait
            }
            Err(e) => {
                warn!(offsets_partition = shard.index, error = %e, "offsets log append failed");
                DurableWait::failed(e)
            }
        }
    }

    /// One maintenance pass: expire members whose session ended, follow topic changes,
    /// expire the offsets of groups empty for `offsets_retention_ms`, and snapshot
    /// offsets-log partitions that have grown past their bound.
    pub async fn tick(&self) {
        let now = Instant::now();
        let now_ms = crate::storage::log::now_ms();
        let catalog = self.catalog();
        let check_members = {
            let mut checked = crate::sync::lock(&self.retention_checked);
            let due = now >= *checked + Duration::from_millis(self.config.offsets_retention_check_interval_ms);
            if due {
                *checked = now;
            }
            due
        };
        for shard in &self.shards {
            if !self.follow_leadership(shard).await {
                continue;
            }
            let mut out = Vec::new();
            let (wait, snapshot_start) = {
                let mut st = lock(shard);
                let mut records = Records::default();
                let ids: Vec<String> = st.groups.keys().cloned().collect();
                for id in ids {
                    let g = st.groups.get_mut(&id).expect("listed");
                    for m in g.expire(now, &catalog) {
                        info!(group = %id, member = %m, "member session expired; its partitions are reassigned");
                    }
                    if !g.members.is_empty() {
                        g.update_target(&catalog, false);
                    }
                    for m in g.classic.tick(now, &mut out) {
                        info!(group = %id, member = %m, "classic member removed (session or rebalance timeout)");
                    }
                    let subscriptions = check_members.then_some(&catalog);
                    let expired = g.expire_offsets(now_ms, self.config.offsets_retention_ms, subscriptions);
                    if !expired.is_empty() {
                        info!(group = %id, offsets = expired.len(), "committed offsets expired");
                    }
                    for tp in &expired {
                        records.offset(&id, tp, None);
                    }
                    persist_group(&mut st, &id, &mut records);
                }
                let mut wait = self.write(shard, &mut st, records);
                let bound = self.config.offsets_segment_bytes.max(2 * st.snapshot_bytes);
                let mut snapshot_start = None;
                if st.since_snapshot > bound {
                    let snap = store::snapshot(st.groups.values());
                    let start = shard.log.end_offset();
                    match snap.append_to(&shard.log) {
                        Ok((bytes, w)) => {
                            st.snapshot_bytes = bytes;
                            st.since_snapshot = bytes;
                            snapshot_start = Some(start);
                            wait = w;
                        }
                        Err(e) => warn!(offsets_partition = shard.index, error = %e, "offsets log snapshot failed"),
                    }
                }
                (wait, snapshot_start)
            };
            let durable = wait.wait().await;
            let stored = durable.as_ref().err().map(not_stored);
            out.into_iter().for_each(|d| d.send(stored.as_ref()));
            if let (Ok(()), Some(start)) = (durable, snapshot_start) {
                // Everything before the snapshot is superseded by it, now that it is durable.
                let log = shard.log.clone();
                let deleted = tokio::task::spawn_blocking(move || log.delete_segments_before(start)).await;
                match deleted {
                    Ok(Ok(d)) if !d.is_empty() => {
                        info!(
                            offsets_partition = shard.index,
                            segments = d.len(),
                            "offsets log compacted"
                        )
                    }
                    Ok(Err(e)) => warn!(offsets_partition = shard.index, error = %e, "offsets log cleanup failed"),
                    _ => {}
                }
            }
        }
    }

    /// Runs `tick` every `tick_ms` until `stop` resolves.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        let mut every = tokio::time::interval(Duration::from_millis(self.config.tick_ms.max(1)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = every.tick() => self.tick().await,
            }
        }
    }
}

/// Writes the group's membership record if it changed, or its tombstone when the group
/// is gone.
fn persist_group(st: &mut ShardState, group_id: &str, records: &mut Records) {
    let Some(g) = st.groups.get_mut(group_id) else { return };
    if g.is_dead() {
        g.changed.notify_waiters();
        st.groups.remove(group_id);
        records.group(group_id, None);
    } else if g.dirty || g.classic.dirty {
        g.dirty = false;
        g.classic.dirty = false;
        g.version += 1;
        g.changed.notify_waiters();
        records.group(group_id, Some(g));
    }
}

fn not_stored(e: &crate::error::Error) -> GroupError {
    GroupError::new(
        GroupErrorKind::CoordinatorNotAvailable,
        format!("group change not stored: {e}"),
    )
}

/// Sends the answers once `wait` resolves (at once when nothing was written), then
/// passes the outcome on to `after`.
fn deliver(out: Vec<Delivery>, wait: DurableWait, after: Option<oneshot::Sender<Result<()>>>) {
    if wait.is_ready() {
        out.into_iter().for_each(|d| d.send(None));
        if let Some(after) = after {
            let _ = after.send(Ok(()));
        }
        return;
    }
    tokio::spawn(async move {
        let durable = wait.wait().await;
        let stored = durable.as_ref().err().map(not_stored);
        out.into_iter().for_each(|d| d.send(stored.as_ref()));
        if let Some(after) = after {
            let _ = after.send(durable);
        }
    });
}

fn check_group_id(group_id: &str) -> GroupResult<()> {
    if group_id.is_empty() || group_id.len() > 255 {
        return Err(GroupError::new(
            GroupErrorKind::InvalidGroupId,
            format!("group id must be 1 to 255 bytes, got {}", group_id.len()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_partition_matches_kafka() {
        // Java: "my-group".hashCode() == -1906497762, so abs % 8.
        assert_eq!(partition_for("my-group"), 1_906_497_762 % OFFSETS_PARTITIONS);
        assert!(partition_for("") < OFFSETS_PARTITIONS);
    }
}

//! The classic group protocol Kafka clients speak (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup): the coordinator runs the rebalance, one member — the leader — computes
//! the assignment with a client-side assignor (`range`, `roundrobin`,
//! `cooperative-sticky`, ...) and the coordinator hands each member its part. No I/O:
//! the coordinator calls in with the time, persists what changed, and answers the
//! waiting requests (`Delivery`) once that is durable.
//!
//! States, as in Kafka:
//! - `Empty`: no members (offsets may remain).
//! - `PreparingRebalance`: membership changed; every member must send JoinGroup again.
//!   The phase ends when all have (and no member given an id is still to join), or at
//!   the rebalance deadline — the longest rebalance timeout of the members — when those
//!   that did not rejoin are removed. A rebalance that starts from an empty group waits
//!   `initial_delay` first (extended while new members keep arriving, capped at the
//!   rebalance timeout), so members starting together share one rebalance.
//! - `CompletingRebalance`: the generation is bumped and the join answers are out; the
//!   leader got every member's metadata and sends the assignment in its SyncGroup.
//!   Members that have not sent SyncGroup by the rebalance deadline are removed.
//! - `Stable`: everyone has its assignment; heartbeats keep sessions alive.
//!
//! Fencing: heartbeats, syncs and commits must carry the current generation
//! (ILLEGAL_GENERATION otherwise) from a known member (UNKNOWN_MEMBER_ID). Static
//! members (`group.instance.id`) keep their assignment across restarts: a returning
//! instance takes over its predecessor's member (which is fenced with
//! FENCED_INSTANCE_ID) without a rebalance unless its metadata changed. A returning
//! leader (KIP-814) gets the members with `skip_assignment` on JoinGroup v9+, so it
//! resumes leading without assigning; older versions are told the old leader id, so it
//! syncs as a follower and gets its assignment back (Kafka answers both the same way).
//! Cooperative assignors need nothing more from the coordinator: their
//! members revoke only what moves and rejoin by themselves.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::error::GroupErrorKind;
use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::Decodable;
use tokio::sync::oneshot;

use super::assignor::Tp;
use super::error::{GroupError, GroupResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassicState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl ClassicState {
    /// Kafka's name for the state (DescribeGroups, ListGroups).
    pub fn name(self) -> &'static str {
        match self {
            ClassicState::Empty => "Empty",
            ClassicState::PreparingRebalance => "PreparingRebalance",
            ClassicState::CompletingRebalance => "CompletingRebalance",
            ClassicState::Stable => "Stable",
        }
    }

    pub fn parse(name: &str) -> Option<ClassicState> {
        [
            ClassicState::Empty,
            ClassicState::PreparingRebalance,
            ClassicState::CompletingRebalance,
            ClassicState::Stable,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

/// A JoinGroup, in the coordinator's terms.
#[derive(Debug, Clone, Default)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4 and later: a member without an id is first given one and joins
    /// with it in a second request (KIP-394), so a lost answer cannot leave a ghost.
    pub require_known_member_id: bool,
    /// JoinGroup v9 and later: the answer may say `skip_assignment` (KIP-814).
    pub supports_skip_assignment: bool,
}

/// A member as the leader sees it in its JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOutcome {
    pub member_id: String,
    /// The member was given `member_id` and must join again with it (MEMBER_ID_REQUIRED).
    pub member_id_required: bool,
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: String,
    pub leader: String,
    /// Every member with its metadata for the chosen protocol — for the leader only.
    pub members: Vec<JoinedMember>,
    /// The leader must not assign: a static leader came back to a stable group, whose
    /// assignment stands (KIP-814).
    pub skip_assignment: bool,
}

pub type JoinResult = GroupResult<JoinOutcome>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    pub protocol_type: String,
    pub protocol: String,
    pub assignment: Bytes,
}

pub type SyncResult = GroupResult<SyncOutcome>;

/// A SyncGroup, in the coordinator's terms.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    /// v5 and later send what they expect; checked when present.
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    /// The leader's assignment: (member id, bytes).
    pub assignments: Vec<(String, Bytes)>,
}

/// An answer to a request that waited in the coordinator.
#[derive(Debug)]
pub enum Delivery {
    Join(oneshot::Sender<JoinResult>, JoinResult),
    Sync(oneshot::Sender<SyncResult>, SyncResult),
}

impl Delivery {
    /// Sends the answer, or `error` in its place (the change could not be stored).
    pub fn send(self, error: Option<&GroupError>) {
        match self {
            Delivery::Join(tx, r) => {
                let _ = tx.send(error.map_or(r, |e| Err(e.clone())));
            }
            Delivery::Sync(tx, r) => {
                let _ = tx.send(error.map_or(r, |e| Err(e.clone())));
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClassicMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
    pub protocols: Vec<(String, Bytes)>,
    /// Its part of the leader's assignment for the current generation.
    pub assignment: Bytes,
    /// When its session ends without a heartbeat, join or sync.
    pub deadline: Instant,
    /// Sent SyncGroup in the current generation.
    pub synced: bool,
}

impl ClassicMember {
    /// Its metadata for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

#[derive(Debug)]
pub struct Classic {
    pub state: ClassicState,
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: String,
    pub leader: String,
    pub members: BTreeMap<String, ClassicMember>,
    /// Ids handed out with MEMBER_ID_REQUIRED, until when they may be used.
    pending: HashMap<String, Instant>,
    join_waiters: HashMap<String, oneshot::Sender<JoinResult>>,
    sync_waiters: HashMap<String, oneshot::Sender<SyncResult>>,
    /// End of the join phase (PreparingRebalance) or of the sync phase
    /// (CompletingRebalance).
    deadline: Option<Instant>,
    /// When a rebalance that started from an empty group began: its join phase lasts
    /// `initial_delay` past the last new member, up to the rebalance timeout.
    initial_since: Option<Instant>,
    /// Something worth persisting changed.
    pub dirty: bool,
}

impl Default for Classic {
    fn default() -> Self {
        Classic {
            state: ClassicState::Empty,
            generation: 0,
            protocol_type: String::new(),
            protocol: String::new(),
            leader: String::new(),
            members: BTreeMap::new(),
            pending: HashMap::new(),
            join_waiters: HashMap::new(),
            sync_waiters: HashMap::new(),
            deadline: None,
            initial_since: None,
            dirty: false,
        }
    }
}

fn err<T>(kind: GroupErrorKind, message: impl Into<String>) -> GroupResult<T> {
    Err(GroupError::new(kind, message))
}

fn session(ms: u32) -> Duration {
    Duration::from_millis(ms as u64)
}

impl Classic {
    /// Restores a persisted group. Sessions restart now; a group that was mid-rebalance
    /// rebalances again.
    pub fn restore(
        generation: i32,
        state: ClassicState,
        protocol_type: String,
        protocol: String,
        leader: String,
        members: Vec<ClassicMember>,
        now: Instant,
    ) -> Classic {
        let mut c = Classic {
            generation,
            protocol_type,
            protocol,
            leader,
            members: members.into_iter().map(|m| (m.id.clone(), m)).collect(),
            ..Classic::default()
        };
        c.state = match state {
            _ if c.members.is_empty() => ClassicState::Empty,
            ClassicState::Stable => ClassicState::Stable,
            _ => {
                c.deadline = Some(now + c.rebalance_timeout());
                ClassicState::PreparingRebalance
            }
        };
        c
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty()
    }

    /// The join phase lasts at most this long: the longest rebalance timeout.
    fn rebalance_timeout(&self) -> Duration {
        session(self.members.values().map(|m| m.rebalance_timeout_ms).max().unwrap_or(0))
    }

    fn by_instance(&self, instance: &str) -> Option<&ClassicMember> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance))
    }

    /// The member `member_id`, checked against the instance id it claims (Kafka's rule: a
    /// request without one is checked by member id alone).
    fn known(&self, member_id: &str, instance_id: Option<&str>) -> GroupResult<&ClassicMember> {
        if let Some(inst) = instance_id {
            match self.by_instance(inst) {
                Some(m) if m.id != member_id => {
                    return err(
                        GroupErrorKind::FencedInstanceId,
                        format!(
                            "instance {inst} is now member {}; {member_id} was replaced by a newer instance",
                            m.id
                        ),
                    )
                }
                Some(_) => {}
                None => {
                    return err(
                        GroupErrorKind::UnknownMemberId,
                        format!("no member has instance id {inst:?} (it left or its session expired): rejoin"),
                    )
                }
            }
        }
        self.members.get(member_id).ok_or_else(|| {
            GroupError::new(
                GroupErrorKind::UnknownMemberId,
                format!("the group has no member {member_id:?} (it left or its session expired): rejoin"),
            )
        })
    }

    /// Protocol names every member supports.
    fn common_protocols(&self) -> Vec<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return Vec::new();
        };
        let mut names: Vec<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in members {
            names.retain(|n| m.protocols.iter().any(|(p, _)| p == n));
        }
        names
    }

    /// Whether a member with these protocols can join (or rejoin as `except`).
    fn accepts(&self, protocol_type: &str, protocols: &[(String, Bytes)], except: &str) -> GroupResult<()> {
        if protocol_type.is_empty() || protocols.is_empty() {
            return err(
                GroupErrorKind::InconsistentGroupProtocol,
                "JoinGroup needs a protocol type and at least one protocol",
            );
        }
        if self.members.keys().all(|id| id == except) {
            return Ok(());
        }
        if protocol_type != self.protocol_type {
            return err(
                GroupErrorKind::InconsistentGroupProtocol,
                format!(
                    "the group's protocol type is {:?}; this member asked for {protocol_type:?}",
                    self.protocol_type
                ),
            );
        }
        let mut common: Option<Vec<&str>> = None;
        for m in self.members.values().filter(|m| m.id != except) {
            let names: Vec<&str> = m.protocols.iter().map(|(n, _)| n.as_str()).collect();
            common = Some(match common {
                None => names,
                Some(c) => c.into_iter().filter(|n| names.contains(n)).collect(),
            });
        }
        let common = common.unwrap_or_default();
        if protocols.iter().any(|(n, _)| common.contains(&n.as_str())) {
            Ok(())
        } else {
            err(
                GroupErrorKind::InconsistentGroupProtocol,
                format!(
                    "no assignor in common with the group: it supports {common:?}, this member {:?}",
                    protocols.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>()
                ),
            )
        }
    }

    /// The protocol most members prefer among those all support.
    fn select_protocol(&self) -> String {
        let candidates = self.common_protocols();
        let mut votes: Vec<(usize, &String)> = candidates.iter().map(|c| (0, c)).collect();
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                if let Some(v) = votes.iter_mut().find(|(_, c)| *c == n) {
                    v.0 += 1;
                }
            }
        }
        // Ties go to the earlier candidate (the first member's preference order).
        let best = votes.iter().map(|v| v.0).max().unwrap_or(0);
        votes
            .into_iter()
            .find(|v| v.0 == best)
            .map(|v| v.1.clone())
            .unwrap_or_default()
    }

    fn outcome(&self, member_id: &str) -> JoinOutcome {
        let members = if member_id == self.leader {
            self.members
                .values()
                .map(|m| JoinedMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    metadata: m.metadata(&self.protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinOutcome {
            member_id: member_id.to_owned(),
            member_id_required: false,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            members,
            skip_assignment: false,
        }
    }

    /// Handles a JoinGroup; its answer goes to `tx`, now or when the join phase ends.
    pub fn join(
        &mut self,
        req: JoinRequest,
        tx: oneshot::Sender<JoinResult>,
        now: Instant,
        initial_delay: Duration,
        new_id: impl FnOnce() -> String,
        out: &mut Vec<Delivery>,
    ) {
        let except = if req.member_id.is_empty() {
            req.instance_id
                .as_deref()
                .and_then(|i| self.by_instance(i))
                .map(|m| m.id.clone())
                .unwrap_or_default()
        } else {
            req.member_id.clone()
        };
        if let Err(e) = self.accepts(&req.protocol_type, &req.protocols, &except) {
            out.push(Delivery::Join(tx, Err(e)));
            return;
        }
        if req.member_id.is_empty() {
            let prefix = req.instance_id.as_deref().unwrap_or(&req.client_id);
            let id = format!("{prefix}-{}", new_id());
            if let Some(old) = req.instance_id.as_deref().and_then(|i| self.by_instance(i)) {
                let old = old.id.clone();
                self.replace_static(&old, id, req, tx, now, initial_delay, out);
            } else if req.require_known_member_id && req.instance_id.is_none() {
                self.pending.insert(id.clone(), now + session(req.session_timeout_ms));
                let outcome = JoinOutcome {
                    member_id: id,
                    member_id_required: true,
                    generation: -1,
                    protocol_type: String::new(),
                    protocol: String::new(),
                    leader: String::new(),
                    members: Vec::new(),
                    skip_assignment: false,
                };
                out.push(Delivery::Join(tx, Ok(outcome)));
            } else {
                self.add(id, req, tx, now, initial_delay, out);
            }
            return;
        }
        if self.pending.remove(&req.member_id).is_some() {
            let id = req.member_id.clone();
            self.add(id, req, tx, now, initial_delay, out);
            return;
        }
        let (is_leader, same) = match self.known(&req.member_id, req.instance_id.as_deref()) {
            Ok(m) => (m.id == self.leader, m.protocols == req.protocols),
            Err(e) => {
                out.push(Delivery::Join(tx, Err(e)));
                return;
            }
        };
        let id = req.member_id.clone();
        {
            let m = self.members.get_mut(&id).expect("known");
            m.deadline = now + session(req.session_timeout_ms);
            m.session_timeout_ms = req.session_timeout_ms;
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        match self.state {
            // A member that missed its answer, or rejoins for nothing: the current
            // generation as it stands.
            ClassicState::CompletingRebalance if same => out.push(Delivery::Join(tx, Ok(self.outcome(&id)))),
            ClassicState::Stable if same && !is_leader => out.push(Delivery::Join(tx, Ok(self.outcome(&id)))),
            _ => {
                self.members.get_mut(&id).expect("known").protocols = req.protocols;
                self.wait_join(id, tx, out);
                if self.state == ClassicState::PreparingRebalance {
                    self.maybe_complete_join(now, out);
                } else {
                    self.prepare_rebalance(now, Duration::ZERO, out);
                }
            }
        }
    }

    fn wait_join(&mut self, id: String, tx: oneshot::Sender<JoinResult>, out: &mut Vec<Delivery>) {
        if let Some(old) = self.join_waiters.insert(id, tx) {
            let e = GroupError::new(GroupErrorKind::RebalanceInProgress, "superseded by a newer JoinGroup");
            out.push(Delivery::Join(old, Err(e)));
        }
    }

    fn add(
        &mut self,
        id: String,
        req: JoinRequest,
        tx: oneshot::Sender<JoinResult>,
        now: Instant,
        initial_delay: Duration,
        out: &mut Vec<Delivery>,
    ) {
        if self.members.is_empty() {
            self.protocol_type = req.protocol_type.clone();
        }
        self.members.insert(
            id.clone(),
            ClassicMember {
                id: id.clone(),
                instance_id: req.instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: req.protocols,
                assignment: Bytes::new(),
                deadline: now + session(req.session_timeout_ms),
                synced: false,
            },
        );
        self.dirty = true;
        self.wait_join(id, tx, out);
        match (self.state, self.initial_since) {
            (ClassicState::PreparingRebalance, Some(since)) => {
                // Another member of a starting group: wait a little longer for more.
                self.deadline = Some((now + initial_delay).min(since + self.rebalance_timeout()));
            }
            (ClassicState::PreparingRebalance, None) => self.maybe_complete_join(now, out),
            _ => self.prepare_rebalance(now, initial_delay, out),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn replace_static(
        &mut self,
        old_id: &str,
        new_id: String,
        req: JoinRequest,
        tx: oneshot::Sender<JoinResult>,
        now: Instant,
        initial_delay: Duration,
        out: &mut Vec<Delivery>,
    ) {
        let mut m = self.members.remove(old_id).expect("found by instance");
        let fenced = || {
            GroupError::new(
                GroupErrorKind::FencedInstanceId,
                format!("a newer instance {:?} joined as {new_id}", req.instance_id),
            )
        };
        if let Some(old) = self.join_waiters.remove(old_id) {
            out.push(Delivery::Join(old, Err(fenced())));
        }
        if let Some(old) = self.sync_waiters.remove(old_id) {
            out.push(Delivery::Sync(old, Err(fenced())));
        }
        let same = m.protocols == req.protocols;
        let skip_assignment = req.supports_skip_assignment;
        m.id = new_id.clone();
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.protocols = req.protocols;
        m.deadline = now + session(req.session_timeout_ms);
        let was_leader = self.leader == old_id;
        if was_leader {
            self.leader = new_id.clone();
        }
        self.members.insert(new_id.clone(), m);
        self.dirty = true;
        match self.state {
            // The instance is back with the same subscription: it keeps its assignment
            // (SyncGroup returns it) and nobody rebalances. A returning leader leads on
            // without assigning (v9+), or is told the old leader id and syncs as a
            // follower (before v9; it leads from the next rebalance).
            ClassicState::Stable if same => {
                let mut outcome = self.outcome(&new_id);
                if was_leader && skip_assignment {
                    outcome.skip_assignment = true;
                } else if was_leader {
                    outcome.leader = old_id.to_owned();
                    outcome.members.clear();
                }
                out.push(Delivery::Join(tx, Ok(outcome)));
            }
            ClassicState::PreparingRebalance => {
                self.wait_join(new_id, tx, out);
                self.maybe_complete_join(now, out);
            }
            _ => {
                self.wait_join(new_id, tx, out);
                self.prepare_rebalance(now, initial_delay, out);
            }
        }
    }

    /// Starts a rebalance: everyone must join again.
    fn prepare_rebalance(&mut self, now: Instant, initial_delay: Duration, out: &mut Vec<Delivery>) {
        for (id, tx) in self.sync_waiters.drain() {
            let e = GroupError::new(
                GroupErrorKind::RebalanceInProgress,
                format!("the group is rebalancing again; member {id} must rejoin"),
            );
            out.push(Delivery::Sync(tx, Err(e)));
        }
        let from_empty = self.state == ClassicState::Empty;
        self.state = ClassicState::PreparingRebalance;
        if from_empty && !initial_delay.is_zero() {
            self.initial_since = Some(now);
            self.deadline = Some(now + initial_delay.min(self.rebalance_timeout()));
        } else {
            self.initial_since = None;
            self.deadline = Some(now + self.rebalance_timeout());
            self.maybe_complete_join(now, out);
        }
    }

    fn maybe_complete_join(&mut self, now: Instant, out: &mut Vec<Delivery>) {
        let all_joined = self.members.keys().all(|id| self.join_waiters.contains_key(id));
        if self.state == ClassicState::PreparingRebalance
            && self.initial_since.is_none()
            && all_joined
            && self.pending.is_empty()
        {
            self.complete_join(now, out);
        }
    }

    /// Ends the join phase: removes who did not rejoin, bumps the generation, picks the
    /// protocol and answers every joined member.
    fn complete_join(&mut self, now: Instant, out: &mut Vec<Delivery>) {
        let gone: Vec<String> = self
            .members
            .keys()
            .filter(|id| !self.join_waiters.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            tracing::info!(member = %id, "member did not rejoin in time; removed from the group");
            self.members.remove(&id);
        }
        self.generation += 1;
        self.dirty = true;
        self.initial_since = None;
        if self.members.is_empty() {
            self.state = ClassicState::Empty;
            self.protocol.clear();
            self.leader.clear();
            self.deadline = None;
            return;
        }
        self.protocol = self.select_protocol();
        if !self.members.contains_key(&self.leader) {
            self.leader = self.members.keys().next().cloned().unwrap_or_default();
        }
        self.state = ClassicState::CompletingRebalance;
        self.deadline = Some(now + self.rebalance_timeout());
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let m = self.members.get_mut(&id).expect("listed");
            m.synced = false;
            m.assignment = Bytes::new();
            m.deadline = now + session(m.session_timeout_ms);
            if let Some(tx) = self.join_waiters.remove(&id) {
                out.push(Delivery::Join(tx, Ok(self.outcome(&id))));
            }
        }
    }

    /// Handles a SyncGroup; its answer goes to `tx`, now or when the leader's arrives.
    pub fn sync(&mut self, req: SyncRequest, tx: oneshot::Sender<SyncResult>, now: Instant, out: &mut Vec<Delivery>) {
        if let Err(e) = self.check_sync(&req) {
            out.push(Delivery::Sync(tx, Err(e)));
            return;
        }
        let id = req.member_id;
        let m = self.members.get_mut(&id).expect("checked");
        m.deadline = now + session(m.session_timeout_ms);
        match self.state {
            ClassicState::CompletingRebalance => {
                m.synced = true;
                self.sync_waiters.insert(id.clone(), tx);
                if id != self.leader {
                    return;
                }
                for (member, assignment) in req.assignments {
                    if let Some(m) = self.members.get_mut(&member) {
                        m.assignment = assignment;
                    }
                }
                self.state = ClassicState::Stable;
                self.deadline = None;
                self.dirty = true;
                let waiters: Vec<_> = self.sync_waiters.drain().collect();
                for (id, tx) in waiters {
                    let assignment = self.members.get(&id).map(|m| m.assignment.clone()).unwrap_or_default();
                    out.push(Delivery::Sync(tx, Ok(self.sync_outcome(assignment))));
                }
            }
            _ => {
                let assignment = m.assignment.clone();
                out.push(Delivery::Sync(tx, Ok(self.sync_outcome(assignment))));
            }
        }
    }

    fn sync_outcome(&self, assignment: Bytes) -> SyncOutcome {
        SyncOutcome {
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            assignment,
        }
    }

    fn check_sync(&self, req: &SyncRequest) -> GroupResult<()> {
        self.known(&req.member_id, req.instance_id.as_deref())?;
        self.check_generation(&req.member_id, req.generation)?;
        if req.protocol_type.as_ref().is_some_and(|t| *t != self.protocol_type)
            || req.protocol.as_ref().is_some_and(|p| *p != self.protocol)
        {
            return err(
                GroupErrorKind::InconsistentGroupProtocol,
                format!(
                    "the group uses {}/{}; SyncGroup named {:?}/{:?}",
                    self.protocol_type, self.protocol, req.protocol_type, req.protocol
                ),
            );
        }
        if self.state == ClassicState::PreparingRebalance {
            return err(GroupErrorKind::RebalanceInProgress, "the group is rebalancing: rejoin");
        }
        Ok(())
    }

    fn check_generation(&self, member_id: &str, generation: i32) -> GroupResult<()> {
        if generation != self.generation {
            return err(
                GroupErrorKind::IllegalGeneration,
                format!(
                    "member {member_id} is at generation {generation}; the group is at {}: rejoin",
                    self.generation
                ),
            );
        }
        Ok(())
    }

    /// Handles a Heartbeat: renews the session; tells the member when to rejoin.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> GroupResult<()> {
        self.known(member_id, instance_id)?;
        self.check_generation(member_id, generation)?;
        let m = self.members.get_mut(member_id).expect("known");
        m.deadline = now + session(m.session_timeout_ms);
        if self.state == ClassicState::PreparingRebalance {
            return err(GroupErrorKind::RebalanceInProgress, "the group is rebalancing: rejoin");
        }
        Ok(())
    }

    /// Handles one member of a LeaveGroup: by instance id when given, else by member id.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
        out: &mut Vec<Delivery>,
    ) -> GroupResult<String> {
        let id = match instance_id {
            Some(inst) => {
                let m = self.by_instance(inst).ok_or_else(|| {
                    GroupError::new(
                        GroupErrorKind::UnknownMemberId,
                        format!("no member has instance id {inst:?}"),
                    )
                })?;
                if !member_id.is_empty() && m.id != member_id {
                    return err(
                        GroupErrorKind::FencedInstanceId,
                        format!("instance {inst} is member {}, not {member_id}", m.id),
                    );
                }
                m.id.clone()
            }
            None if self.pending.remove(member_id).is_some() => {
                self.maybe_complete_join(now, out);
                return Ok(member_id.to_owned());
            }
            None => self.known(member_id, None)?.id.clone(),
        };
        self.remove(&id, "left the group", now, out);
        Ok(id)
    }

    /// Removes a member and rebalances the rest.
    fn remove(&mut self, id: &str, why: &str, now: Instant, out: &mut Vec<Delivery>) {
        if self.members.remove(id).is_none() {
            return;
        }
        self.dirty = true;
        let gone = || GroupError::new(GroupErrorKind::UnknownMemberId, format!("member {id} {why}"));
        if let Some(tx) = self.join_waiters.remove(id) {
            out.push(Delivery::Join(tx, Err(gone())));
        }
        if let Some(tx) = self.sync_waiters.remove(id) {
            out.push(Delivery::Sync(tx, Err(gone())));
        }
        match self.state {
            ClassicState::PreparingRebalance => self.maybe_complete_join(now, out),
            ClassicState::Empty => {}
            _ => self.prepare_rebalance(now, Duration::ZERO, out),
        }
    }

    /// Ends phases whose deadline passed and sessions that ended; returns who was removed.
    pub fn tick(&mut self, now: Instant, out: &mut Vec<Delivery>) -> Vec<String> {
        let before = self.pending.len();
        self.pending.retain(|_, until| *until > now);
        if self.pending.len() != before {
            self.maybe_complete_join(now, out);
        }
        let mut removed = Vec::new();
        if self.deadline.is_some_and(|d| d <= now) {
            match self.state {
                ClassicState::PreparingRebalance => {
                    removed.extend(
                        self.members
                            .keys()
                            .filter(|id| !self.join_waiters.contains_key(*id))
                            .cloned(),
                    );
                    self.pending.clear();
                    self.complete_join(now, out);
                }
                ClassicState::CompletingRebalance => {
                    let late: Vec<String> = self
                        .members
                        .values()
                        .filter(|m| !m.synced)
                        .map(|m| m.id.clone())
                        .collect();
                    for id in late {
                        self.remove(&id, "did not send SyncGroup within the rebalance timeout", now, out);
                        removed.push(id);
                    }
                }
                _ => self.deadline = None,
            }
        }
        // Members waiting in JoinGroup or SyncGroup are alive; the rest must heartbeat.
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.deadline <= now && !self.join_waiters.contains_key(&m.id) && !self.sync_waiters.contains_key(&m.id)
            })
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            self.remove(&id, "session expired", now, out);
            removed.push(id);
        }
        removed
    }

    /// Whether this member (static if `instance_id` is given) may commit offsets at
    /// `generation`.
    pub fn check_commit(&self, member_id: &str, generation: i32, instance_id: Option<&str>) -> GroupResult<()> {
        self.known(member_id, instance_id)?;
        self.check_generation(member_id, generation)?;
        if self.state == ClassicState::CompletingRebalance {
            return err(
                GroupErrorKind::RebalanceInProgress,
                "the group is completing a rebalance: commit after SyncGroup",
            );
        }
        Ok(())
    }
}

/// The topics in a `consumer`-protocol subscription (the metadata Kafka consumers join
/// with), `None` if it does not parse.
pub fn subscription_topics(metadata: &Bytes) -> Option<Vec<String>> {
    let (version, mut body) = consumer_protocol_version(metadata)?;
    let s = ConsumerProtocolSubscription::decode(&mut body, version).ok()?;
    Some(s.topics.iter().map(|t| t.to_string()).collect())
}

/// The partitions in a `consumer`-protocol assignment, `None` if it does not parse.
pub fn assignment_partitions(assignment: &Bytes) -> Option<BTreeSet<Tp>> {
    if assignment.is_empty() {
        return Some(BTreeSet::new());
    }
    let (version, mut body) = consumer_protocol_version(assignment)?;
    let a = ConsumerProtocolAssignment::decode(&mut body, version).ok()?;
    Some(
        a.assigned_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p as u32)))
            .collect(),
    )
}

/// The leading version of a consumer-protocol message; newer versions only append
/// fields, so they are read as the newest the codec knows.
fn consumer_protocol_version(bytes: &Bytes) -> Option<(i16, Bytes)> {
    let mut body = bytes.clone();
    if body.len() < 2 {
        return None;
    }
    let version = body.get_i16();
    (version >= 0).then_some((version.min(3), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELAY: Duration = Duration::from_millis(100);

    fn req(id: &str, protocols: &[&str]) -> JoinRequest {
        JoinRequest {
            member_id: id.into(),
            client_id: "c".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 5_000,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from(format!("{id}:{p}"))))
                .collect(),
            require_known_member_id: true,
            ..JoinRequest::default()
        }
    }

    struct Harness {
        g: Classic,
        now: Instant,
        next: u32,
    }

    impl Harness {
        fn new() -> Harness {
            Harness {
                g: Classic::default(),
                now: Instant::now(),
                next: 0,
            }
        }

        fn join(&mut self, r: JoinRequest) -> oneshot::Receiver<JoinResult> {
            let (tx, rx) = oneshot::channel();
            let mut out = Vec::new();
            self.next += 1;
            let n = self.next;
            self.g.join(r, tx, self.now, DELAY, || n.to_string(), &mut out);
            out.into_iter().for_each(|d| d.send(None));
            rx
        }

        fn sync(&mut self, r: SyncRequest) -> oneshot::Receiver<SyncResult> {
            let (tx, rx) = oneshot::channel();
            let mut out = Vec::new();
            self.g.sync(r, tx, self.now, &mut out);
            out.into_iter().for_each(|d| d.send(None));
            rx
        }

        fn advance(&mut self, d: Duration) -> Vec<String> {
            self.now += d;
            let mut out = Vec::new();
            let removed = self.g.tick(self.now, &mut out);
            out.into_iter().for_each(|d| d.send(None));
            removed
        }

        /// Joins a new dynamic member through MEMBER_ID_REQUIRED; returns its id and
        /// the pending join.
        fn enter(&mut self, protocols: &[&str]) -> (String, oneshot::Receiver<JoinResult>) {
            let first = self.join(req("", protocols)).try_recv().unwrap().unwrap();
            assert!(first.member_id_required);
            let id = first.member_id.clone();
            (id.clone(), self.join(req(&id, protocols)))
        }
    }

    fn ready<T: std::fmt::Debug>(rx: &mut oneshot::Receiver<T>) -> T {
        rx.try_recv().expect("answered")
    }

    fn pending<T: std::fmt::Debug>(rx: &mut oneshot::Receiver<T>) {
        assert!(
            matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty)),
            "not answered yet"
        );
    }

    fn sync_req(id: &str, generation: i32, assignments: &[(&str, &str)]) -> SyncRequest {
        SyncRequest {
            member_id: id.into(),
            generation,
            assignments: assignments
                .iter()
                .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
                .collect(),
            ..SyncRequest::default()
        }
    }

    #[test]
    fn members_starting_together_share_one_rebalance() {
        let mut h = Harness::new();
        let (a, mut ja) = h.enter(&["range", "roundrobin"]);
        h.advance(DELAY / 2);
        let (b, mut jb) = h.enter(&["roundrobin", "range"]);
        let (c, mut jc) = h.enter(&["roundrobin"]);
        h.advance(DELAY / 2);
        pending(&mut ja);
        h.advance(DELAY);
        let (oa, ob, oc) = (
            ready(&mut ja).unwrap(),
            ready(&mut jb).unwrap(),
            ready(&mut jc).unwrap(),
        );
        assert_eq!(oa.generation, 1);
        assert_eq!(oa.protocol, "roundrobin", "only roundrobin is common");
        assert_eq!(oa.leader, oa.member_id, "the first member leads");
        assert_eq!(oa.members.len(), 3);
        assert_eq!(oa.members[0].metadata, Bytes::from(format!("{a}:roundrobin")));
        assert!(ob.members.is_empty() && oc.members.is_empty());
        // Followers wait for the leader's assignment.
        let mut sb = h.sync(sync_req(&b, 1, &[]));
        pending(&mut sb);
        let mut sa = h.sync(sync_req(&a, 1, &[(&a, "A"), (&b, "B"), (&c, "C")]));
        assert_eq!(ready(&mut sa).unwrap().assignment, "A");
        assert_eq!(ready(&mut sb).unwrap().assignment, "B");
        let mut sc = h.sync(sync_req(&c, 1, &[]));
        assert_eq!(ready(&mut sc).unwrap().assignment, "C");
        assert_eq!(h.g.state, ClassicState::Stable);
    }

    #[test]
    fn a_new_member_makes_everyone_rejoin_and_fences_the_old_generation() {
        let mut h = Harness::new();
        let (a, mut ja) = h.enter(&["range"]);
        h.advance(DELAY);
        assert_eq!(ready(&mut ja).unwrap().generation, 1);
        h.sync(sync_req(&a, 1, &[(&a, "all")]));
        h.g.check_commit(&a, 1, None).unwrap();
        let (b, mut jb) = h.enter(&["range"]);
        pending(&mut jb);
        assert_eq!(
            h.g.heartbeat(&a, None, 1, h.now).unwrap_err().kind,
            GroupErrorKind::RebalanceInProgress
        );
        // a commits what it consumed before rejoining (allowed while preparing).
        h.g.check_commit(&a, 1, None).unwrap();
        let mut ja = h.join(req(&a, &["range"]));
        let (oa, ob) = (ready(&mut ja).unwrap(), ready(&mut jb).unwrap());
        assert_eq!((oa.generation, ob.generation), (2, 2));
        assert_eq!(
            h.g.heartbeat(&a, None, 1, h.now).unwrap_err().kind,
            GroupErrorKind::IllegalGeneration
        );
        assert_eq!(
            h.g.check_commit(&b, 2, None).unwrap_err().kind,
            GroupErrorKind::RebalanceInProgress
        );
        h.sync(sync_req(&a, 2, &[(&a, "half"), (&b, "half")]));
        h.g.check_commit(&b, 2, None).unwrap();
        assert_eq!(
            h.g.check_commit(&b, 1, None).unwrap_err().kind,
            GroupErrorKind::IllegalGeneration
        );
        assert_eq!(
            h.g.check_commit("ghost", 2, None).unwrap_err().kind,
            GroupErrorKind::UnknownMemberId
        );
    }

    #[test]
    fn members_that_do_not_rejoin_or_heartbeat_are_removed() {
        let mut h = Harness::new();
        let (a, mut ja) = h.enter(&["range"]);
        let (b, mut jb) = h.enter(&["range"]);
        h.advance(DELAY);
        let leader = ready(&mut ja).unwrap().leader;
        ready(&mut jb).unwrap();
        h.sync(sync_req(&leader, 1, &[]));
        h.sync(sync_req(if leader == a { &b } else { &a }, 1, &[]));
        // b leaves; a is told to rejoin and, alone, completes at once.
        h.g.leave(&b, None, h.now, &mut Vec::new()).unwrap();
        let mut ja = h.join(req(&a, &["range"]));
        let oa = ready(&mut ja).unwrap();
        assert_eq!((oa.generation, oa.leader.as_str()), (2, a.as_str()));
        h.sync(sync_req(&a, 2, &[]));
        // c arrives; a never rejoins: after the rebalance timeout c goes on alone.
        let (c, mut jc) = h.enter(&["range"]);
        pending(&mut jc);
        assert_eq!(h.advance(Duration::from_millis(5_001)), vec![a.clone()]);
        let oc = ready(&mut jc).unwrap();
        assert_eq!((oc.generation, oc.leader.as_str()), (3, c.as_str()));
        h.sync(sync_req(&c, 3, &[]));
        // c stops heartbeating: removed after its session; the group is empty.
        h.advance(Duration::from_millis(9_000));
        h.g.heartbeat(&c, None, 3, h.now).unwrap();
        assert!(h.advance(Duration::from_millis(9_999)).is_empty());
        assert_eq!(h.advance(Duration::from_millis(2)), vec![c]);
        assert_eq!(h.g.state, ClassicState::Empty);
        assert_eq!(h.g.generation, 4);
    }

    #[test]
    fn a_leader_that_never_syncs_is_removed() {
        let mut h = Harness::new();
        let (a, mut ja) = h.enter(&["range"]);
        let (b, mut jb) = h.enter(&["range"]);
        h.advance(DELAY);
        let leader = ready(&mut ja).unwrap().leader;
        ready(&mut jb).unwrap();
        let follower = if leader == a { b } else { a };
        let mut sf = h.sync(sync_req(&follower, 1, &[]));
        assert_eq!(h.advance(Duration::from_millis(5_000)), vec![leader]);
        assert_eq!(ready(&mut sf).unwrap_err().kind, GroupErrorKind::RebalanceInProgress);
        let mut jf = h.join(req(&follower, &["range"]));
        assert_eq!(ready(&mut jf).unwrap().leader, follower);
    }

    #[test]
    fn static_members_and_leaders_return_without_a_rebalance() {
        let mut h = Harness::new();
        let static_req = |inst: &str| {
            let mut r = req("", &["range"]);
            r.instance_id = Some(inst.into());
            r
        };
        let mut j1 = h.join(static_req("i1"));
        let mut j2 = h.join(static_req("i2"));
        h.advance(DELAY);
        let (o1, o2) = (ready(&mut j1).unwrap(), ready(&mut j2).unwrap());
        let (leader, follower) = if o1.leader == o1.member_id { (o1, o2) } else { (o2, o1) };
        let mut s = SyncRequest {
            instance_id: Some(if leader.member_id.starts_with("i1") { "i1" } else { "i2" }.into()),
            ..sync_req(
                &leader.member_id,
                1,
                &[(&leader.member_id, "L"), (&follower.member_id, "F")],
            )
        };
        h.sync(s.clone());
        let inst = if follower.member_id.starts_with("i1") {
            "i1"
        } else {
            "i2"
        };
        // The follower restarts (no LeaveGroup) and comes back under a new member id.
        let mut back = h.join(static_req(inst));
        let b = ready(&mut back).unwrap();
        assert_ne!(b.member_id, follower.member_id);
        assert_eq!(b.generation, 1, "no rebalance");
        assert_eq!(h.g.state, ClassicState::Stable);
        s.member_id = b.member_id.clone();
        s.instance_id = Some(inst.into());
        s.assignments.clear();
        assert_eq!(ready(&mut h.sync(s)).unwrap().assignment, "F");
        // The old incarnation is fenced.
        assert_eq!(
            h.g.heartbeat(&follower.member_id, Some(inst), 1, h.now)
                .unwrap_err()
                .kind,
            GroupErrorKind::FencedInstanceId
        );
        // Its commits too (a zombie must not move the group's offsets); the new one commits.
        assert_eq!(
            h.g.check_commit(&follower.member_id, 1, Some(inst)).unwrap_err().kind,
            GroupErrorKind::FencedInstanceId
        );
        h.g.check_commit(&b.member_id, 1, Some(inst)).unwrap();

        // The leader restarts too. Before v9 it is told the old leader's id (so it syncs
        // as a follower and gets its assignment back); nobody rebalances.
        let leader_inst = if inst == "i1" { "i2" } else { "i1" };
        let mut back = h.join(static_req(leader_inst));
        let l = ready(&mut back).unwrap();
        assert_eq!((l.generation, h.g.state), (1, ClassicState::Stable), "no rebalance");
        assert_eq!(l.leader, leader.member_id, "the old leader id: not asked to assign");
        assert!(l.members.is_empty() && !l.skip_assignment);
        let mut ls = sync_req(&l.member_id, 1, &[]);
        ls.instance_id = Some(leader_inst.into());
        assert_eq!(ready(&mut h.sync(ls)).unwrap().assignment, "L");
        // v9+ (KIP-814): it is the leader, sees the members, and must not assign.
        let mut again = static_req(leader_inst);
        again.supports_skip_assignment = true;
        let l2 = ready(&mut h.join(again)).unwrap();
        assert_eq!((l2.generation, h.g.state), (1, ClassicState::Stable), "no rebalance");
        assert_eq!((l2.leader.as_str(), l2.skip_assignment), (l2.member_id.as_str(), true));
        assert_eq!(l2.members.len(), 2);
        let mut ls = sync_req(&l2.member_id, 1, &[]);
        ls.instance_id = Some(leader_inst.into());
        assert_eq!(ready(&mut h.sync(ls)).unwrap().assignment, "L");
        assert_eq!(
            h.g.heartbeat(&l.member_id, Some(leader_inst), 1, h.now)
                .unwrap_err()
                .kind,
            GroupErrorKind::FencedInstanceId
        );
    }

    #[test]
    fn inconsistent_protocols_are_refused() {
        let mut h = Harness::new();
        let (_a, _ja) = h.enter(&["range"]);
        let mut r = h.join(req("", &["cooperative-sticky"]));
        assert_eq!(
            ready(&mut r).unwrap_err().kind,
            GroupErrorKind::InconsistentGroupProtocol
        );
        let mut other = req("", &["range"]);
        other.protocol_type = "connect".into();
        let mut r = h.join(other);
        assert_eq!(
            ready(&mut r).unwrap_err().kind,
            GroupErrorKind::InconsistentGroupProtocol
        );
    }

    #[test]
    fn a_member_that_lost_its_join_answer_gets_the_generation_again() {
        let mut h = Harness::new();
        let (a, mut ja) = h.enter(&["range"]);
        h.advance(DELAY);
        let first = ready(&mut ja).unwrap();
        let mut again = h.join(req(&a, &["range"]));
        assert_eq!(ready(&mut again).unwrap(), first);
        assert_eq!(h.g.generation, 1);
    }
}

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

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::Decodable;
use tokio::sync::oneshot;

use super::assignor::Tp;
use super::error::{GroupError, GroupErrorKind, GroupResult};
use super::state::ClassicMembers;

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

mod members;
mod requests;
mod wire;

pub use members::ClassicMember;
pub use requests::*;
pub use wire::{assignment_partitions, subscription_topics};

#[cfg(test)]
mod tests;

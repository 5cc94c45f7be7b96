//! The consumer protocol (KIP-848) on the group shell: a member joins, keeps alive and
//! leaves through heartbeats; the coordinator computes the target assignment and hands
//! partitions over as their owners release them (see the shell's module docs).

use super::*;

impl<C: ClassicMembers> Group<C> {
    /// Handles a heartbeat — leave, join or keep-alive, by its epoch. `new_member_id` is
    /// used when a joining member brings no id.
    pub fn heartbeat(
        &mut self,
        hb: Heartbeat,
        now: Instant,
        catalog: &BTreeMap<String, u32>,
        new_member_id: impl FnOnce() -> String,
    ) -> GroupResult<HeartbeatReply> {
        let (id, membership_changed) = match hb.member_epoch {
            LEAVE_EPOCH | STATIC_LEAVE_EPOCH => return self.leave(hb, now, catalog),
            JOIN_EPOCH => self.join(&hb, now, catalog, new_member_id)?,
            epoch => self.keep_alive(&hb, epoch, now)?,
        };
        self.update_target(catalog, membership_changed);
        Ok(self.reconcile(&id, Some(&hb.owned), now))
    }

    /// A member leaves (epoch -1), or a static member leaves for now (-2): its
    /// partitions stay reserved for its instance until its session ends.
    fn leave(&mut self, hb: Heartbeat, now: Instant, catalog: &BTreeMap<String, u32>) -> GroupResult<HeartbeatReply> {
        let m = self
            .members
            .get_mut(&hb.member_id)
            .ok_or_else(|| unknown_member(&self.id, &hb.member_id))?;
        if hb.member_epoch == STATIC_LEAVE_EPOCH && m.instance_id.is_some() {
            m.left = true;
            m.deadline = now + std::time::Duration::from_millis(m.session_timeout_ms as u64);
            self.dirty = true;
        } else {
            self.remove_member(&hb.member_id, catalog);
        }
        Ok(HeartbeatReply {
            member_id: hb.member_id,
            member_epoch: hb.member_epoch,
            reconciling: false,
            assignment: BTreeSet::new(),
        })
    }

    /// A member joins (epoch 0): checked against the group's protocol and assignor, added
    /// (or, a static member returning, put in its predecessor's place with its partitions
    /// and epoch). Returns its id and whether membership changed.
    fn join(
        &mut self,
        hb: &Heartbeat,
        now: Instant,
        catalog: &BTreeMap<String, u32>,
        new_member_id: impl FnOnce() -> String,
    ) -> GroupResult<(String, bool)> {
        if self.is_classic() {
            return Err(GroupError::new(
                GroupErrorKind::InconsistentGroupProtocol,
                format!(
                    "group {} has members of the classic protocol (JoinGroup); a group uses one protocol at a time",
                    self.id
                ),
            ));
        }
        let assignor = match hb.assignor.as_deref().filter(|a| !a.is_empty()) {
            Some(name) => Some(Assignor::parse(name).ok_or_else(|| {
                GroupError::new(
                    GroupErrorKind::UnsupportedAssignor,
                    format!("unknown assignor {name:?} (known: range, uniform)"),
                )
            })?),
            None => None,
        };
        let regex = hb
            .regex
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(compile_regex)
            .transpose()?;
        let others = self.members.keys().filter(|k| **k != hb.member_id).count();
        match assignor {
            Some(a) if others > 0 && a != self.assignor => {
                return Err(GroupError::new(
                    GroupErrorKind::InconsistentGroupProtocol,
                    format!(
                        "group {} uses the {} assignor; this member asked for {}",
                        self.id,
                        self.assignor.name(),
                        a.name()
                    ),
                ))
            }
            Some(a) if others == 0 => self.assignor = a,
            _ => {}
        }
        if !hb.member_id.is_empty() && self.members.contains_key(&hb.member_id) {
            // A member starting over: what it held is released first.
            self.remove_member(&hb.member_id, catalog);
        }
        let id = if hb.member_id.is_empty() {
            new_member_id()
        } else {
            hb.member_id.clone()
        };
        let session = std::time::Duration::from_millis(hb.session_timeout_ms as u64);
        let mut member = Member {
            id: id.clone(),
            instance_id: hb.instance_id.clone().filter(|i| !i.is_empty()),
            epoch: 0,
            previous_epoch: 0,
            session_timeout_ms: hb.session_timeout_ms,
            topics: hb.topics.clone(),
            regex,
            owned: BTreeMap::new(),
            left: false,
            deadline: now + session,
            rebalance_timeout_ms: rebalance_timeout(hb.rebalance_timeout_ms),
            revoking_since: None,
        };
        let replaced = member.instance_id.as_ref().and_then(|inst| {
            self.members
                .values()
                .find(|m| m.instance_id.as_ref() == Some(inst))
                .map(|m| m.id.clone())
        });
        let membership_changed = match replaced.and_then(|old| self.members.remove(&old)) {
            Some(old) => {
                // Static membership: the instance is back and takes over its
                // predecessor's partitions and epoch; the assignment stays.
                let changed = old.topics != member.topics || old.regex_str() != member.regex_str();
                member.epoch = old.epoch;
                member.previous_epoch = old.previous_epoch;
                member.owned = old.owned;
                if let Some(t) = self.target.remove(&old.id) {
                    self.target.insert(id.clone(), t);
                }
                changed
            }
            None => true,
        };
        self.members.insert(id.clone(), member);
        self.dirty = true;
        Ok((id, membership_changed))
    }

    /// A member's heartbeat at `epoch`: fenced if the epoch is not its own; renews its
    /// session and takes up a changed subscription. Returns its id and whether membership
    /// changed.
    fn keep_alive(&mut self, hb: &Heartbeat, epoch: i32, now: Instant) -> GroupResult<(String, bool)> {
        let m = self
            .members
            .get_mut(&hb.member_id)
            .ok_or_else(|| unknown_member(&self.id, &hb.member_id))?;
        if epoch != m.epoch && epoch != m.previous_epoch {
            return Err(GroupError::new(
                GroupErrorKind::FencedMemberEpoch,
                format!(
                    "member {} sent epoch {epoch}, but its epoch is {}: rejoin",
                    m.id, m.epoch
                ),
            ));
        }
        if m.left {
            // Only a heartbeat sent before the leave can still arrive; the instance comes
            // back by joining.
            return Err(GroupError::new(
                GroupErrorKind::UnknownMemberId,
                format!("member {} left the group; rejoin with its instance id", m.id),
            ));
        }
        m.deadline = now + std::time::Duration::from_millis(hb.session_timeout_ms as u64);
        m.session_timeout_ms = hb.session_timeout_ms;
        m.rebalance_timeout_ms = rebalance_timeout(hb.rebalance_timeout_ms);
        let mut membership_changed = false;
        if m.topics != hb.topics || m.regex_str() != hb.regex.as_deref().unwrap_or("") {
            m.topics = hb.topics.clone();
            m.regex = hb
                .regex
                .as_deref()
                .filter(|r| !r.is_empty())
                .map(compile_regex)
                .transpose()?;
            membership_changed = true;
            self.dirty = true;
        }
        Ok((hb.member_id.clone(), membership_changed))
    }

    /// Removes a member (leave or expiry), freeing what it held.
    pub fn remove_member(&mut self, id: &str, catalog: &BTreeMap<String, u32>) {
        if self.members.remove(id).is_some() {
            self.target.remove(id);
            self.dirty = true;
            self.update_target(catalog, true);
        }
    }

    /// Removes members whose session ended, or that held partitions they were told to
    /// release for longer than their rebalance timeout; returns their ids.
    pub fn expire(&mut self, now: Instant, catalog: &BTreeMap<String, u32>) -> Vec<String> {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                let stuck = m.revoking_since.is_some_and(|since| {
                    now.duration_since(since) >= std::time::Duration::from_millis(m.rebalance_timeout_ms as u64)
                });
                m.deadline <= now || stuck
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &gone {
            self.remove_member(id, catalog);
        }
        gone
    }

    /// Recomputes the target when membership changed or a subscribed topic's partition
    /// count did (a topic created, deleted or grown).
    pub fn update_target(&mut self, catalog: &BTreeMap<String, u32>, membership_changed: bool) {
        let specs: Vec<MemberSpec> = self
            .members
            .values()
            .map(|m| MemberSpec {
                id: m.id.clone(),
                sort_key: m.instance_id.clone().unwrap_or_else(|| m.id.clone()),
                topics: m.subscribed(catalog),
            })
            .collect();
        let topics: BTreeMap<String, u32> = specs
            .iter()
            .flat_map(|s| s.topics.iter())
            .filter_map(|t| catalog.get(t).map(|n| (t.clone(), *n)))
            .collect();
        if !membership_changed && topics == self.topics {
            return;
        }
        self.epoch += 1;
        self.target = self.assignor.assign(&specs, &topics, &self.target);
        self.assignment_epoch = self.epoch;
        self.topics = topics;
        self.dirty = true;
    }

    /// Moves one member toward its target. `reported`: what the member says it holds.
    pub fn reconcile(&mut self, id: &str, reported: Option<&BTreeSet<Tp>>, now: Instant) -> HeartbeatReply {
        let target = self.target.get(id).cloned().unwrap_or_default();
        let held_by_others: BTreeSet<Tp> = self
            .members
            .values()
            .filter(|m| m.id != id)
            .flat_map(|m| m.owned.keys().cloned())
            .collect();
        let assignment_epoch = self.assignment_epoch;
        let m = self.members.get_mut(id).expect("reconcile a member");
        let before = (m.epoch, m.owned.clone());
        if let Some(reported) = reported {
            // Released: not in the target and no longer held by the member.
            m.owned.retain(|tp, _| target.contains(tp) || reported.contains(tp));
        }
        let revoking = m.owned.keys().any(|tp| !target.contains(tp));
        m.revoking_since = if revoking { m.revoking_since.or(Some(now)) } else { None };
        let reply = if revoking {
            HeartbeatReply {
                member_id: id.to_owned(),
                member_epoch: m.epoch,
                reconciling: true,
                assignment: m.owned.keys().filter(|tp| target.contains(*tp)).cloned().collect(),
            }
        } else {
            if m.epoch != assignment_epoch {
                m.previous_epoch = m.epoch;
                m.epoch = assignment_epoch;
            }
            for tp in &target {
                if !m.owned.contains_key(tp) && !held_by_others.contains(tp) {
                    m.owned.insert(tp.clone(), m.epoch);
                }
            }
            HeartbeatReply {
                member_id: id.to_owned(),
                member_epoch: m.epoch,
                reconciling: m.owned.len() != target.len(),
                assignment: m.owned.keys().cloned().collect(),
            }
        };
        if before != (m.epoch, m.owned.clone()) {
            self.dirty = true;
        }
        reply
    }
}

//! Group membership: joining a consumer group (KIP-848's heartbeat on its own
//! connection), applying assignment changes between records with the rebalance
//! callbacks, and committing — automatically, on revoke, and by hand.

use super::*;

/// A subscribed consumer's side of its group membership.
pub(super) struct GroupHandle {
    pub(super) membership: Arc<Membership>,
    pub(super) heartbeats: JoinHandle<()>,
    pub(super) changes: watch::Receiver<u64>,
    /// The partitions this consumer holds (the keys of `positions`).
    pub(super) owned: BTreeSet<TopicPartition>,
    /// Positions this consumer last committed successfully.
    pub(super) committed: BTreeMap<TopicPartition, i64>,
    pub(super) last_auto_commit: Instant,
    /// A change is being applied (set until it is fully applied).
    pub(super) unsynced: bool,
    pub(super) on_assigned: Option<RebalanceCallback>,
    pub(super) on_revoked: Option<RebalanceCallback>,
}

impl Drop for GroupHandle {
    fn drop(&mut self) {
        // Without `close`, no leave is sent: the session times out, as for a crash.
        self.heartbeats.abort();
    }
}

impl Consumer {
    /// Joins consumer group `group` reading `topics`: the coordinator shares their
    /// partitions among the group's members. Each partition starts at the group's
    /// committed offset, else at `group.start_without_commit`, else per
    /// `auto_offset_reset`. Fails if the coordinator refuses the member.
    pub async fn subscribe(&mut self, group: &str, topics: impl IntoIterator<Item = impl Into<String>>) -> Result<()> {
        let topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        if topics.is_empty() {
            return Err(Error::InvalidArgument("subscribe to at least one topic".into()));
        }
        self.join(group, Subscription::Topics(topics)).await
    }

    /// Like [`subscribe`](Consumer::subscribe), for every topic whose whole name matches
    /// `pattern` (a regular expression), including topics created later.
    pub async fn subscribe_regex(&mut self, group: &str, pattern: &str) -> Result<()> {
        self.join(group, Subscription::Regex(pattern.to_owned())).await
    }

    pub(super) async fn join(&mut self, group: &str, subscription: Subscription) -> Result<()> {
        if self.group.is_some() {
            return Err(Error::InvalidArgument(
                "this consumer is already in a group; close it and create another".into(),
            ));
        }
        self.positions.clear();
        self.restart();
        let coordinator = Client::connect(self.client.addr().to_owned(), self.config.client.clone()).await?;
        let heartbeats = Client::connect(self.client.addr().to_owned(), self.config.client.clone()).await?;
        let (changed, changes) = watch::channel(0);
        let membership = Arc::new(Membership {
            group_id: group.to_owned(),
            config: self.config.group.clone(),
            subscription,
            coordinator,
            heartbeats,
            state: Mutex::new(MemberState::default()),
            changed,
            wake: Notify::new(),
            commit_lock: tokio::sync::Mutex::new(()),
            retry_backoff: self.config.retry_backoff,
        });
        let first = membership.heartbeat().await?;
        let heartbeats = spawn_heartbeats(membership.clone(), first);
        self.group = Some(GroupHandle {
            membership,
            heartbeats,
            changes,
            owned: BTreeSet::new(),
            committed: BTreeMap::new(),
            last_auto_commit: Instant::now(),
            unsynced: true,
            on_assigned: None,
            on_revoked: None,
        });
        Ok(())
    }

    /// Called (inside `next`) with the partitions this member receives, after their
    /// positions are set.
    pub fn on_assigned(&mut self, f: impl Fn(&[TopicPartition]) + Send + Sync + 'static) {
        if let Some(g) = self.group.as_mut() {
            g.on_assigned = Some(Arc::new(f));
        }
    }

    /// Called (inside `next`) with the partitions this member gives up, before their
    /// positions are committed and before anyone else may get them. Also called when the
    /// membership is lost (session expired); then nothing can be committed.
    pub fn on_revoked(&mut self, f: impl Fn(&[TopicPartition]) + Send + Sync + 'static) {
        if let Some(g) = self.group.as_mut() {
            g.on_revoked = Some(Arc::new(f));
        }
    }

    /// This member's id in its group (empty before the coordinator gave one).
    pub fn member_id(&self) -> Option<String> {
        self.group
            .as_ref()
            .map(|g| group::lock(&g.membership.state).member_id.clone())
    }

    /// The member's epoch in its group (`None` outside a group).
    pub fn member_epoch(&self) -> Option<i32> {
        self.group.as_ref().map(|g| group::lock(&g.membership.state).epoch)
    }

    /// Commits the positions of every partition this member holds, and waits.
    pub async fn commit(&mut self) -> Result<()> {
        let g = self.group.as_mut().ok_or_else(not_subscribed)?;
        let offsets = pending(&self.positions, g.owned.iter().cloned(), &g.committed);
        g.membership.commit(&offsets).await?;
        for (tp, (o, _)) in offsets {
            g.committed.insert(tp, o);
        }
        Ok(())
    }

    /// Starts committing the positions of every partition this member holds; the
    /// handle resolves to the result. Commits stay in order with later ones.
    pub fn commit_async(&mut self) -> Result<JoinHandle<Result<()>>> {
        let g = self.group.as_mut().ok_or_else(not_subscribed)?;
        let offsets = pending(&self.positions, g.owned.iter().cloned(), &g.committed);
        let m = g.membership.clone();
        Ok(tokio::spawn(async move { m.commit(&offsets).await }))
    }

    /// Commits the given (topic, partition) → (next offset to read, metadata).
    pub async fn commit_offsets(&mut self, offsets: BTreeMap<TopicPartition, (i64, String)>) -> Result<()> {
        let g = self.group.as_mut().ok_or_else(not_subscribed)?;
        g.membership.commit(&offsets).await?;
        for (tp, (o, _)) in offsets {
            g.committed.insert(tp, o);
        }
        Ok(())
    }

    /// The group's committed offsets for these partitions.
    pub async fn committed(
        &self,
        partitions: impl IntoIterator<Item = TopicPartition>,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let g = self.group.as_ref().ok_or_else(not_subscribed)?;
        g.membership.committed(&partitions.into_iter().collect()).await
    }

    /// Applies what the coordinator decided since the last call. Cancel-safe: a change
    /// interrupted at an await is applied again by the next call.
    pub(super) async fn sync_group(&mut self) -> Result<()> {
        let Some(g) = self.group.as_mut() else { return Ok(()) };
        // Per record this is one atomic load; the work below runs only on a change (or
        // to finish one that failed or was interrupted).
        if !g.unsynced && !g.changes.has_changed().unwrap_or(true) {
            return Ok(());
        }
        g.unsynced = true;
        g.changes.borrow_and_update();
        let m = g.membership.clone();
        let (on_assigned, on_revoked) = (g.on_assigned.clone(), g.on_revoked.clone());
        let (assignment, lost, fatal) = {
            let mut st = group::lock(&m.state);
            // Claimed before anything is taken: heartbeats report these as held until
            // the change is applied, so none can move while this consumer takes it.
            st.claimed = st.assignment.clone();
            (st.assignment.clone(), std::mem::take(&mut st.lost), st.fatal.clone())
        };
        if let Some(e) = fatal {
            return Err(e);
        }
        if lost && !g.owned.is_empty() {
            let all: Vec<TopicPartition> = std::mem::take(&mut g.owned).into_iter().collect();
            g.committed.clear();
            if let Some(cb) = &on_revoked {
                cb(&all);
            }
            self.positions.clear();
            self.restart();
            publish(&m, &BTreeSet::new());
        }
        let g = self.group.as_mut().expect("subscribed");
        let revoked: Vec<TopicPartition> = g.owned.difference(&assignment).cloned().collect();
        let added: Vec<TopicPartition> = assignment.difference(&g.owned).cloned().collect();
        if !revoked.is_empty() {
            if let Some(cb) = &on_revoked {
                cb(&revoked);
            }
            if m.config.commit_on_revoke {
                let offsets = pending(&self.positions, revoked.iter().cloned(), &g.committed);
                if let Err(e) = m.commit(&offsets).await {
                    warn!(error = %e, "commit of revoked partitions failed; their next owner may re-read records");
                }
            }
            let g = self.group.as_mut().expect("subscribed");
            for tp in &revoked {
                g.owned.remove(tp);
                g.committed.remove(tp);
            }
            publish(&m, &g.owned);
            for tp in &revoked {
                self.positions.remove(&key(tp));
            }
            self.restart();
            // Tell the coordinator now, so the next owner need not wait a heartbeat.
            m.wake.notify_one();
        }
        if !added.is_empty() {
            let committed = m.committed(&added.iter().cloned().collect()).await?;
            let mut positions = Vec::with_capacity(added.len());
            for tp in &added {
                let pos = match (committed.get(tp), m.config.start_without_commit) {
                    (Some(o), _) => Some(*o),
                    (None, Some(at)) => Some(self.resolve(&tp.0, tp.1, at).await?),
                    (None, None) => None,
                };
                positions.push(pos);
            }
            let g = self.group.as_mut().expect("subscribed");
            for (tp, pos) in added.iter().zip(positions) {
                if let Some(o) = committed.get(tp) {
                    g.committed.insert(tp.clone(), *o);
                }
                g.owned.insert(tp.clone());
                self.positions.insert(key(tp), pos);
            }
            publish(&m, &g.owned);
            self.restart();
            if let Some(cb) = &on_assigned {
                cb(&added);
            }
            m.wake.notify_one();
        }
        self.group.as_mut().expect("subscribed").unsynced = false;
        group::lock(&m.state).claimed.clear();
        Ok(())
    }

    pub(super) fn maybe_auto_commit(&mut self) {
        let Some(g) = self.group.as_mut() else { return };
        let cfg = &g.membership.config;
        if !cfg.auto_commit || g.last_auto_commit.elapsed() < cfg.auto_commit_interval {
            return;
        }
        g.last_auto_commit = Instant::now();
        let offsets = pending(&self.positions, g.owned.iter().cloned(), &g.committed);
        let m = g.membership.clone();
        tokio::spawn(async move {
            if let Err(e) = m.commit(&offsets).await {
                debug!(error = %e, "auto commit failed");
            }
        });
    }
}

/// Tells the heartbeat task what this consumer holds now.
pub(super) fn publish(m: &Membership, held: &BTreeSet<TopicPartition>) {
    group::lock(&m.state).owned = held.clone();
}

pub(super) fn not_subscribed() -> Error {
    Error::InvalidArgument("not in a group: call subscribe first".into())
}

//! The leader's side: how far each follower has copied (the offset of its fetches), the
//! high watermark (the lowest log end in the ISR), which followers lag past
//! `replica.lag.time.max.ms` or have caught up, and the checks on a follower's fetch and
//! OffsetForLeaderEpoch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runnel_protocol::ErrorCode;

use super::Replication;
use crate::cluster::{NodeId, Refusal};
use crate::storage::PartitionLog;

/// A follower's progress as its fetches tell it.
#[derive(Debug, Clone, Copy)]
struct Progress {
    /// Its log end offset: the offset it fetched from last.
    leo: u64,
    /// The follower's registration epoch (the image's, when the fetch was served): a
    /// follower that restarted — after a power cut, with its unsynced tail gone — is a
    /// new registration, and what its previous process fetched says nothing of its log
    /// now (Kafka's KIP-903). Such progress never lets it join the ISR.
    broker_epoch: i64,
    /// The last time it was caught up (Kafka's `lastCaughtUpTimeMs`): its fetch reached
    /// the leader's end then, or reached the end the leader had at its previous fetch.
    caught_up_at: Instant,
    last_fetch_at: Instant,
    leader_end_at_last_fetch: u64,
}

/// An ISR change a leader asks the controller for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub isr: Vec<NodeId>,
    /// The ISR it was computed from.
    pub from: Vec<NodeId>,
    /// Members added, with the registration epoch their progress came from.
    pub joining: Vec<(NodeId, i64)>,
    /// For the log: the high watermark the joining members were checked against, and
    /// their log end offsets then.
    pub hw: u64,
    pub joining_ends: Vec<u64>,
}

/// A partition this broker leads, in one leader epoch.
pub(super) struct Leading {
    pub log: Arc<PartitionLog>,
    pub epoch: i32,
    replicas: Vec<NodeId>,
    isr: Mutex<Vec<NodeId>>,
    /// An ISR change sent to the controller and not yet seen in the image. Until it is,
    /// the high watermark counts the members of both (Kafka's "maximal ISR", KIP-497):
    /// a follower being added may already be in the controller's ISR — and be elected
    /// from it — so nothing it does not hold may count as committed.
    pending: Mutex<Option<Vec<NodeId>>>,
    progress: Mutex<HashMap<NodeId, Progress>>,
    /// When this leadership began: in-sync followers not heard from yet count as caught
    /// up then, so each gets a full lag time to start fetching.
    since: Instant,
}

impl Leading {
    pub fn new(log: Arc<PartitionLog>, epoch: i32, replicas: Vec<NodeId>, isr: Vec<NodeId>) -> Leading {
        Leading {
            log,
            epoch,
            replicas,
            isr: Mutex::new(isr),
            pending: Mutex::new(None),
            progress: Mutex::new(HashMap::new()),
            since: Instant::now(),
        }
    }

    /// The ISR as the image says; true if it changed.
    pub fn set_isr(&self, isr: &[NodeId]) -> bool {
        let mut current = crate::sync::lock(&self.isr);
        if current.as_slice() == isr {
            return false;
        }
        *current = isr.to_vec();
        let pending = crate::sync::lock(&self.pending);
        self.sync_log(&current, &pending);
        true
    }

    /// An ISR change is on its way to the controller (`Some`), or answered (`None`).
    pub fn set_pending(&self, isr: Option<Vec<NodeId>>) {
        let current = crate::sync::lock(&self.isr);
        let mut pending = crate::sync::lock(&self.pending);
        *pending = isr;
        self.sync_log(&current, &pending);
    }

    /// Tells the log the ISR's size (for `min.insync.replicas`) and whether followers
    /// count for its high watermark: with more than the leader in the ISR, or in an
    /// expansion in flight. Called with the `isr` and `pending` locks held.
    fn sync_log(&self, isr: &[NodeId], pending: &Option<Vec<NodeId>>) {
        let counted = isr.len() > 1 || pending.as_ref().is_some_and(|p| p.len() > 1);
        self.log.set_isr_size(isr.len(), counted);
    }

    /// A fetch from follower `id`, registered in `broker_epoch`, at `offset`.
    fn on_fetch(&self, id: NodeId, broker_epoch: i64, offset: u64) {
        let now = Instant::now();
        let end = self.log.end_offset();
        let mut progress = crate::sync::lock(&self.progress);
        let fresh = Progress {
            leo: offset,
            broker_epoch,
            caught_up_at: self.since,
            last_fetch_at: now,
            leader_end_at_last_fetch: 0,
        };
        let p = progress.entry(id).or_insert(fresh);
        if p.broker_epoch != broker_epoch {
            // A new process of that broker: nothing of the previous one's progress holds.
            *p = fresh;
        }
        if offset >= end {
            p.caught_up_at = now;
        } else if offset >= p.leader_end_at_last_fetch {
            p.caught_up_at = p.caught_up_at.max(p.last_fetch_at);
        }
        p.leo = offset;
        p.last_fetch_at = now;
        p.leader_end_at_last_fetch = end;
    }

    /// Moves the high watermark to the lowest log end among the ISR (this broker's is
    /// its end offset), counting the members of an ISR change in flight too; stays put
    /// while an in-sync follower has not fetched yet.
    pub fn update_high_watermark(&self, me: NodeId) {
        // Locks in the order `begin_isr_change` takes them; nothing is copied (this runs on
        // every follower fetch).
        let isr = crate::sync::lock(&self.isr);
        let pending = crate::sync::lock(&self.pending);
        let progress = crate::sync::lock(&self.progress);
        let mut hw = self.log.end_offset();
        let members = isr.iter().chain(pending.iter().flatten());
        for id in members.filter(|id| **id != me) {
            match progress.get(id) {
                Some(p) => hw = hw.min(p.leo),
                None => return,
            }
        }
        // Moved while the locks are held: an ISR change that adds a follower (checked
        // against this high watermark under the same locks) cannot slip in between the
        // computation and the move, and leave acknowledged records it does not hold.
        self.log.advance_high_watermark(hw);
        drop((isr, pending, progress));
    }

    /// The ISR this leader wants, if it differs from the current one — in-sync followers
    /// not caught up for `lag_max` leave; live followers that reached the high watermark
    /// join — recorded as the pending change before the high watermark can move again:
    /// a joining follower holds everything below it, and from then on the high
    /// watermark waits for it too (the maximal ISR).
    pub fn begin_isr_change(
        &self,
        me: NodeId,
        lag_max: Duration,
        registration: impl Fn(NodeId) -> Option<i64>,
    ) -> Option<IsrChange> {
        // The order `update_high_watermark` takes them in.
        let isr = crate::sync::lock(&self.isr);
        let mut pending = crate::sync::lock(&self.pending);
        let progress = crate::sync::lock(&self.progress);
        // A leader alone in its ISR acknowledges at its end offset. Before a follower
        // is checked for joining, followers count for the high watermark (which starts
        // at the end offset): an append acknowledged after the check, and not held by
        // the joining follower, is impossible from here.
        let current = |id: NodeId| {
            let epoch = registration(id);
            progress.get(&id).filter(|p| epoch == Some(p.broker_epoch)).copied()
        };
        let may_join = self
            .replicas
            .iter()
            .any(|id| *id != me && !isr.contains(id) && current(*id).is_some());
        if may_join {
            self.log.set_isr_size(isr.len(), true);
        }
        match self.wanted_isr(&isr, &progress, me, lag_max, &current) {
            Some(wanted) => {
                *pending = Some(wanted.clone());
                self.sync_log(&isr, &pending);
                let (joining, joining_ends) = wanted
                    .iter()
                    .filter(|id| !isr.contains(id))
                    .filter_map(|id| progress.get(id).map(|p| ((*id, p.broker_epoch), p.leo)))
                    .unzip();
                Some(IsrChange {
                    isr: wanted,
                    from: isr.clone(),
                    joining,
                    hw: self.log.high_watermark(),
                    joining_ends,
                })
            }
            None => {
                self.sync_log(&isr, &pending);
                None
            }
        }
    }

    fn wanted_isr(
        &self,
        isr: &[NodeId],
        progress: &HashMap<NodeId, Progress>,
        me: NodeId,
        lag_max: Duration,
        current: &impl Fn(NodeId) -> Option<Progress>,
    ) -> Option<Vec<NodeId>> {
        let hw = self.log.high_watermark();
        let caught_up_at = |id: &NodeId| progress.get(id).map_or(self.since, |p| p.caught_up_at);
        let wanted: Vec<NodeId> = self
            .replicas
            .iter()
            .copied()
            .filter(|id| {
                if *id == me {
                    return true;
                }
                if isr.contains(id) {
                    caught_up_at(id).elapsed() <= lag_max
                } else {
                    // Live, and heard from in its current registration.
                    current(*id).is_some_and(|p| p.leo >= hw && p.caught_up_at.elapsed() <= lag_max)
                }
            })
            .collect();
        let mut sorted_now = isr.to_vec();
        sorted_now.sort_unstable();
        let mut sorted_wanted = wanted.clone();
        sorted_wanted.sort_unstable();
        (sorted_now != sorted_wanted).then_some(wanted)
    }
}

/// A follower's fetch of one partition, as the leader checks it.
pub struct FollowerFetch<'a> {
    pub replica: NodeId,
    pub topic: &'a str,
    pub partition: u32,
    pub offset: i64,
    pub current_leader_epoch: Option<i32>,
}

impl Replication {
    fn check_epoch(&self, topic: &str, partition: u32, asked: Option<i32>) -> Result<Arc<Leading>, Refusal> {
        let Some(state) = self.leading_state(topic, partition) else {
            return Err(Refusal::new(
                ErrorCode::NotLeaderOrFollower,
                format!("broker {} does not lead {topic}-{partition}", self.node_id()),
            ));
        };
        match asked {
            Some(e) if e < state.epoch => Err(Refusal::new(
                ErrorCode::FencedLeaderEpoch,
                format!(
                    "{topic}-{partition} is in leader epoch {}, the fetch in {e}",
                    state.epoch
                ),
            )),
            Some(e) if e > state.epoch => Err(Refusal::new(
                ErrorCode::UnknownLeaderEpoch,
                format!(
                    "{topic}-{partition}: this leader is in epoch {}, the fetch in {e} (its metadata is behind)",
                    state.epoch
                ),
            )),
            _ => Ok(state),
        }
    }

    /// Checks a follower's fetch and records its progress (moving the high watermark);
    /// the log to read from, up to its end.
    pub fn follower_fetch(&self, f: &FollowerFetch<'_>) -> Result<Arc<PartitionLog>, Refusal> {
        let state = self.check_epoch(f.topic, f.partition, f.current_leader_epoch)?;
        if !state.replicas.contains(&f.replica) || f.replica == self.node_id() {
            return Err(Refusal::new(
                ErrorCode::NotLeaderOrFollower,
                format!("broker {} is not a follower of {}-{}", f.replica, f.topic, f.partition),
            ));
        }
        if f.offset >= 0 {
            let broker_epoch = self.cluster().image().brokers.get(&f.replica).map_or(-1, |b| b.epoch);
            state.on_fetch(f.replica, broker_epoch, f.offset as u64);
            state.update_high_watermark(self.node_id());
        }
        Ok(state.log.clone())
    }

    /// OffsetForLeaderEpoch on a partition this broker leads: the largest epoch at or
    /// below `epoch` in its log, and where it ends (`(-1, -1)`: none).
    pub fn epoch_end_offset(
        &self,
        topic: &str,
        partition: u32,
        current_leader_epoch: i32,
        epoch: i32,
    ) -> Result<(i32, i64), Refusal> {
        let state = self.check_epoch(topic, partition, Some(current_leader_epoch))?;
        Ok(state
            .log
            .epoch_end_offset(epoch)
            .map_or((-1, -1), |(e, end)| (e, end as i64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Flusher, LogConfig};
    use runnel_protocol::{BatchBuilder, BatchOptions, Record};

    fn leading(dir: &std::path::Path) -> Leading {
        let log = PartitionLog::open(dir, LogConfig::default(), Flusher::start(1), true).unwrap();
        let mut b = BatchBuilder::new(BatchOptions::default());
        for i in 0..10 {
            b.push(&Record::new(i, None, Some(b"v")));
        }
        log.append(&mut b.finish().unwrap()).unwrap();
        // Leader 1, followers 2 and 3; 3 has left the ISR.
        Leading::new(log, 0, vec![1, 2, 3], vec![1, 2])
    }

    #[test]
    fn a_follower_joins_on_progress_from_its_current_registration_only() {
        let dir = tempfile::tempdir().unwrap();
        let l = leading(dir.path());
        let lag = Duration::from_secs(30);
        l.on_fetch(2, 0, 10);
        l.on_fetch(3, 0, 10);
        l.update_high_watermark(1);
        assert_eq!(l.log.high_watermark(), 10);
        // Broker 3 restarted (a power cut took its unsynced tail) and registered again,
        // in epoch 1; it has not fetched yet. What its previous process fetched does not
        // make it in sync.
        assert_eq!(l.begin_isr_change(1, lag, |id| Some(if id == 3 { 1 } else { 0 })), None);
        // Its first fetch in the new registration, from where its log now ends.
        l.on_fetch(3, 1, 4);
        assert_eq!(l.begin_isr_change(1, lag, |id| Some(if id == 3 { 1 } else { 0 })), None);
        l.set_pending(None);
        // Caught up again: it joins.
        l.on_fetch(3, 1, 10);
        assert_eq!(
            l.begin_isr_change(1, lag, |id| Some(if id == 3 { 1 } else { 0 })),
            Some(IsrChange {
                isr: vec![1, 2, 3],
                from: vec![1, 2],
                joining: vec![(3, 1)],
                hw: 10,
                joining_ends: vec![10],
            })
        );
        // A fenced broker (no registration) never joins, whatever it fetched.
        l.set_pending(None);
        assert_eq!(l.begin_isr_change(1, lag, |id| (id != 3).then_some(0)), None);
    }
}

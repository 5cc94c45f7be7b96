//! Data replication, as Kafka's: followers fetch their partitions from the leader (the
//! Fetch path, `sendfile` on the leader) and append the batches as they are; the leader
//! tracks how far each follower has copied, moves the high watermark to the lowest log
//! end in the ISR, and asks the controller to shrink or grow the ISR; a follower that
//! starts following cuts its log where OffsetForLeaderEpoch says it diverges.
//!
//! ```text
//! metadata image --(run: roles)--> PartitionLog role (leader epoch / follower)
//! follower  --Fetch(replica_id)-->  leader: progress, high watermark, records (sendfile)
//! leader    --AlterPartition-->     controller: ISR shrink (lagging) / expand (caught up)
//! ```
//!
//! The roles follow the metadata image: a partition this broker leads in epoch E gets
//! `become_leader(E)` before it serves anything in E (until then produce on it is refused
//! with NOT_LEADER_OR_FOLLOWER, and clients retry), and one another broker leads gets
//! `become_follower(E)` and a fetcher for that leader.

mod follower;
mod leader;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::cluster::{Cluster, NodeId, NO_LEADER};
use crate::error::Result;
use crate::storage::{PartitionLog, Role};
pub use leader::FollowerFetch;

/// A partition: topic name and index.
pub type PartitionKey = (String, u32);

/// Resolves a partition to its local log (topics, and the internal offsets log).
pub type Resolver = Box<dyn Fn(&str, u32) -> Result<Arc<PartitionLog>> + Send + Sync>;

/// How often roles, the ISR and the high-watermark checkpoints are looked at when the
/// image does not change.
const TICK: Duration = Duration::from_millis(100);
/// How often each log's high watermark is checkpointed (Kafka's
/// `replica.high.watermark.checkpoint.interval.ms` is 5 s).
const HW_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// A partition this broker follows.
#[derive(Clone)]
struct Following {
    log: Arc<PartitionLog>,
    leader: NodeId,
    epoch: i32,
    /// Cut at the divergence point with this leader (OffsetForLeaderEpoch) yet.
    truncated: bool,
}

pub struct Replication {
    cluster: Arc<Cluster>,
    resolve: Resolver,
    lag_time_max: Duration,
    /// Partitions this broker leads.
    leading: Mutex<HashMap<PartitionKey, Arc<leader::Leading>>>,
    /// Partitions this broker follows.
    following: Mutex<HashMap<PartitionKey, Following>>,
    /// One fetcher task per leader broker this broker follows partitions of.
    fetchers: Mutex<HashMap<NodeId, tokio::task::JoinHandle<()>>>,
    /// ISR changes sent to the controller and not answered yet, and their tasks.
    altering: Mutex<BTreeSet<PartitionKey>>,
    alter_tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    stopped: AtomicBool,
    /// Woken when the partitions followed change, so a fetcher in a long poll starts
    /// over with the new set (a partition that just moved to its leader is fetched at
    /// once, not after the poll).
    follow_changed: tokio::sync::Notify,
}

impl Replication {
    /// Starts following the cluster's metadata: roles, fetchers, ISR upkeep.
    pub fn start(cluster: Arc<Cluster>, resolve: Resolver) -> Arc<Replication> {
        let lag_time_max = Duration::from_millis(cluster.config().replica_lag_time_max_ms);
        let r = Arc::new(Replication {
            cluster,
            resolve,
            lag_time_max,
            leading: Mutex::new(HashMap::new()),
            following: Mutex::new(HashMap::new()),
            fetchers: Mutex::new(HashMap::new()),
            altering: Mutex::new(BTreeSet::new()),
            alter_tasks: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
            follow_changed: tokio::sync::Notify::new(),
        });
        tokio::spawn(run(Arc::downgrade(&r)));
        r
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    pub fn node_id(&self) -> NodeId {
        self.cluster.node_id()
    }

    /// The epoch this broker leads `topic`/`partition` in, once its log has taken the
    /// role (`None` while it follows, or has not caught up with the image yet).
    pub fn leads(&self, topic: &str, partition: u32) -> Option<i32> {
        let leading = crate::sync::lock(&self.leading);
        leading.get(&(topic.to_owned(), partition)).map(|l| l.epoch)
    }

    /// As [`leads`](Replication::leads), first bringing the roles in line with the image
    /// if this broker should lead the partition but has not taken the role yet (so a
    /// caller that has just seen the image, like the group coordinator, does not wait for
    /// the next pass).
    pub fn leads_now(self: &Arc<Self>, topic: &str, partition: u32) -> Option<i32> {
        let epoch = self
            .cluster
            .image()
            .partition(topic, partition)
            .filter(|p| p.leader == self.node_id())
            .map(|p| p.leader_epoch)?;
        if self.leads(topic, partition) != Some(epoch) {
            self.reconcile();
        }
        self.leads(topic, partition)
    }

    fn leading_state(&self, topic: &str, partition: u32) -> Option<Arc<leader::Leading>> {
        crate::sync::lock(&self.leading)
            .get(&(topic.to_owned(), partition))
            .cloned()
    }

    /// Brings roles in line with the image: which partitions this broker leads (and
    /// their ISR) and which it follows, from whom.
    fn reconcile(self: &Arc<Self>) {
        let me = self.node_id();
        let image = self.cluster.image();
        // Leaderships in the image before this process's registration is applied are an
        // earlier incarnation's: none is taken up until then (followings are).
        let registered = self.cluster.registered_in_image();
        let mut seen: BTreeSet<PartitionKey> = BTreeSet::new();
        for (name, t) in &image.topics {
            for (p, part) in t.partitions.iter().enumerate() {
                if !part.replicas.contains(&me) {
                    continue;
                }
                let key = (name.clone(), p as u32);
                let Ok(log) = (self.resolve)(name, p as u32) else {
                    // Not created locally yet: the next pass picks it up.
                    continue;
                };
                seen.insert(key.clone());
                if part.leader == me && !registered {
                    continue;
                }
                if part.leader == me {
                    crate::sync::lock(&self.following).remove(&key);
                    let current = self
                        .leading_state(name, p as u32)
                        .filter(|l| l.epoch == part.leader_epoch);
                    let state = match current {
                        Some(s) => s,
                        None => {
                            log.become_leader(part.leader_epoch, part.isr.len());
                            info!(topic = %name, partition = p, epoch = part.leader_epoch, isr = ?part.isr, "leading");
                            let s = Arc::new(leader::Leading::new(
                                log.clone(),
                                part.leader_epoch,
                                part.replicas.clone(),
                                part.isr.clone(),
                            ));
                            crate::sync::lock(&self.leading).insert(key.clone(), s.clone());
                            s
                        }
                    };
                    if state.set_isr(&part.isr) && !crate::sync::lock(&self.altering).contains(&key) {
                        state.set_pending(None);
                    }
                    state.update_high_watermark(me);
                } else {
                    crate::sync::lock(&self.leading).remove(&key);
                    let mut following = crate::sync::lock(&self.following);
                    let current = following
                        .get(&key)
                        .is_some_and(|f| f.leader == part.leader && f.epoch == part.leader_epoch);
                    if current {
                        continue;
                    }
                    if log.role()
                        != (Role::Follower {
                            epoch: part.leader_epoch,
                        })
                    {
                        log.become_follower(part.leader_epoch);
                    }
                    if part.leader == NO_LEADER {
                        following.remove(&key);
                        continue;
                    }
                    info!(topic = %name, partition = p, leader = part.leader, epoch = part.leader_epoch, "following");
                    self.follow_changed.notify_waiters();
                    following.insert(
                        key,
                        Following {
                            log,
                            leader: part.leader,
                            epoch: part.leader_epoch,
                            truncated: false,
                        },
                    );
                }
            }
        }
        crate::sync::lock(&self.leading).retain(|k, _| seen.contains(k));
        crate::sync::lock(&self.following).retain(|k, _| seen.contains(k));
        self.start_fetchers();
    }

    /// One fetcher per leader this broker follows partitions of; none for the others.
    fn start_fetchers(self: &Arc<Self>) {
        if self.stopped.load(Ordering::Acquire) {
            return;
        }
        let leaders: BTreeSet<NodeId> = crate::sync::lock(&self.following).values().map(|f| f.leader).collect();
        let mut fetchers = crate::sync::lock(&self.fetchers);
        fetchers.retain(|id, task| {
            let keep = leaders.contains(id) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for id in leaders {
            fetchers
                .entry(id)
                .or_insert_with(|| tokio::spawn(follower::run(Arc::downgrade(self), id)));
        }
    }

    /// The partitions followed from `leader`, as the fetcher works on them.
    fn followed_from(&self, leader: NodeId) -> Vec<(PartitionKey, Following)> {
        crate::sync::lock(&self.following)
            .iter()
            .filter(|(_, f)| f.leader == leader)
            .map(|(k, f)| (k.clone(), f.clone()))
            .collect()
    }

    /// The fetcher cut `key`'s log at its divergence point for `epoch`.
    fn mark_truncated(&self, key: &PartitionKey, epoch: i32, truncated: bool) {
        if let Some(f) = crate::sync::lock(&self.following).get_mut(key) {
            if f.epoch == epoch {
                f.truncated = truncated;
            }
        }
    }

    /// Shrinks the ISR of led partitions by followers that lag past `lag_time_max`, and
    /// grows it by followers that caught up: one AlterPartition per change, at most one
    /// in flight per partition.
    fn maintain_isr(self: &Arc<Self>) {
        let me = self.node_id();
        let image = self.cluster.image();
        let leading: Vec<(PartitionKey, Arc<leader::Leading>)> = crate::sync::lock(&self.leading)
            .iter()
            .map(|(k, l)| (k.clone(), l.clone()))
            .collect();
        for (key, state) in leading {
            // One change in flight per partition: the set is held while the next is
            // chosen, so two passes cannot both begin one.
            let mut altering = crate::sync::lock(&self.altering);
            if altering.contains(&key) {
                continue;
            }
            let Some(change) = state.begin_isr_change(me, self.lag_time_max, |id| {
                image.brokers.get(&id).filter(|b| !b.fenced).map(|b| b.epoch)
            }) else {
                continue;
            };
            altering.insert(key.clone());
            drop(altering);
            info!(
                topic = %key.0, partition = key.1, epoch = state.epoch, from = ?change.from, to = ?change.isr,
                joining = ?change.joining, joining_ends = ?change.joining_ends, hw = change.hw,
                "asking the controller for an ISR change"
            );
            let this = self.clone();
            let task = tokio::spawn(async move {
                let call = crate::cluster::controller::ControllerCall::AlterPartition {
                    topic: key.0.clone(),
                    partition: key.1,
                    leader: me,
                    leader_epoch: state.epoch,
                    isr: change.isr,
                    from: Some(change.from),
                    joining: change.joining,
                };
                // Whether the controller has answered for sure (applied, or refused);
                // a lost answer may still have been committed.
                let settled = match this.cluster.call_controller(call).await {
                    Ok(results) => {
                        if let Some(Err(r)) = results.first() {
                            warn!(topic = %key.0, partition = key.1, error = %r.message, "ISR change refused");
                        }
                        true
                    }
                    Err(r) => {
                        warn!(topic = %key.0, partition = key.1, error = %r.message, "ISR change failed");
                        false
                    }
                };
                // The image first (the ISR as the controller has it now), then the
                // pending change dropped: the high watermark never counts fewer members
                // than the controller's ISR may hold. An unsettled change stays pending
                // until the image's ISR next changes (`reconcile`).
                if !this.stopped.load(Ordering::Acquire) {
                    this.reconcile();
                }
                if settled {
                    state.set_pending(None);
                }
                crate::sync::lock(&this.altering).remove(&key);
            });
            let mut tasks = crate::sync::lock(&self.alter_tasks);
            tasks.retain(|t| !t.is_finished());
            tasks.push(task);
        }
    }

    /// Writes every local replica's high-watermark checkpoint that moved. Blocking.
    fn checkpoint(&self) {
        let logs: Vec<Arc<PartitionLog>> = crate::sync::lock(&self.leading)
            .values()
            .map(|l| l.log.clone())
            .chain(crate::sync::lock(&self.following).values().map(|f| f.log.clone()))
            .collect();
        for log in logs {
            if let Err(e) = log.checkpoint_high_watermark() {
                warn!(log = %log.dir().display(), error = %e, "high-watermark checkpoint not written");
            }
        }
    }

    /// Stops leading, fetching and changing ISRs (shutdown, after the controlled shutdown
    /// moved the leaderships) and writes the high-watermark checkpoints.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        for (_, task) in crate::sync::lock(&self.fetchers).drain() {
            task.abort();
        }
        for task in crate::sync::lock(&self.alter_tasks).drain(..) {
            task.abort();
        }
        self.checkpoint();
        // Nothing led here is served any more: appends still waiting for the ISR are
        // answered now (NOT_LEADER_OR_FOLLOWER, and the producer retries on the new
        // leader) rather than at their timeout.
        for state in crate::sync::lock(&self.leading).drain().map(|(_, s)| s) {
            state.log.become_follower(state.epoch);
        }
    }
}

async fn run(replication: Weak<Replication>) {
    let mut last_checkpoint = Instant::now();
    loop {
        let Some(r) = replication.upgrade() else { return };
        if r.stopped.load(Ordering::Acquire) {
            return;
        }
        let notify = r.cluster.image_changed();
        let changed = notify.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        r.reconcile();
        r.maintain_isr();
        if last_checkpoint.elapsed() >= HW_CHECKPOINT_EVERY {
            last_checkpoint = Instant::now();
            let rc = r.clone();
            let _ = tokio::task::spawn_blocking(move || rc.checkpoint()).await;
        }
        drop(r);
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

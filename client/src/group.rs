//! Group membership for [`Consumer::subscribe`](crate::Consumer::subscribe): a background
//! task heartbeats the coordinator on its own connection (so a long-poll fetch never
//! delays it) and publishes the assignment it is given; the consumer applies changes
//! between records — revoking (callback, commit, stop fetching) and then reporting what
//! it holds, so the coordinator can hand the partitions over — the way Kafka's consumer
//! runs rebalance callbacks inside `poll`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runnel_protocol::messages::{
    ConsumerGroupHeartbeatRequest, OffsetCommitPartition, OffsetCommitRequest, OffsetCommitTopic, OffsetFetchRequest,
    TopicPartitions,
};
use runnel_protocol::ErrorCode;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::client::{check, Client};
use crate::consumer::Offset;
use crate::error::{Error, Result};

/// A topic partition, as callbacks and offsets name it.
pub type TopicPartition = (String, u32);

/// A callback on assignment changes; gets the partitions concerned.
pub type RebalanceCallback = Arc<dyn Fn(&[TopicPartition]) + Send + Sync>;

/// How a [`crate::Consumer`] takes part in a consumer group.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Without a heartbeat for this long the coordinator removes the member and gives
    /// its partitions to the others (bounded by the broker's min and max). Default 45 s;
    /// Kafka's `session.timeout.ms`.
    pub session_timeout: Duration,
    /// How long the application may go without calling `next` while this member must
    /// give up partitions; past it the coordinator removes the member and it rejoins.
    /// Default 5 min; Kafka's `max.poll.interval.ms`.
    pub rebalance_timeout: Duration,
    /// Static membership: a stable name for this member (e.g. a pod name). A restarted
    /// member with the same id gets its partitions back without a reassignment, if it
    /// returns within the session timeout. Default `None`; Kafka's `group.instance.id`.
    pub instance_id: Option<String>,
    /// `range` or `uniform`; the group's first member decides. Default `None`: the
    /// broker's default (`uniform`). Kafka's `group.remote.assignor`.
    pub assignor: Option<String>,
    /// Commit the positions of delivered records every `auto_commit_interval`, and on
    /// close. Default `true`; Kafka's `enable.auto.commit`.
    pub auto_commit: bool,
    /// How often auto commit commits. Default 5 s; Kafka's `auto.commit.interval.ms`.
    pub auto_commit_interval: Duration,
    /// Commit the positions of partitions being revoked before giving them up, so the
    /// next owner starts exactly after what this member delivered. Default `true` (the
    /// Java client does this in its rebalance listener when auto commit is on).
    pub commit_on_revoke: bool,
    /// Where to start a partition the group has no committed offset for. Default `None`:
    /// the consumer's `auto_offset_reset`.
    pub start_without_commit: Option<Offset>,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            session_timeout: Duration::from_secs(45),
            rebalance_timeout: Duration::from_secs(300),
            instance_id: None,
            assignor: None,
            auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            commit_on_revoke: true,
            start_without_commit: None,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Subscription {
    Topics(Vec<String>),
    Regex(String),
}

#[derive(Default)]
pub(crate) struct MemberState {
    pub member_id: String,
    pub epoch: i32,
    /// The latest assignment from the coordinator.
    pub assignment: BTreeSet<TopicPartition>,
    /// What the consumer holds (reported, with `assignment` and `claimed`, in every
    /// heartbeat).
    pub owned: BTreeSet<TopicPartition>,
    /// The assignment the consumer is applying right now (it may take any of these).
    pub claimed: BTreeSet<TopicPartition>,
    /// Membership was lost (fenced or expired): drop everything without committing.
    pub lost: bool,
    /// Cannot continue (another member took this instance id).
    pub fatal: Option<Error>,
    /// The heartbeat interval the coordinator gave; heartbeats long-poll for this long.
    pub interval: Duration,
}

/// Shared by the consumer and the heartbeat task.
pub(crate) struct Membership {
    pub group_id: String,
    pub config: GroupConfig,
    pub subscription: Subscription,
    /// Commits and offset reads.
    pub coordinator: Client,
    /// Heartbeats alone: they long-poll, and responses on a connection come in order,
    /// so sharing one would hold commits behind them.
    pub heartbeats: Client,
    pub state: Mutex<MemberState>,
    /// Bumped when the assignment (or `lost`, or `fatal`) changes.
    pub changed: watch::Sender<u64>,
    /// Asks the heartbeat task to heartbeat now (after a revocation).
    pub wake: Notify,
    /// Commits go one at a time, in order, so an older position never lands last.
    pub commit_lock: tokio::sync::Mutex<()>,
    pub retry_backoff: Duration,
}

pub(crate) fn lock(m: &Mutex<MemberState>) -> std::sync::MutexGuard<'_, MemberState> {
    crate::sync::lock(m)
}

fn to_wire(set: &BTreeSet<TopicPartition>) -> Vec<TopicPartitions> {
    TopicPartitions::group(set.iter().map(|(t, p)| (t.as_str(), *p)))
}

fn from_wire(list: Vec<TopicPartitions>) -> BTreeSet<TopicPartition> {
    TopicPartitions::flatten(list).collect()
}

impl Membership {
    fn request(&self, epoch_override: Option<i32>) -> ConsumerGroupHeartbeatRequest {
        let st = lock(&self.state);
        let (topics, regex) = match &self.subscription {
            Subscription::Topics(t) => (t.clone(), String::new()),
            Subscription::Regex(r) => (Vec::new(), r.clone()),
        };
        ConsumerGroupHeartbeatRequest {
            group_id: self.group_id.clone(),
            member_id: st.member_id.clone(),
            member_epoch: epoch_override.unwrap_or(st.epoch),
            instance_id: self.config.instance_id.clone().unwrap_or_default(),
            session_timeout_ms: self.config.session_timeout.as_millis().min(u32::MAX as u128) as u32,
            rebalance_timeout_ms: self.config.rebalance_timeout.as_millis().clamp(1, u32::MAX as u128) as u32,
            subscribed_topics: topics,
            subscribed_topic_regex: regex,
            assignor: self.config.assignor.clone().unwrap_or_default(),
            // What the consumer holds, the assignment it is taking, and the one it may
            // start taking before this heartbeat's answer arrives: reporting too much
            // only delays a release; too little could hand a partition to another
            // member while it is still read here.
            owned: to_wire(
                &st.owned
                    .iter()
                    .chain(&st.claimed)
                    .chain(&st.assignment)
                    .cloned()
                    .collect(),
            ),
            wait_ms: st.interval.as_millis().min(u32::MAX as u128) as u32,
        }
    }

    /// One heartbeat (a long poll of up to the last interval); returns the interval.
    pub async fn heartbeat(&self) -> Result<Duration> {
        let req = self.request(None);
        let wait = Duration::from_millis(req.wait_ms as u64);
        match self.heartbeats.call_coordinator(&self.group_id, &req, wait).await {
            Ok(resp) => {
                let assignment = from_wire(resp.assignment);
                let mut st = lock(&self.state);
                st.member_id = resp.member_id;
                st.epoch = resp.member_epoch;
                st.interval = Duration::from_millis(resp.heartbeat_interval_ms.max(1) as u64);
                if st.assignment != assignment {
                    st.assignment = assignment;
                    drop(st);
                    self.changed.send_modify(|v| *v += 1);
                }
                Ok(Duration::from_millis(resp.heartbeat_interval_ms.max(1) as u64))
            }
            Err(e) => {
                match e.code() {
                    Some(ErrorCode::UnknownMemberId | ErrorCode::FencedMemberEpoch) => {
                        // Our session ended (or the coordinator forgot us): everything we
                        // hold may already be someone else's. Rejoin from scratch.
                        warn!(group = %self.group_id, error = %e, "group membership lost; rejoining");
                        let mut st = lock(&self.state);
                        st.epoch = 0;
                        st.member_id.clear();
                        st.assignment.clear();
                        st.lost = true;
                        drop(st);
                        self.changed.send_modify(|v| *v += 1);
                        Ok(Duration::ZERO)
                    }
                    Some(ErrorCode::FencedInstanceId) => {
                        lock(&self.state).fatal = Some(e.clone());
                        self.changed.send_modify(|v| *v += 1);
                        Err(e)
                    }
                    _ => Err(e),
                }
            }
        }
    }

    /// Leaves the group (a static member keeps its partitions reserved for its session).
    pub async fn leave(&self) -> Result<()> {
        let epoch = if self.config.instance_id.is_some() { -2 } else { -1 };
        if lock(&self.state).member_id.is_empty() {
            return Ok(());
        }
        let mut req = self.request(Some(epoch));
        req.wait_ms = 0;
        // On the commit connection: the heartbeat one may still have a long poll ahead
        // of it.
        retry_once(|| self.coordinator.call_coordinator(&self.group_id, &req, Duration::ZERO))
            .await
            .map(|_| ())
    }

    /// Commits `offsets` with this member's id and current epoch.
    pub async fn commit(&self, offsets: &BTreeMap<TopicPartition, (i64, String)>) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let _order = self.commit_lock.lock().await;
        let (member_id, member_epoch) = {
            let st = lock(&self.state);
            (st.member_id.clone(), st.epoch)
        };
        retry_once(|| commit_offsets(&self.coordinator, &self.group_id, &member_id, member_epoch, offsets)).await
    }

    /// Committed offsets of `partitions` (absent: nothing committed).
    pub async fn committed(&self, partitions: &BTreeSet<TopicPartition>) -> Result<BTreeMap<TopicPartition, i64>> {
        committed_offsets(&self.coordinator, &self.group_id, Some(partitions)).await
    }
}

/// Runs `f` again once if it failed in a way a retry can fix (a connection found dead
/// when used, e.g. after a broker restart; the retry reconnects).
async fn retry_once<T, F, Fut>(f: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    match f().await {
        Err(e) if e.is_retriable() => f().await,
        r => r,
    }
}

pub(crate) async fn commit_offsets(
    client: &Client,
    group_id: &str,
    member_id: &str,
    member_epoch: i32,
    offsets: &BTreeMap<TopicPartition, (i64, String)>,
) -> Result<()> {
    let mut topics: Vec<OffsetCommitTopic> = Vec::new();
    for ((topic, partition), (offset, metadata)) in offsets {
        let p = OffsetCommitPartition {
            partition: *partition,
            offset: *offset,
            metadata: metadata.clone(),
        };
        match topics.last_mut() {
            Some(t) if t.topic == *topic => t.partitions.push(p),
            _ => topics.push(OffsetCommitTopic {
                topic: topic.clone(),
                partitions: vec![p],
            }),
        }
    }
    let req = OffsetCommitRequest {
        group_id: group_id.to_owned(),
        member_id: member_id.to_owned(),
        member_epoch,
        topics,
        group_instance_id: None,
    };
    let resp = client.call_coordinator(group_id, &req, Duration::ZERO).await?;
    for t in &resp.topics {
        for p in &t.partitions {
            check(p.error_code, &p.error_message)?;
        }
    }
    Ok(())
}

pub(crate) async fn committed_offsets(
    client: &Client,
    group_id: &str,
    partitions: Option<&BTreeSet<TopicPartition>>,
) -> Result<BTreeMap<TopicPartition, i64>> {
    let req = OffsetFetchRequest {
        group_id: group_id.to_owned(),
        topics: partitions.map(to_wire).unwrap_or_default(),
    };
    let resp = client.call_coordinator(group_id, &req, Duration::ZERO).await?;
    Ok(resp
        .topics
        .into_iter()
        .flat_map(|t| {
            t.partitions
                .into_iter()
                .filter(|p| p.offset >= 0)
                .map(move |p| ((t.topic.clone(), p.partition), p.offset))
        })
        .collect())
}

/// Heartbeats until aborted. Errors are retried after a backoff; a session that ended
/// meanwhile shows up as UNKNOWN_MEMBER_ID and the member rejoins.
pub(crate) fn spawn_heartbeats(m: Arc<Membership>, first: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut wait = first;
        let mut backoff = m.retry_backoff;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = m.wake.notified() => {}
            }
            let started = tokio::time::Instant::now();
            match m.heartbeat().await {
                Ok(next) => {
                    // A long poll already waited: go again at once (the coordinator
                    // holds the next one until something changes).
                    wait = next.saturating_sub(started.elapsed());
                    backoff = m.retry_backoff;
                }
                Err(e) if e.code() == Some(ErrorCode::FencedInstanceId) => return,
                Err(e) => {
                    debug!(group = %m.group_id, error = %e, "heartbeat failed; retrying");
                    wait = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    })
}

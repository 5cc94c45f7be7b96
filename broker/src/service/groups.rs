//! Groups' committed offsets, shared by both protocols: commit (in the connection's
//! order, answered once durable), fetch, and deleting groups.

use std::collections::BTreeMap;
use std::sync::Arc;

use runnel_protocol::ErrorCode;

use super::{Broker, Failure, Outcome};
use crate::cluster::controller::ControllerCall;
use crate::cluster::NodeId;
use crate::group::{
    CommitResult, Committed, GroupListing, GroupResult, GroupSnapshot, Heartbeat, HeartbeatReply, JoinRequest,
    JoinResult, Member, OffsetCommit, SyncRequest, SyncResult, Tp, OFFSETS_LOG, OFFSETS_PARTITIONS,
};
use crate::net::order::{in_turn, ApplyOrder};
use crate::storage::DurableWait;

/// Who commits: a member (id, epoch or generation, static instance id), or an admin
/// (empty member id, epoch -1) for a group without members.
#[derive(Debug, Clone, Default)]
pub struct Committer {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
}

/// Commits offsets for `group`. The commit takes effect in the connection's request
/// order (`order`: the last one sent wins, as in Kafka); durability is awaited outside
/// the turn. A failure of the whole request, or an outcome per partition in order.
pub(crate) async fn commit_offsets(
    broker: &Arc<Broker>,
    group: &str,
    who: &Committer,
    commits: Vec<OffsetCommit>,
    order: Option<ApplyOrder>,
) -> Outcome<Vec<(Tp, Outcome<()>)>> {
    let committed = in_turn(order, || {
        broker.groups.commit(
            group,
            &who.member_id,
            who.member_epoch,
            who.instance_id.as_deref(),
            commits,
        )
    })
    .await;
    let (results, durable) = committed?;
    let stored = durable.wait().await;
    Ok(results
        .into_iter()
        .map(|(tp, r)| {
            let outcome = match (r, &stored) {
                (Err(e), _) => Err(Failure::from(e)),
                (Ok(()), Err(e)) => Err(Failure::new(ErrorCode::StorageError, format!("offset not stored: {e}"))),
                (Ok(()), Ok(())) => Ok(()),
            };
            (tp, outcome)
        })
        .collect())
}

/// A group's committed offsets: of `wanted` (each with `None` where nothing is
/// committed), or of every partition it committed. NOT_COORDINATOR from a broker that
/// does not coordinate the group.
pub fn fetch_offsets(broker: &Broker, group: &str, wanted: Option<Vec<Tp>>) -> Outcome<Vec<(Tp, Option<Committed>)>> {
    let mut committed = broker.groups.committed(group, wanted.as_deref())?;
    Ok(match wanted {
        Some(tps) => tps
            .into_iter()
            .map(|tp| {
                let c = committed.remove(&tp);
                (tp, c)
            })
            .collect(),
        None => committed.into_iter().map(|(tp, c)| (tp, Some(c))).collect(),
    })
}

/// Deletes groups without members, with their committed offsets; an outcome per group
/// in order, once the deletion is durable.
pub async fn delete_groups(broker: &Arc<Broker>, groups: &[String]) -> Vec<Outcome<()>> {
    let mut results = Vec::with_capacity(groups.len());
    for group in groups {
        let outcome = match broker.groups.delete(group) {
            Err(e) => Err(Failure::from(e)),
            Ok(durable) => durable
                .wait()
                .await
                .map_err(|e| Failure::new(ErrorCode::StorageError, format!("deletion not stored: {e}"))),
        };
        results.push(outcome);
    }
    results
}

/// Offsets grouped by topic, topics in name order (for responses listing them so).
pub fn by_topic<T>(items: Vec<(Tp, T)>) -> BTreeMap<String, Vec<(u32, T)>> {
    let mut out: BTreeMap<String, Vec<(u32, T)>> = BTreeMap::new();
    for ((topic, partition), v) in items {
        out.entry(topic).or_default().push((partition, v));
    }
    out
}

// The coordinator's calls, as both protocols make them. They pass through here so that
// a check every request must pass (authorization) has one place to go.

/// A version of the group's state and a notification of its next change (the long poll
/// of a consumer-protocol heartbeat).
pub fn watch(broker: &Broker, group: &str) -> Option<(u64, Arc<tokio::sync::Notify>)> {
    broker.groups.watch(group)
}

/// A consumer-protocol heartbeat (KIP-848): join, keep alive, leave.
pub fn heartbeat(broker: &Broker, group: &str, hb: Heartbeat) -> (GroupResult<(HeartbeatReply, u32)>, DurableWait) {
    broker.groups.heartbeat(group, hb)
}

/// A consumer-protocol member as the coordinator knows it.
pub fn member(broker: &Broker, group: &str, member_id: &str) -> Option<Member> {
    broker.groups.member(group, member_id)
}

/// A group's state, members and assignments (`None`: no such group).
pub fn describe(broker: &Broker, group: &str) -> Outcome<Option<GroupSnapshot>> {
    Ok(broker.groups.describe(group)?)
}

/// Every group this broker coordinates.
pub fn list(broker: &Broker) -> Vec<GroupListing> {
    broker.groups.list()
}

/// A classic JoinGroup: answered once the rebalance allows.
pub fn join(broker: &Broker, group: &str, req: JoinRequest) -> tokio::sync::oneshot::Receiver<JoinResult> {
    broker.groups.join(group, req)
}

/// A classic SyncGroup: answered once the leader's assignment is in.
pub fn sync(broker: &Broker, group: &str, req: SyncRequest) -> tokio::sync::oneshot::Receiver<SyncResult> {
    broker.groups.sync(group, req)
}

/// A classic Heartbeat.
pub fn classic_heartbeat(
    broker: &Broker,
    group: &str,
    member_id: &str,
    instance_id: Option<&str>,
    generation: i32,
) -> GroupResult<()> {
    broker
        .groups
        .classic_heartbeat(group, member_id, instance_id, generation)
}

/// A classic LeaveGroup of `members` (member id, instance id).
pub fn leave(
    broker: &Broker,
    group: &str,
    members: Vec<(String, Option<String>)>,
) -> (Vec<GroupResult<String>>, DurableWait) {
    broker.groups.leave(group, members)
}

/// OffsetDelete: a group's offsets of partitions it no longer consumes.
pub fn delete_offsets(broker: &Broker, group: &str, tps: Vec<Tp>) -> GroupResult<(Vec<CommitResult>, DurableWait)> {
    broker.groups.delete_offsets(group, tps)
}

/// Where a group stands on a partition: its bounds and its lag in records and time
/// (reads a batch header from the log: call it off the runtime). `None` for a partition
/// that does not exist.
pub fn partition_lag(broker: &Broker, tp: &Tp, committed: Option<i64>, now_ms: i64) -> Option<crate::group::lag::Lag> {
    let log = broker.storage.partition(&tp.0, tp.1).ok()?;
    crate::group::lag::lag(&log, committed, now_ms).ok()
}

/// The offsets-log partition that holds `group` (its coordinator is that partition's
/// leader; Kafka's mapping).
pub fn offsets_partition(group: &str) -> u32 {
    crate::group::partition_for(group)
}

/// A group's coordinator: the broker leading its offsets-log partition.
#[derive(Debug, Clone)]
pub struct CoordinatorView {
    pub node_id: NodeId,
    /// `host:port` of its native listener.
    pub native: String,
    /// `host:port` of its Kafka listener, if it runs one.
    pub kafka: Option<String>,
    pub offsets_partition: u32,
}

/// Finds `group`'s coordinator. The offsets log is created in the metadata on first use
/// (as Kafka does: the first FindCoordinator creates `__consumer_offsets`), placed like
/// any topic. COORDINATOR_NOT_AVAILABLE while it cannot be created or has no leader
/// (clients retry).
pub async fn find_coordinator(broker: &Broker, group: &str) -> Outcome<CoordinatorView> {
    let p = offsets_partition(group);
    if broker.cluster.image().partition(OFFSETS_LOG, p).is_none() {
        let call = ControllerCall::CreateInternalTopic {
            name: OFFSETS_LOG.to_owned(),
            partitions: OFFSETS_PARTITIONS,
        };
        let created = match broker.cluster.call_controller(call).await {
            Ok(mut results) => results.pop().unwrap_or(Ok(())),
            Err(r) => Err(r),
        };
        if let Err(r) = created {
            return Err(Failure::new(
                ErrorCode::CoordinatorNotAvailable,
                format!("the offsets log could not be created yet: {}", r.message),
            ));
        }
    }
    let image = broker.cluster.image();
    let unavailable = |why: String| Failure::new(ErrorCode::CoordinatorNotAvailable, why);
    let part = image
        .partition(OFFSETS_LOG, p)
        .ok_or_else(|| unavailable("this broker has not applied the offsets log's creation yet".into()))?;
    let leader = image
        .brokers
        .get(&part.leader)
        .filter(|b| !b.fenced)
        .ok_or_else(|| unavailable(format!("offsets partition {p} has no live leader; retry")))?;
    Ok(CoordinatorView {
        node_id: leader.id,
        native: leader.native.clone(),
        kafka: leader.kafka.clone(),
        offsets_partition: p,
    })
}

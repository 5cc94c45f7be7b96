//! Groups' committed offsets, shared by both protocols: commit (in the connection's
//! order, answered once durable), fetch, and deleting groups.

use std::collections::BTreeMap;
use std::sync::Arc;

use runnel_protocol::ErrorCode;

use super::{Broker, Failure, Outcome};
use crate::group::{Committed, OffsetCommit, Tp};
use crate::net::order::{in_turn, ApplyOrder};

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
/// committed), or of every partition it committed.
pub fn fetch_offsets(broker: &Broker, group: &str, wanted: Option<Vec<Tp>>) -> Vec<(Tp, Option<Committed>)> {
    let mut committed = broker.groups.committed(group, wanted.as_deref());
    match wanted {
        Some(tps) => tps
            .into_iter()
            .map(|tp| {
                let c = committed.remove(&tp);
                (tp, c)
            })
            .collect(),
        None => committed.into_iter().map(|(tp, c)| (tp, Some(c))).collect(),
    }
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

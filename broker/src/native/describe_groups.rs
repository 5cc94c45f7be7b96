//! DescribeGroups: members, their owned and target partitions, and per-partition lag
//! (committed offset, end offset, records and time behind).

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, GroupDescription, GroupMemberDescription, PartitionLag,
};
use runnel_protocol::ErrorCode;

use super::{blocking, to_topic_partitions};
use crate::group::{classic, GroupSnapshot, Member, Tp};
use crate::service::{groups, Broker};

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(req.group_ids.len());
    for group_id in req.group_ids {
        let snapshot = match groups::describe(broker, &group_id) {
            Ok(Some(s)) => s,
            Ok(None) => {
                groups.push(GroupDescription {
                    error_code: ErrorCode::GroupIdNotFound.code(),
                    error_message: format!("group {group_id} does not exist"),
                    group_id,
                    ..Default::default()
                });
                continue;
            }
            Err(f) => {
                groups.push(GroupDescription {
                    error_code: f.code.code(),
                    error_message: f.message,
                    group_id,
                    ..Default::default()
                });
                continue;
            }
        };
        // Lag reads a batch header per partition from the log: off the runtime.
        let b = broker.clone();
        let described = blocking(move || Ok(describe(&b, snapshot))).await;
        groups.push(described.unwrap_or_else(|e| GroupDescription {
            error_code: e.code().code(),
            error_message: e.to_string(),
            group_id: group_id.clone(),
            ..Default::default()
        }));
    }
    DescribeGroupsResponse {
        groups,
        ..Default::default()
    }
}

/// A classic group's members as consumer-protocol members: subscriptions and
/// assignments read from the `consumer` protocol's bytes (empty when unreadable), the
/// generation as epoch.
fn classic_members(g: &GroupSnapshot) -> Vec<Member> {
    let Some(c) = &g.classic else { return Vec::new() };
    let now = std::time::Instant::now();
    c.members
        .iter()
        .map(|m| Member {
            id: m.id.clone(),
            instance_id: m.instance_id.clone(),
            epoch: c.generation,
            previous_epoch: c.generation,
            session_timeout_ms: m.session_timeout_ms,
            topics: classic::subscription_topics(&m.metadata(&c.protocol))
                .unwrap_or_default()
                .into_iter()
                .collect(),
            regex: None,
            owned: classic::assignment_partitions(&m.assignment)
                .unwrap_or_default()
                .into_iter()
                .map(|tp| (tp, c.generation))
                .collect(),
            left: false,
            deadline: now,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            revoking_since: None,
        })
        .collect()
}

fn describe(broker: &Broker, mut g: GroupSnapshot) -> GroupDescription {
    if let Some(c) = &g.classic {
        g.members = classic_members(&g);
        g.epoch = c.generation;
        g.assignment_epoch = c.generation;
    }
    let now_ms = crate::storage::log::now_ms();
    let mut partitions: BTreeSet<Tp> = g.offsets.keys().cloned().collect();
    partitions.extend(g.target.values().flatten().cloned());
    partitions.extend(g.members.iter().flat_map(|m| m.owned.keys().cloned()));
    let offsets = partitions
        .into_iter()
        .map(|tp| {
            let committed = g.offsets.get(&tp);
            let mut out = PartitionLag {
                topic: tp.0.clone(),
                partition: tp.1,
                committed_offset: committed.map_or(-1, |c| c.offset),
                metadata: committed.map(|c| c.metadata.clone()).unwrap_or_default(),
                log_start_offset: -1,
                log_end_offset: -1,
                lag: -1,
                lag_ms: -1,
                owner: g
                    .members
                    .iter()
                    .find(|m| m.owned.contains_key(&tp))
                    .map(|m| m.id.clone())
                    .unwrap_or_default(),
            };
            if let Some(l) = groups::partition_lag(broker, &tp, committed.map(|c| c.offset), now_ms) {
                out.log_start_offset = l.start_offset;
                out.log_end_offset = l.end_offset;
                out.lag = l.records;
                out.lag_ms = l.ms;
            }
            out
        })
        .collect();
    GroupDescription {
        group_id: g.id.clone(),
        state: g.state.to_owned(),
        assignor: match &g.classic {
            Some(c) => c.protocol.clone(),
            None => g.assignor.name().to_owned(),
        },
        group_epoch: g.epoch,
        assignment_epoch: g.assignment_epoch,
        members: g
            .members
            .iter()
            .map(|m| GroupMemberDescription {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone().unwrap_or_default(),
                member_epoch: m.epoch,
                subscribed_topics: m.topics.iter().cloned().collect(),
                subscribed_topic_regex: m.regex_str().to_owned(),
                owned: to_topic_partitions(&m.owned.keys().cloned().collect()),
                target: to_topic_partitions(&g.target.get(&m.id).cloned().unwrap_or_default()),
                left: m.left,
                session_timeout_ms: m.session_timeout_ms,
            })
            .collect(),
        offsets,
        offsets_partition: g.offsets_partition,
        ..Default::default()
    }
}

//! The follower's side: one task per leader broker fetches every partition this broker
//! follows from it, in one long-poll Fetch (with this broker's id, so the leader reads
//! up to its log end and counts the offsets as progress). Before a partition's first
//! fetch from a leader epoch it asks OffsetForLeaderEpoch and cuts its log at the
//! divergence point (KIP-101/279), never at its high watermark alone.
//!
//! Under `flush.policy=always` a follower syncs what it appended before it fetches
//! again, so the offset its next fetch reports — what the leader counts toward the high
//! watermark — is on its disk: an acks=all record is then synced on every in-sync
//! replica, and survives power loss of the whole machine, not just of one broker.

use std::sync::Weak;
use std::time::Duration;

use runnel_protocol::messages::{
    FetchPartition, FetchRequest, FetchResponse, FetchTopic, OffsetForLeaderEpochPartition,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochTopic,
};
use runnel_protocol::ErrorCode;
use tracing::{debug, info, warn};

use super::{Following, PartitionKey, Replication};
use crate::cluster::peer::{Peer, PeerError};
use crate::cluster::NodeId;
use crate::storage::{DurableWait, FlushPolicy, Role};

/// How long the leader holds a follower's fetch when there is nothing new.
const FETCH_MAX_WAIT_MS: u32 = 500;
/// Bytes per partition and per fetch.
const PARTITION_MAX_BYTES: u32 = 4 << 20;
const FETCH_MAX_BYTES: u32 = 16 << 20;
/// Pause after a failed exchange (the leader down or moving) before trying again.
const BACKOFF: Duration = Duration::from_millis(100);
/// First pause when the leader refused every partition (it has not applied its
/// leadership yet, typically for a millisecond or two): doubled up to `BACKOFF`.
const REFUSED_PAUSE: Duration = Duration::from_millis(2);

pub(super) async fn run(replication: Weak<Replication>, leader: NodeId) {
    let mut peer: Option<Peer> = None;
    let mut refused_pause = REFUSED_PAUSE;
    loop {
        let Some(r) = replication.upgrade() else { return };
        let parts = r.followed_from(leader);
        if parts.is_empty() {
            return;
        }
        // Subscribed before the exchange: a change of the followed set during it ends a
        // pause below at once.
        let changed = r.follow_changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let pause = match r.cluster.address_of(leader) {
            None => Some(BACKOFF),
            Some(addr) => {
                let p = match &mut peer {
                    Some(p) if p.addr() == addr => p,
                    _ => peer.insert(Peer::new(addr)),
                };
                let ok = match truncate_diverged(&r, p, &parts).await {
                    Ok(()) => fetch_once(&r, p, &parts).await,
                    Err(e) => Err(e),
                };
                match ok {
                    Ok(true) => {
                        refused_pause = REFUSED_PAUSE;
                        None
                    }
                    Ok(false) => {
                        let pause = refused_pause;
                        refused_pause = (refused_pause * 2).min(BACKOFF);
                        Some(pause)
                    }
                    Err(e) => {
                        debug!(leader, error = %e, "follower fetch failed");
                        Some(BACKOFF)
                    }
                }
            }
        };
        if let Some(pause) = pause {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = changed => {}
            }
        }
    }
}

/// Asks the leader where each not-yet-truncated partition's latest epoch ends, and cuts
/// the local log there.
async fn truncate_diverged(
    r: &Replication,
    peer: &mut Peer,
    parts: &[(PartitionKey, Following)],
) -> Result<(), PeerError> {
    let pending: Vec<&(PartitionKey, Following)> = parts.iter().filter(|(_, f)| !f.truncated).collect();
    if pending.is_empty() {
        return Ok(());
    }
    let mut topics: Vec<OffsetForLeaderEpochTopic> = Vec::new();
    for ((topic, partition), f) in &pending {
        let p = OffsetForLeaderEpochPartition {
            partition: *partition,
            current_leader_epoch: f.epoch,
            leader_epoch: f.log.latest_epoch(),
        };
        match topics.last_mut() {
            Some(t) if t.name == *topic => t.partitions.push(p),
            _ => topics.push(OffsetForLeaderEpochTopic {
                name: topic.clone(),
                partitions: vec![p],
            }),
        }
    }
    let req = OffsetForLeaderEpochRequest {
        topics,
        replica_id: r.node_id(),
    };
    let resp = peer.call(&req, Duration::from_secs(5)).await?;
    for t in resp.topics {
        for p in t.partitions {
            let key = (t.name.clone(), p.partition);
            let Some((_, f)) = pending.iter().find(|(k, _)| *k == key) else {
                continue;
            };
            if p.error_code != 0 {
                debug!(topic = %key.0, partition = key.1, error = %p.error_message, "OffsetForLeaderEpoch refused");
                continue;
            }
            let mine = f.log.latest_epoch();
            let end = f.log.end_offset();
            let cut = if mine < 0 {
                // Nothing stamped here: nothing can diverge.
                end
            } else if p.leader_epoch < 0 {
                // The leader has no epoch at or below ours: everything we hold diverges.
                f.log.start_offset()
            } else if p.leader_epoch == mine {
                (p.end_offset.max(0) as u64).min(end)
            } else {
                // The leader's largest epoch below ours: where that epoch ends here too.
                let ours = f.log.epoch_end_offset(p.leader_epoch).map_or(0, |(_, o)| o);
                (p.end_offset.max(0) as u64).min(ours).min(end)
            };
            if cut < end {
                match f.log.truncate_to(cut) {
                    Ok(at) => info!(
                        topic = %key.0, partition = key.1, from = end, to = at, leader_epoch = f.epoch,
                        "cut the diverging tail before following"
                    ),
                    Err(e) => {
                        warn!(topic = %key.0, partition = key.1, error = %e, "could not cut the diverging tail");
                        continue;
                    }
                }
            }
            r.mark_truncated(&key, f.epoch, true);
        }
    }
    Ok(())
}

/// One long-poll fetch of every truncated partition; appends what came back. False if
/// there was nothing to fetch (the leader refused every partition's OffsetForLeaderEpoch)
/// or the leader refused every partition's fetch: the caller pauses before the next.
async fn fetch_once(r: &Replication, peer: &mut Peer, parts: &[(PartitionKey, Following)]) -> Result<bool, PeerError> {
    let ready: Vec<&(PartitionKey, Following)> = parts.iter().filter(|(_, f)| f.truncated).collect();
    if ready.is_empty() {
        return Ok(false);
    }
    let mut topics: Vec<FetchTopic> = Vec::new();
    for ((topic, partition), f) in &ready {
        let p = FetchPartition {
            partition: *partition,
            fetch_offset: f.log.end_offset() as i64,
            max_bytes: PARTITION_MAX_BYTES,
            current_leader_epoch: Some(f.epoch),
        };
        match topics.last_mut() {
            Some(t) if t.name == *topic => t.partitions.push(p),
            _ => topics.push(FetchTopic {
                name: topic.clone(),
                partitions: vec![p],
            }),
        }
    }
    let req = FetchRequest {
        max_wait_ms: FETCH_MAX_WAIT_MS,
        min_bytes: 1,
        max_bytes: FETCH_MAX_BYTES,
        topics,
        replica_id: Some(r.node_id()),
    };
    let timeout = Duration::from_millis(FETCH_MAX_WAIT_MS as u64) + Duration::from_secs(5);
    let changed = r.follow_changed.notified();
    tokio::pin!(changed);
    changed.as_mut().enable();
    let answer = tokio::select! {
        answer = peer.call_with_trailer(&req, timeout) => answer,
        _ = &mut changed => {
            // The set of partitions changed while the leader held the poll: start over
            // (the connection, with an answer still to come, goes).
            peer.reset();
            return Ok(true);
        }
    };
    let (resp, mut trailer): (FetchResponse, _) = answer?;
    let mut waits: Vec<DurableWait> = Vec::new();
    let mut served = false;
    for t in resp.topics {
        for p in t.partitions {
            let records = trailer.split_to((p.records_bytes as usize).min(trailer.len()));
            let key = (t.name.clone(), p.partition);
            let Some((_, f)) = ready.iter().find(|(k, _)| *k == key) else {
                continue;
            };
            match ErrorCode::from_i32(p.error_code) {
                ErrorCode::None => {}
                ErrorCode::OffsetOutOfRange => {
                    // Our end is past the leader's: find the divergence point again.
                    r.mark_truncated(&key, f.epoch, false);
                    continue;
                }
                _ => {
                    debug!(topic = %key.0, partition = key.1, error = %p.error_message, "follower fetch refused");
                    continue;
                }
            }
            served = true;
            let mut records = records;
            if !records.is_empty() {
                match f.log.append_as_follower(&mut records, f.epoch) {
                    Ok(_) => {}
                    Err(crate::Error::NotLeader(e)) => {
                        // The partition moved to another leader while this answer was on
                        // its way: the next leader's fetcher takes over.
                        debug!(topic = %key.0, partition = key.1, error = %e, "late answer from a previous leader dropped");
                        continue;
                    }
                    Err(e) => {
                        warn!(topic = %key.0, partition = key.1, error = %e, "could not append the leader's batches");
                        r.mark_truncated(&key, f.epoch, false);
                        continue;
                    }
                }
                if f.log.config().flush_policy == FlushPolicy::Always {
                    waits.push(f.log.wait_durable(f.log.end_offset()));
                }
            }
            if p.high_watermark >= 0 && f.log.role() == (Role::Follower { epoch: f.epoch }) {
                f.log.set_follower_high_watermark(p.high_watermark as u64);
            }
        }
    }
    for w in waits {
        if let Err(e) = w.wait().await {
            warn!(error = %e, "follower sync failed");
        }
    }
    Ok(served)
}

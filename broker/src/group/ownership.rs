//! Which offsets-log partitions this broker coordinates: the cluster says who leads each
//! (`Ownership`), and the coordinator serves a partition's groups only while it leads it,
//! loading them from the log when the leadership arrives and dropping them when it leaves.

use std::time::Instant;

use tracing::{info, warn};

use super::error::{GroupError, GroupErrorKind, GroupResult};
use super::{lock, store, Coordinator, Shard, ShardState};

/// Who leads an offsets-log partition, as the cluster's metadata says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leadership {
    /// The offsets log is not in the metadata yet: no broker has written it since this
    /// one started, so the groups read from the local log stay valid (not served yet).
    Unplaced,
    /// Another broker leads it, or no broker does.
    Elsewhere,
    /// This broker leads it at this leader epoch.
    Here(i32),
}

/// Which offsets-log partitions this broker leads: the cluster's answer, passed in so
/// that the coordinator does not depend on the cluster.
pub type Ownership = Box<dyn Fn(u32) -> Leadership + Send + Sync>;

/// What a shard's groups in memory stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Loaded {
    /// Read from the local log when the broker started: valid for whichever leadership
    /// this broker holds first (nothing else wrote the log since).
    #[default]
    Open,
    /// Loaded while leading at this leader epoch.
    Epoch(i32),
    /// Dropped: another broker leads the partition.
    Unloaded,
}

impl Coordinator {
    /// Makes this coordinator serve only the offsets-log partitions `ownership` says this
    /// broker leads (set once, by the cluster, before requests arrive). The tick loads a
    /// partition's groups from its log when leadership arrives and drops them when it
    /// leaves.
    pub fn set_ownership(&self, ownership: Ownership) {
        if self.ownership.set(ownership).is_err() {
            warn!("the group coordinator's ownership was set twice; the first stays");
        }
    }

    /// Who leads offsets partition `p` (this broker, at epoch 0, without a cluster).
    pub(super) fn leadership(&self, p: u32) -> Leadership {
        match self.ownership.get() {
            Some(f) => f(p),
            None => Leadership::Here(0),
        }
    }

    /// Ok if this broker coordinates the shard's groups now and has them loaded
    /// (called under the shard's lock, so no change slips in across a leadership move).
    pub(super) fn check_owned(&self, shard: &Shard, st: &mut ShardState, group_id: &str) -> GroupResult<()> {
        match (self.leadership(shard.index), st.loaded) {
            (Leadership::Elsewhere, _) => Err(GroupError::new(
                GroupErrorKind::NotCoordinator,
                format!(
                    "this broker is not the coordinator of group {group_id} (offsets partition {}); find its coordinator",
                    shard.index
                ),
            )),
            (Leadership::Unplaced, _) => Err(GroupError::new(
                GroupErrorKind::CoordinatorNotAvailable,
                format!(
                    "the offsets log holding group {group_id} is not placed on a broker yet; find its coordinator"
                ),
            )),
            (Leadership::Here(epoch), Loaded::Open) => {
                st.loaded = Loaded::Epoch(epoch);
                Ok(())
            }
            (Leadership::Here(epoch), Loaded::Epoch(loaded)) if loaded == epoch => Ok(()),
            (Leadership::Here(_), _) => Err(GroupError::new(
                GroupErrorKind::CoordinatorLoadInProgress,
                format!(
                    "this broker has just become the coordinator of group {group_id} and is loading offsets partition {}; retry",
                    shard.index
                ),
            )),
        }
    }

    /// Whether offsets partition `p`'s groups are served here (for listings).
    pub fn coordinates(&self, p: u32) -> bool {
        let shard = &self.shards[p as usize];
        let mut st = lock(shard);
        self.check_owned(shard, &mut st, "").is_ok()
    }

    /// Follows the shard's leadership: drops its groups when another broker leads it,
    /// loads them from the log when this broker has become its leader. True when the
    /// shard is served here (and the rest of the tick applies to it).
    pub(super) async fn follow_leadership(&self, shard: &Shard) -> bool {
        let epoch = {
            let mut st = lock(shard);
            match (self.leadership(shard.index), st.loaded) {
                (Leadership::Unplaced, _) | (Leadership::Elsewhere, Loaded::Unloaded) => return false,
                (Leadership::Elsewhere, _) => {
                    for g in st.groups.values() {
                        g.changed.notify_waiters();
                    }
                    let groups = st.groups.len();
                    // Classic members waiting on a join or sync see their answer dropped
                    // (COORDINATOR_NOT_AVAILABLE) and look for the new coordinator.
                    *st = ShardState {
                        loaded: Loaded::Unloaded,
                        ..ShardState::default()
                    };
                    info!(
                        offsets_partition = shard.index,
                        groups, "no longer the coordinator of this offsets partition"
                    );
                    return false;
                }
                (Leadership::Here(epoch), Loaded::Open) => {
                    st.loaded = Loaded::Epoch(epoch);
                    return true;
                }
                (Leadership::Here(epoch), Loaded::Epoch(loaded)) if loaded == epoch => return true,
                (Leadership::Here(epoch), _) => epoch,
            }
        };
        let log = shard.log.clone();
        let replayed = tokio::task::spawn_blocking(move || store::replay(&log, Instant::now())).await;
        let (groups, bytes) = match replayed {
            Ok(Ok(loaded)) => loaded,
            Ok(Err(e)) => {
                warn!(offsets_partition = shard.index, error = %e, "could not load the offsets partition; retrying");
                return false;
            }
            Err(_) => return false,
        };
        let mut st = lock(shard);
        if self.leadership(shard.index) != Leadership::Here(epoch) {
            return false; // moved again while loading: the next tick follows
        }
        let count = groups.len();
        *st = ShardState {
            loaded: Loaded::Epoch(epoch),
            groups,
            since_snapshot: bytes,
            snapshot_bytes: 0,
        };
        info!(
            offsets_partition = shard.index,
            leader_epoch = epoch,
            groups = count,
            "became the coordinator of this offsets partition"
        );
        true
    }
}

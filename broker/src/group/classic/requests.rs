//! What the classic protocol's requests carry in, and their answers, in the
//! coordinator's terms.

use super::*;

/// A JoinGroup, in the coordinator's terms.
#[derive(Debug, Clone, Default)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4 and later: a member without an id is first given one and joins
    /// with it in a second request (KIP-394), so a lost answer cannot leave a ghost.
    pub require_known_member_id: bool,
    /// JoinGroup v9 and later: the answer may say `skip_assignment` (KIP-814).
    pub supports_skip_assignment: bool,
}

/// A member as the leader sees it in its JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOutcome {
    pub member_id: String,
    /// The member was given `member_id` and must join again with it (MEMBER_ID_REQUIRED).
    pub member_id_required: bool,
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: String,
    pub leader: String,
    /// Every member with its metadata for the chosen protocol — for the leader only.
    pub members: Vec<JoinedMember>,
    /// The leader must not assign: a static leader came back to a stable group, whose
    /// assignment stands (KIP-814).
    pub skip_assignment: bool,
}

pub type JoinResult = GroupResult<JoinOutcome>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    pub protocol_type: String,
    pub protocol: String,
    pub assignment: Bytes,
}

pub type SyncResult = GroupResult<SyncOutcome>;

/// A SyncGroup, in the coordinator's terms.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    /// v5 and later send what they expect; checked when present.
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    /// The leader's assignment: (member id, bytes).
    pub assignments: Vec<(String, Bytes)>,
}

/// An answer to a request that waited in the coordinator.
#[derive(Debug)]
pub enum Delivery {
    Join(oneshot::Sender<JoinResult>, JoinResult),
    Sync(oneshot::Sender<SyncResult>, SyncResult),
}

impl Delivery {
    /// Sends the answer, or `error` in its place (the change could not be stored).
    pub fn send(self, error: Option<&GroupError>) {
        match self {
            Delivery::Join(tx, r) => {
                let _ = tx.send(error.map_or(r, |e| Err(e.clone())));
            }
            Delivery::Sync(tx, r) => {
                let _ = tx.send(error.map_or(r, |e| Err(e.clone())));
            }
        }
    }
}

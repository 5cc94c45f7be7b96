//! A classic member, and what the group shell sees of the classic members
//! (`ClassicMembers`: emptiness, count, state name, subscriptions, commit checks).

use super::*;

#[derive(Debug, Clone)]
pub struct ClassicMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
    pub protocols: Vec<(String, Bytes)>,
    /// Its part of the leader's assignment for the current generation.
    pub assignment: Bytes,
    /// When its session ends without a heartbeat, join or sync.
    pub deadline: Instant,
    /// Sent SyncGroup in the current generation.
    pub synced: bool,
}

impl ClassicMember {
    /// Its metadata for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

impl ClassicMembers for Classic {
    fn is_empty(&self) -> bool {
        Classic::is_empty(self)
    }

    fn len(&self) -> usize {
        self.members.len()
    }

    fn state_name(&self) -> &'static str {
        self.state.name()
    }

    fn subscribed_topics(&self) -> Result<BTreeSet<String>, String> {
        let mut out = BTreeSet::new();
        for m in self.members.values() {
            let topics = (self.protocol_type == "consumer")
                .then(|| subscription_topics(&m.metadata(&self.protocol)))
                .flatten()
                .ok_or_else(|| self.protocol_type.clone())?;
            out.extend(topics);
        }
        Ok(out)
    }

    fn check_commit(&self, member_id: &str, generation: i32, instance_id: Option<&str>) -> GroupResult<()> {
        Classic::check_commit(self, member_id, generation, instance_id)
    }
}

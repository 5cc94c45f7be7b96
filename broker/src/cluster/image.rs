//! The cluster's metadata as every broker holds it: brokers and topics with their
//! partitions' replicas, leader, leader epoch and ISR. Changed only by applying committed
//! [`MetaCommand`]s in log order, so every broker that has applied the same prefix of the
//! metadata log holds the same image. `apply` is pure and deterministic: leadership moves
//! (fencing, a returning preferred leader) are decided here, from the image alone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scram::{Mechanism, ScramCredential};

/// A broker id (Kafka's `node.id`), the same number in Raft and in Kafka Metadata.
pub type NodeId = i32;

/// No leader: every replica of the partition is fenced.
pub const NO_LEADER: NodeId = -1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRecord {
    pub id: NodeId,
    /// `host:port` of the native listener (clients and other brokers).
    pub native: String,
    /// `host:port` of the Kafka listener, if it runs.
    pub kafka: Option<String>,
    /// Raised on every registration (each process start).
    pub epoch: i64,
    /// The process that registered last (a random id per start): a second process with
    /// the same node id is refused while this one is alive.
    pub incarnation: String,
    pub fenced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// Replicas in preference order: the first is the preferred leader.
    pub replicas: Vec<NodeId>,
    pub leader: NodeId,
    pub leader_epoch: i32,
    /// The in-sync replicas: the leader and the followers that hold everything up to
    /// the leader's high watermark. Only they may be elected (unless the topic allows
    /// unclean election). A fenced broker leaves it, except the last member, which stays
    /// so that the partition waits for it rather than electing a replica without its
    /// records.
    pub isr: Vec<NodeId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub id: String,
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<PartitionRecord>,
}

/// A change to the metadata: the entries of the Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// The first record of a cluster: its id.
    InitCluster {
        cluster_id: String,
    },
    /// A broker (re)starts or returns after being fenced: registered, unfenced, and given
    /// the leadership of partitions that have none and keep it in their ISR. A new
    /// incarnation of a broker that was not fenced (a restart within its session) is
    /// fenced first: the restarted process may have lost unsynced records.
    RegisterBroker {
        id: NodeId,
        native: String,
        kafka: Option<String>,
        incarnation: String,
    },
    /// A broker is silent past its session timeout, or shutting down: its leaderships
    /// move to other live replicas, each with its leader epoch raised.
    FenceBroker {
        id: NodeId,
    },
    /// `assignment[p]` is partition p's replica list.
    CreateTopic {
        name: String,
        id: String,
        configs: BTreeMap<String, String>,
        assignment: Vec<Vec<NodeId>>,
    },
    DeleteTopic {
        name: String,
    },
    /// New partitions appended to a topic, with their replicas.
    AddPartitions {
        name: String,
        assignment: Vec<Vec<NodeId>>,
    },
    /// The topic's configs set to exactly these (as the storage's alter does).
    SetTopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// A partition's leader changed its ISR (Kafka's AlterPartition): applied only if the
    /// leader epoch is still the current one. A preferred replica back in the ISR takes
    /// the leadership back (Kafka's preferred leader election).
    SetIsr {
        name: String,
        partition: u32,
        leader_epoch: i32,
        isr: Vec<NodeId>,
        /// The ISR the leader computed the change from: refused if the image's ISR is no
        /// longer that (a change delayed past a fencing would undo it — Kafka checks the
        /// partition epoch for the same reason).
        #[serde(default)]
        from: Option<Vec<NodeId>>,
        /// Members being added, each with the registration epoch its fetches came from:
        /// refused if that broker has registered again since, or is fenced (KIP-903).
        #[serde(default)]
        joining: Vec<(NodeId, i64)>,
    },
    /// A user's SCRAM credential for one mechanism set (`Some`) or removed (`None`).
    SetScramCredential {
        user: String,
        mechanism: Mechanism,
        credential: Option<ScramCredential>,
    },
}

/// What applying a command did, for the proposer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaReply {
    /// The log index the command was applied at.
    pub index: u64,
    /// Set when the command could not apply (a topic gone or already there).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub cluster_id: Option<String>,
    pub brokers: BTreeMap<NodeId, BrokerRecord>,
    pub topics: BTreeMap<String, TopicRecord>,
    /// SASL users: salted SCRAM credentials per mechanism (never a password).
    #[serde(default)]
    pub users: BTreeMap<String, BTreeMap<Mechanism, ScramCredential>>,
    /// The log index of the last command applied.
    pub applied_index: u64,
}

impl Image {
    pub fn live(&self, id: NodeId) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// Unfenced brokers, by id.
    pub fn live_brokers(&self) -> Vec<NodeId> {
        self.brokers.values().filter(|b| !b.fenced).map(|b| b.id).collect()
    }

    pub fn partition(&self, topic: &str, partition: u32) -> Option<&PartitionRecord> {
        self.topics.get(topic)?.partitions.get(partition as usize)
    }

    /// How many partitions each broker leads.
    pub fn leader_counts(&self) -> BTreeMap<NodeId, usize> {
        let mut counts = BTreeMap::new();
        for p in self.topics.values().flat_map(|t| &t.partitions) {
            if p.leader != NO_LEADER {
                *counts.entry(p.leader).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Applies one committed command at log `index`. Never fails: a command that no
    /// longer fits the image (a topic created twice by racing proposals) changes nothing
    /// and says why.
    pub fn apply(&mut self, index: u64, cmd: &MetaCommand) -> MetaReply {
        self.applied_index = index;
        let error = match cmd {
            MetaCommand::InitCluster { cluster_id } => {
                if self.cluster_id.is_none() {
                    self.cluster_id = Some(cluster_id.clone());
                }
                None
            }
            MetaCommand::RegisterBroker {
                id,
                native,
                kafka,
                incarnation,
            } => {
                let restarted = self
                    .brokers
                    .get(id)
                    .is_some_and(|b| !b.fenced && b.incarnation != *incarnation);
                if restarted {
                    if let Some(b) = self.brokers.get_mut(id) {
                        b.fenced = true;
                    }
                    self.fenced(*id);
                }
                let epoch = self.brokers.get(id).map_or(0, |b| b.epoch + 1);
                self.brokers.insert(
                    *id,
                    BrokerRecord {
                        id: *id,
                        native: native.clone(),
                        kafka: kafka.clone(),
                        epoch,
                        incarnation: incarnation.clone(),
                        fenced: false,
                    },
                );
                self.unfenced(*id);
                None
            }
            MetaCommand::FenceBroker { id } => match self.brokers.get_mut(id) {
                Some(b) => {
                    b.fenced = true;
                    self.fenced(*id);
                    None
                }
                None => Some(format!("broker {id} is not registered")),
            },
            MetaCommand::CreateTopic {
                name,
                id,
                configs,
                assignment,
            } => {
                if self.topics.contains_key(name) {
                    Some(format!("topic '{name}' already exists"))
                } else {
                    let partitions = assignment.iter().map(|r| self.new_partition(r)).collect();
                    self.topics.insert(
                        name.clone(),
                        TopicRecord {
                            id: id.clone(),
                            configs: configs.clone(),
                            partitions,
                        },
                    );
                    None
                }
            }
            MetaCommand::DeleteTopic { name } => match self.topics.remove(name) {
                Some(_) => None,
                None => Some(format!("topic '{name}' does not exist")),
            },
            MetaCommand::AddPartitions { name, assignment } => {
                let new: Vec<PartitionRecord> = assignment.iter().map(|r| self.new_partition(r)).collect();
                match self.topics.get_mut(name) {
                    Some(t) => {
                        t.partitions.extend(new);
                        None
                    }
                    None => Some(format!("topic '{name}' does not exist")),
                }
            }
            MetaCommand::SetTopicConfigs { name, configs } => match self.topics.get_mut(name) {
                Some(t) => {
                    t.configs = configs.clone();
                    None
                }
                None => Some(format!("topic '{name}' does not exist")),
            },
            MetaCommand::SetIsr {
                name,
                partition,
                leader_epoch,
                isr,
                from,
                joining,
            } => self.set_isr(name, *partition, *leader_epoch, isr, from.as_deref(), joining),
            MetaCommand::SetScramCredential {
                user,
                mechanism,
                credential,
            } => match credential {
                Some(c) => {
                    self.users
                        .entry(user.clone())
                        .or_default()
                        .insert(*mechanism, c.clone());
                    None
                }
                None => {
                    let gone = self.users.get_mut(user).and_then(|m| m.remove(mechanism)).is_some();
                    if self.users.get(user).is_some_and(|m| m.is_empty()) {
                        self.users.remove(user);
                    }
                    (!gone).then(|| format!("user '{user}' has no {} credential", mechanism.name()))
                }
            },
        };
        MetaReply { index, error }
    }

    /// A new partition: every live replica is in sync (all are empty), the first leads.
    fn new_partition(&self, replicas: &[NodeId]) -> PartitionRecord {
        let isr: Vec<NodeId> = replicas.iter().copied().filter(|r| self.live(*r)).collect();
        PartitionRecord {
            replicas: replicas.to_vec(),
            leader: isr.first().copied().unwrap_or(NO_LEADER),
            leader_epoch: 0,
            isr,
        }
    }

    /// `id` is fenced: it leaves every ISR (but the last member stays), and every
    /// partition it led moves to a live in-sync replica (or, where the topic allows
    /// unclean election and none is left, to any live replica; else to none).
    fn fenced(&mut self, id: NodeId) {
        let live: Vec<NodeId> = self.live_brokers();
        for t in self.topics.values_mut() {
            let unclean = t.configs.get("unclean.leader.election.enable").map(String::as_str) == Some("true");
            for p in t.partitions.iter_mut() {
                if p.isr.len() > 1 {
                    p.isr.retain(|r| *r != id);
                }
                if p.leader != id {
                    continue;
                }
                let in_sync = p
                    .replicas
                    .iter()
                    .copied()
                    .find(|r| live.contains(r) && p.isr.contains(r));
                match in_sync {
                    Some(next) => p.set_leader(next),
                    None => match p
                        .replicas
                        .iter()
                        .copied()
                        .find(|r| live.contains(r))
                        .filter(|_| unclean)
                    {
                        Some(next) => {
                            p.isr = vec![next];
                            p.set_leader(next);
                        }
                        None => p.set_leader(NO_LEADER),
                    },
                }
            }
        }
    }

    /// `id` is back: it leads the partitions that have no leader and keep it in their ISR
    /// (or, with unclean election allowed, that have no live in-sync replica at all).
    /// It becomes preferred leader again once it has caught up (see `set_isr`).
    fn unfenced(&mut self, id: NodeId) {
        for t in self.topics.values_mut() {
            let unclean = t.configs.get("unclean.leader.election.enable").map(String::as_str) == Some("true");
            for p in t.partitions.iter_mut() {
                if p.leader != NO_LEADER || !p.replicas.contains(&id) {
                    continue;
                }
                if p.isr.contains(&id) {
                    p.set_leader(id);
                } else if unclean {
                    p.isr = vec![id];
                    p.set_leader(id);
                }
            }
        }
    }

    fn set_isr(
        &mut self,
        name: &str,
        partition: u32,
        leader_epoch: i32,
        isr: &[NodeId],
        from: Option<&[NodeId]>,
        joining: &[(NodeId, i64)],
    ) -> Option<String> {
        let live = self.live_brokers();
        for (id, epoch) in joining {
            match self.brokers.get(id) {
                Some(b) if !b.fenced && b.epoch == *epoch => {}
                _ => {
                    return Some(format!(
                        "broker {id} would join the ISR of {name}-{partition} on fetches from its registration {epoch}, which is no longer current"
                    ))
                }
            }
        }
        let Some(p) = self
            .topics
            .get_mut(name)
            .and_then(|t| t.partitions.get_mut(partition as usize))
        else {
            return Some(format!("{name}-{partition} does not exist"));
        };
        if p.leader_epoch != leader_epoch || p.leader == NO_LEADER {
            return Some(format!(
                "{name}-{partition} is in leader epoch {}, not {leader_epoch}",
                p.leader_epoch
            ));
        }
        if !isr.contains(&p.leader) || isr.iter().any(|r| !p.replicas.contains(r)) {
            return Some(format!(
                "ISR {isr:?} must hold the leader and only replicas of {name}-{partition}"
            ));
        }
        if isr.iter().any(|r| !p.isr.contains(r) && !live.contains(r)) {
            return Some(format!("ISR {isr:?} adds a fenced broker to {name}-{partition}"));
        }
        if let Some(from) = from {
            let (mut a, mut b) = (from.to_vec(), p.isr.clone());
            a.sort_unstable();
            b.sort_unstable();
            if a != b {
                return Some(format!(
                    "the ISR of {name}-{partition} is {:?} now, not {from:?} as the change assumed",
                    p.isr
                ));
            }
        }
        // Kept in replica order, so every broker lists it the same way.
        p.isr = p.replicas.iter().copied().filter(|r| isr.contains(r)).collect();
        let preferred = p.replicas[0];
        if p.leader != preferred && p.isr.contains(&preferred) && live.contains(&preferred) {
            p.set_leader(preferred);
        }
        None
    }
}

impl PartitionRecord {
    fn set_leader(&mut self, leader: NodeId) {
        self.leader = leader;
        self.leader_epoch += 1;
    }
}

/// Replica lists for `count` new partitions numbered from `first`, spread round-robin
/// over `brokers` (sorted ids of live brokers): partition p's replicas are the
/// `replication_factor` brokers starting at position `p + offset`, so leaders (the first
/// replica) rotate over brokers and no broker holds two replicas of one partition.
/// `None` if there are fewer brokers than `replication_factor`.
pub fn place(brokers: &[NodeId], first: u32, count: u32, replication_factor: usize) -> Option<Vec<Vec<NodeId>>> {
    if replication_factor == 0 || brokers.len() < replication_factor {
        return None;
    }
    let n = brokers.len();
    Some(
        (first..first + count)
            .map(|p| (0..replication_factor).map(|r| brokers[(p as usize + r) % n]).collect())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(image: &mut Image, index: u64, id: NodeId) {
        image.apply(
            index,
            &MetaCommand::RegisterBroker {
                id,
                native: format!("127.0.0.1:{}", 9000 + id),
                kafka: None,
                incarnation: format!("i{index}"),
            },
        );
    }

    fn three_brokers_one_topic() -> Image {
        let mut image = Image::default();
        for id in 1..=3 {
            register(&mut image, id as u64, id);
        }
        let assignment = place(&image.live_brokers(), 0, 3, 2).unwrap();
        let reply = image.apply(
            4,
            &MetaCommand::CreateTopic {
                name: "t".into(),
                id: "id".into(),
                configs: BTreeMap::new(),
                assignment,
            },
        );
        assert_eq!(reply.error, None);
        image
    }

    #[test]
    fn placement_spreads_leaders_and_never_doubles_a_replica() {
        let a = place(&[1, 2, 3], 0, 6, 3).unwrap();
        for replicas in &a {
            let mut sorted = replicas.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 3, "{replicas:?}");
        }
        let leaders: Vec<NodeId> = a.iter().map(|r| r[0]).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
        assert_eq!(place(&[1, 2], 0, 1, 3), None);
        assert_eq!(place(&[1], 5, 2, 1).unwrap(), vec![vec![1], vec![1]]);
    }

    #[test]
    fn fencing_moves_leadership_within_the_isr_and_a_caught_up_return_takes_it_back() {
        let mut image = three_brokers_one_topic();
        let before = image.topics["t"].partitions.clone();
        assert_eq!(before.iter().map(|p| p.leader).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(before[0].isr, vec![1, 2]);
        image.apply(5, &MetaCommand::FenceBroker { id: 1 });
        let p0 = &image.topics["t"].partitions[0];
        assert_eq!(p0.replicas, vec![1, 2]);
        assert_eq!((p0.leader, p0.leader_epoch, p0.isr.clone()), (2, 1, vec![2]));
        // Partition 2 (replicas 3, 1) keeps its leader but loses 1 from its ISR.
        assert_eq!(image.topics["t"].partitions[2].isr, vec![3]);
        assert_eq!(image.topics["t"].partitions[1], before[1]);
        assert_eq!(image.leader_counts().get(&1), None);
        // Back, but not in sync: it follows until its leader adds it to the ISR.
        register(&mut image, 6, 1);
        let p0 = &image.topics["t"].partitions[0];
        assert_eq!((p0.leader, p0.leader_epoch), (2, 1));
        assert_eq!(image.brokers[&1].epoch, 1);
        let stale = MetaCommand::SetIsr {
            name: "t".into(),
            partition: 0,
            leader_epoch: 0,
            isr: vec![2, 1],
            from: None,
            joining: vec![],
        };
        assert!(image.apply(7, &stale).error.is_some());
        // On fetches from its previous registration (epoch 0): refused (KIP-903).
        let previous_process = MetaCommand::SetIsr {
            name: "t".into(),
            partition: 0,
            leader_epoch: 1,
            isr: vec![2, 1],
            from: Some(vec![2]),
            joining: vec![(1, 0)],
        };
        assert!(image.apply(8, &previous_process).error.is_some());
        // Computed from an ISR that has changed since: refused.
        let stale_base = MetaCommand::SetIsr {
            name: "t".into(),
            partition: 0,
            leader_epoch: 1,
            isr: vec![2, 1],
            from: Some(vec![2, 1]),
            joining: vec![(1, 1)],
        };
        assert!(image.apply(8, &stale_base).error.is_some());
        let caught_up = MetaCommand::SetIsr {
            name: "t".into(),
            partition: 0,
            leader_epoch: 1,
            isr: vec![2, 1],
            from: Some(vec![2]),
            joining: vec![(1, 1)],
        };
        assert_eq!(image.apply(8, &caught_up).error, None);
        let p0 = &image.topics["t"].partitions[0];
        assert_eq!((p0.leader, p0.leader_epoch, p0.isr.clone()), (1, 2, vec![1, 2]));
    }

    #[test]
    fn a_restart_within_the_session_is_a_fence_and_unclean_election_is_opt_in() {
        let mut image = three_brokers_one_topic();
        // Broker 1 restarts (new incarnation) before it was fenced: it leaves the ISRs.
        image.apply(
            5,
            &MetaCommand::RegisterBroker {
                id: 1,
                native: "127.0.0.1:9001".into(),
                kafka: None,
                incarnation: "again".into(),
            },
        );
        let p0 = &image.topics["t"].partitions[0];
        assert_eq!((p0.leader, p0.isr.clone()), (2, vec![2]));
        // The last in-sync replica dies: no leader, unless the topic allows unclean.
        image.apply(6, &MetaCommand::FenceBroker { id: 2 });
        assert_eq!(image.topics["t"].partitions[0].leader, NO_LEADER);
        let mut configs = BTreeMap::new();
        configs.insert("unclean.leader.election.enable".to_owned(), "true".to_owned());
        image.apply(
            7,
            &MetaCommand::SetTopicConfigs {
                name: "t".into(),
                configs,
            },
        );
        // Broker 1 (out of sync) registers again: with unclean election it takes p0.
        register(&mut image, 8, 1);
        let p0 = &image.topics["t"].partitions[0];
        assert_eq!((p0.leader, p0.isr.clone()), (1, vec![1]));
    }

    #[test]
    fn a_partition_with_every_replica_fenced_has_no_leader_until_one_returns() {
        let mut image = three_brokers_one_topic();
        image.apply(5, &MetaCommand::FenceBroker { id: 1 });
        image.apply(6, &MetaCommand::FenceBroker { id: 2 });
        // Partition 0 lives on 1 and 2.
        let p0 = &image.topics["t"].partitions[0];
        // The last in-sync replica stays in the ISR: only it may lead again.
        assert_eq!((p0.leader, p0.isr.clone()), (NO_LEADER, vec![2]));
        register(&mut image, 7, 2);
        assert_eq!(image.topics["t"].partitions[0].leader, 2);
    }

    #[test]
    fn commands_that_no_longer_fit_change_nothing() {
        let mut image = three_brokers_one_topic();
        let before = image.clone();
        let again = image.apply(
            5,
            &MetaCommand::CreateTopic {
                name: "t".into(),
                id: "other".into(),
                configs: BTreeMap::new(),
                assignment: vec![vec![1]],
            },
        );
        assert!(again.error.is_some());
        assert!(image
            .apply(6, &MetaCommand::DeleteTopic { name: "nope".into() })
            .error
            .is_some());
        assert_eq!(image.topics, before.topics);
        assert_eq!(image.applied_index, 6);
    }
}

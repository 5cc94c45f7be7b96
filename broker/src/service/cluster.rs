//! The cluster as clients see it: its brokers (for Metadata, DescribeCluster and
//! `runnel cluster describe`), each partition's leader, epoch, replicas and ISR, and the
//! check that this broker leads a partition it is asked to serve.

use std::sync::Arc;

use super::{Broker, Failure, Outcome};
use crate::cluster::NodeId;
use crate::storage::log::INITIAL_LEADER_EPOCH;
use crate::storage::PartitionLog;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerView {
    pub id: NodeId,
    /// `host:port` of the native listener.
    pub native: String,
    /// `host:port` of the Kafka listener, if it runs.
    pub kafka: Option<String>,
    pub fenced: bool,
    pub epoch: i64,
    /// Partitions it leads.
    pub leaders: usize,
    /// A controller voter.
    pub voter: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    pub cluster_id: String,
    /// -1: no controller known (no quorum).
    pub controller_id: NodeId,
    pub brokers: Vec<BrokerView>,
    /// The metadata log index this broker has applied.
    pub metadata_offset: u64,
}

pub fn describe(broker: &Broker) -> ClusterView {
    let c = &broker.cluster;
    let image = c.image();
    let leaders = image.leader_counts();
    ClusterView {
        cluster_id: image.cluster_id.clone().unwrap_or_default(),
        controller_id: c.controller_id().unwrap_or(-1),
        brokers: image
            .brokers
            .values()
            .map(|b| BrokerView {
                id: b.id,
                native: b.native.clone(),
                kafka: b.kafka.clone(),
                fenced: b.fenced,
                epoch: b.epoch,
                leaders: leaders.get(&b.id).copied().unwrap_or(0),
                voter: c.is_voter(b.id),
            })
            .collect(),
        metadata_offset: c.applied_index(),
    }
}

/// Live brokers for Metadata: `(id, host, port)` of the native listener, or of the Kafka
/// one with `kafka`. Before this broker has registered (the image is empty) it lists
/// itself, so a client always has somewhere to go.
pub fn live_brokers(broker: &Broker, kafka: bool) -> Vec<(NodeId, String, u16)> {
    let image = broker.cluster.image();
    let mut out: Vec<(NodeId, String, u16)> = image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .filter_map(|b| {
            let addr = if kafka { b.kafka.as_deref()? } else { b.native.as_str() };
            let (host, port) = addr.rsplit_once(':')?;
            Some((b.id, host.to_owned(), port.parse().ok()?))
        })
        .collect();
    if out.is_empty() {
        let port = if kafka {
            broker.kafka_port.unwrap_or(0)
        } else {
            broker.advertised_port
        };
        out.push((broker.node_id, broker.advertised_host.clone(), port));
    }
    out
}

/// A partition's leadership as Metadata reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadership {
    pub leader: NodeId,
    pub leader_epoch: i32,
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
}

/// Who leads `topic`/`partition`; a partition the image does not have yet (a single
/// broker's topic before import) is this broker's.
pub fn leadership(broker: &Broker, topic: &str, partition: u32) -> Leadership {
    match broker.cluster.image().partition(topic, partition) {
        Some(p) => Leadership {
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
        },
        None => Leadership {
            leader: broker.node_id,
            leader_epoch: INITIAL_LEADER_EPOCH,
            replicas: vec![broker.node_id],
            isr: vec![broker.node_id],
        },
    }
}

/// Ok if this broker leads the partition; NOT_LEADER_OR_FOLLOWER (or
/// LEADER_NOT_AVAILABLE) otherwise.
pub fn check_leader(broker: &Broker, topic: &str, partition: u32) -> Outcome<()> {
    broker.cluster.check_leader(topic, partition).map_err(Failure::from)
}

/// The log of a partition this broker leads: what produce, fetch, ListOffsets and
/// DeleteRecords serve from.
pub fn led_partition(broker: &Broker, topic: &str, partition: u32) -> Outcome<Arc<PartitionLog>> {
    check_leader(broker, topic, partition)?;
    broker.storage.partition(topic, partition).map_err(Failure::from)
}

/// A Raft message from another controller voter, for this broker's Raft node.
pub async fn raft_message(
    broker: &Broker,
    req: runnel_protocol::messages::RaftRequest,
) -> runnel_protocol::messages::RaftResponse {
    crate::cluster::network::serve(&broker.cluster, req).await
}

/// A broker's call to the controller (registration, heartbeat, topic change).
pub async fn controller_write(
    broker: &Broker,
    req: runnel_protocol::messages::ControllerWriteRequest,
) -> runnel_protocol::messages::ControllerWriteResponse {
    crate::cluster::controller::serve(&broker.cluster, req).await
}

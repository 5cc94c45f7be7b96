//! The service layer: what the broker does, whatever protocol asked. Each module takes
//! domain values and returns domain values and typed errors; the native and Kafka
//! listeners (`native/`, `kafka/`) only translate their wire types to and from these
//! calls. This is the one place where a later authorization check goes.
//!
//! [`Broker`] is the state every request is served against: storage, the group
//! coordinator, this broker's identity and the connection machinery's shared [`Net`]
//! (limits, counters, metrics, shutdown).

pub mod cluster;
pub mod fetch;
pub mod groups;
pub mod produce;
pub mod records;
pub mod sasl;
pub mod topics;
pub mod users;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use runnel_protocol::ErrorCode;

use crate::cluster::{Cluster, Refusal};
use crate::error::Error;
use crate::group::error::GroupErrorKind;
use crate::group::{Coordinator, GroupError};
use crate::metrics::{Metrics, ScrapeSource};
use crate::net::{Net, ServerConfig, ServerStats};
use crate::storage::LogManager;

/// Producer ids step by this, so each broker's are distinct modulo it.
const PRODUCER_ID_STRIDE: i64 = 1024;

/// What every handler of either protocol is served by. Owned by the server; handlers
/// hold an `Arc`. Immutable but for the producer id counter and what `net` holds.
pub struct Broker {
    pub storage: Arc<LogManager>,
    /// The consumer-group coordinator (every group, on a single broker).
    pub groups: Arc<Coordinator>,
    pub net: Arc<Net>,
    /// The metadata quorum: brokers, topics' replicas and leaders.
    pub cluster: Arc<Cluster>,
    /// Follower fetch, high watermarks and ISR upkeep of this broker's replicas.
    pub replication: Arc<crate::replication::Replication>,
    /// The node id of this broker in Metadata (a broker started without `--node-id` is
    /// node 0).
    pub node_id: i32,
    pub advertised_host: String,
    pub advertised_port: u16,
    /// The Kafka listener's port (advertised in Kafka Metadata), if it runs.
    pub kafka_port: Option<u16>,
    /// The next idempotent producer id: see [`Broker::new_producer_id`].
    next_producer_id: AtomicI64,
}

impl Broker {
    pub fn new(
        storage: Arc<LogManager>,
        groups: Arc<Coordinator>,
        net: Arc<Net>,
        replication: Arc<crate::replication::Replication>,
        advertised_host: String,
        advertised_port: u16,
        kafka_port: Option<u16>,
    ) -> Broker {
        let cluster = replication.cluster().clone();
        let start_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as i64);
        Broker {
            storage,
            groups,
            net,
            node_id: cluster.node_id(),
            advertised_host,
            advertised_port,
            kafka_port,
            next_producer_id: AtomicI64::new(
                (start_ms << 20) + i64::from(cluster.node_id()).rem_euclid(PRODUCER_ID_STRIDE),
            ),
            cluster,
            replication,
        }
    }

    /// A new idempotent producer id (InitProducerId, native and Kafka):
    /// `(broker start time in ms) << 20`, plus the node id modulo 1024, plus 1024 per id
    /// handed out. Brokers of a cluster never hand out the same id (theirs differ modulo
    /// 1024, for node ids below 1024), and a restarted broker never repeats one unless it
    /// handed out more than 1024 per millisecond of uptime.
    pub fn new_producer_id(&self) -> i64 {
        self.next_producer_id.fetch_add(PRODUCER_ID_STRIDE, Ordering::Relaxed)
    }

    pub fn config(&self) -> &ServerConfig {
        &self.net.config
    }

    pub fn stats(&self) -> &ServerStats {
        &self.net.stats
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.net.metrics
    }

    /// Resolves once shutdown has begun.
    pub async fn shutting_down(&self) {
        self.net.shutting_down().await
    }

    pub fn is_shutting_down(&self) -> bool {
        self.net.is_shutting_down()
    }
}

impl ScrapeSource for Broker {
    fn storage(&self) -> &Arc<LogManager> {
        &self.storage
    }

    fn groups(&self) -> &Arc<Coordinator> {
        &self.groups
    }

    fn kafka_produce_copied_bytes(&self) -> u64 {
        ServerStats::get(&self.net.stats.kafka_produce_copied_bytes)
    }

    fn cluster(&self) -> crate::metrics::ClusterGauges {
        let image = self.cluster.image();
        crate::metrics::ClusterGauges {
            is_controller: self.cluster.is_controller(),
            leaders: image.leader_counts().get(&self.node_id).copied().unwrap_or(0) as u64,
            metadata_offset: self.cluster.applied_index(),
            brokers: image.brokers.len() as u64,
            fenced_brokers: image.brokers.values().filter(|b| b.fenced).count() as u64,
        }
    }
}

/// An error as (code, message) for a response field (`ErrorCode`'s numbers are Kafka's,
/// shared by both protocols).
pub(crate) fn code_and_message(e: &Error) -> (i32, String) {
    (e.code().code(), e.to_string())
}

/// Runs blocking storage work (topic changes sync the metadata log) off the runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> crate::Result<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or(Err(Error::ShuttingDown))
}

/// Why one item of a request (a topic, a partition, a group) failed: a code both
/// protocols put on the wire (`ErrorCode` uses Kafka's numbers) and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Failure {
        Failure::new(r.code(), r.message)
    }
}

impl Failure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<&Error> for Failure {
    fn from(e: &Error) -> Failure {
        Failure::new(e.code(), e.to_string())
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::from(&e)
    }
}

impl From<GroupError> for Failure {
    fn from(e: GroupError) -> Failure {
        Failure::new(ErrorCode::from(e.kind), e.message)
    }
}

/// The code both listeners answer a group error with (Kafka's numbers): the edge where
/// the coordinator's typed errors become wire codes.
impl From<GroupErrorKind> for ErrorCode {
    fn from(kind: GroupErrorKind) -> ErrorCode {
        use GroupErrorKind as K;
        match kind {
            K::CoordinatorNotAvailable => ErrorCode::CoordinatorNotAvailable,
            K::CoordinatorLoadInProgress => ErrorCode::CoordinatorLoadInProgress,
            K::NotCoordinator => ErrorCode::NotCoordinator,
            K::FencedInstanceId => ErrorCode::FencedInstanceId,
            K::FencedMemberEpoch => ErrorCode::FencedMemberEpoch,
            K::GroupIdNotFound => ErrorCode::GroupIdNotFound,
            K::GroupSubscribedToTopic => ErrorCode::GroupSubscribedToTopic,
            K::IllegalGeneration => ErrorCode::IllegalGeneration,
            K::InconsistentGroupProtocol => ErrorCode::InconsistentGroupProtocol,
            K::InvalidGroupId => ErrorCode::InvalidGroupId,
            K::InvalidRegularExpression => ErrorCode::InvalidRegularExpression,
            K::InvalidRequest => ErrorCode::InvalidRequest,
            K::InvalidSessionTimeout => ErrorCode::InvalidSessionTimeout,
            K::NonEmptyGroup => ErrorCode::NonEmptyGroup,
            K::OffsetMetadataTooLarge => ErrorCode::OffsetMetadataTooLarge,
            K::RebalanceInProgress => ErrorCode::RebalanceInProgress,
            K::StaleMemberEpoch => ErrorCode::StaleMemberEpoch,
            K::UnknownMemberId => ErrorCode::UnknownMemberId,
            K::UnknownTopicOrPartition => ErrorCode::UnknownTopicOrPartition,
            K::UnsupportedAssignor => ErrorCode::UnsupportedAssignor,
        }
    }
}

/// A result of one item: its value, or why it failed.
pub type Outcome<T> = Result<T, Failure>;

//! The one set of error codes the broker sends and the client interprets. The numbers
//! follow Kafka's where Kafka has the same error, so operators recognise them.

/// A wire error code (`int32 error_code` in every response).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ErrorCode {
    None = 0,
    UnknownServerError = -1,
    OffsetOutOfRange = 1,
    /// A record batch failed validation: framing, magic, CRC-32C.
    CorruptMessage = 2,
    UnknownTopicOrPartition = 3,
    MessageTooLarge = 10,
    RequestTimedOut = 7,
    /// The broker's storage for this partition failed (I/O error, log offline).
    StorageError = 56,
    UnsupportedVersion = 35,
    TopicAlreadyExists = 36,
    InvalidPartitions = 37,
    InvalidRequiredAcks = 21,
    InvalidTopic = 17,
    InvalidRequest = 42,
    InvalidConfig = 40,
    /// Commit metadata longer than the broker accepts.
    OffsetMetadataTooLarge = 12,
    /// The group coordinator is loading or stopping; retry.
    CoordinatorNotAvailable = 15,
    /// The group's coordinator is loading it from the offsets log; retry shortly.
    CoordinatorLoadInProgress = 14,
    /// This broker does not coordinate the group: find its coordinator again.
    NotCoordinator = 16,
    /// A member asked for a different assignor than the group uses.
    InconsistentGroupProtocol = 23,
    /// A classic-protocol member's generation is not the group's: it must rejoin.
    IllegalGeneration = 22,
    InvalidGroupId = 24,
    /// The coordinator has no such member (it left or its session expired): rejoin.
    UnknownMemberId = 25,
    InvalidSessionTimeout = 26,
    /// The classic group is rebalancing: rejoin.
    RebalanceInProgress = 27,
    /// A classic member joined without an id; it was given one to join with.
    MemberIdRequired = 79,
    /// The group still consumes the topic, so its offsets cannot be deleted.
    GroupSubscribedToTopic = 86,
    /// The group has members; stop them first.
    NonEmptyGroup = 68,
    GroupIdNotFound = 69,
    /// Another member took over this static member's instance id.
    FencedInstanceId = 82,
    /// The member's epoch is not one the coordinator gave it: it must rejoin.
    FencedMemberEpoch = 110,
    UnsupportedAssignor = 112,
    /// A commit from an older epoch, or for a partition the member no longer owns.
    StaleMemberEpoch = 113,
    InvalidRegularExpression = 128,
    /// An idempotent producer's batch does not follow its previous one (a gap or a
    /// reordering): the batch is not appended.
    OutOfOrderSequenceNumber = 45,
    /// An idempotent producer's epoch is older than the partition has seen: a newer
    /// instance of the producer fenced it.
    InvalidProducerEpoch = 47,
    /// The topic is being created: ask again shortly.
    LeaderNotAvailable = 5,
    /// More replicas asked for than there are brokers to hold them.
    InvalidReplicationFactor = 38,
    /// A replica assignment names brokers that do not exist, or is inconsistent.
    InvalidReplicaAssignment = 39,
    /// This broker does not lead the partition: refresh metadata, send to the leader.
    NotLeaderOrFollower = 6,
    /// The request needs the controller and this broker is not it (any more).
    NotController = 41,
    /// The leader epoch in the request is older than the partition's.
    FencedLeaderEpoch = 74,
    /// The leader epoch in the request is newer than this broker knows: its metadata is
    /// behind; retry.
    UnknownLeaderEpoch = 75,
    /// Fewer in-sync replicas than the topic's `min.insync.replicas`: nothing was written.
    NotEnoughReplicas = 19,
    /// Written on the leader, but the in-sync replicas fell below `min.insync.replicas`
    /// before the write was replicated: not acknowledged (a retry may duplicate it unless
    /// the producer is idempotent).
    NotEnoughReplicasAfterAppend = 20,
    /// Another live process registered with the same node id.
    DuplicateBrokerRegistration = 101,
    /// The broker's data directory belongs to another cluster.
    InconsistentClusterId = 104,
    /// The SASL mechanism asked for is not offered by this listener.
    UnsupportedSaslMechanism = 33,
    /// A SASL request out of turn (authenticate before the handshake, a second handshake).
    IllegalSaslState = 34,
    /// Wrong user or password, or a malformed SASL exchange: the connection closes.
    SaslAuthenticationFailed = 58,
    /// The user (or other resource) named does not exist.
    ResourceNotFound = 91,
    /// A SCRAM credential out of bounds (iterations, an empty salt or user name).
    UnacceptableCredential = 93,
    /// One request names the same user and mechanism twice.
    DuplicateResource = 92,
    /// The request's api key is not one this broker knows.
    UnknownApi = 1000,
    /// The broker is stopping; retry against it (or another) later.
    BrokerShuttingDown = 1001,
}

impl ErrorCode {
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::None,
        ErrorCode::UnknownServerError,
        ErrorCode::OffsetOutOfRange,
        ErrorCode::UnsupportedSaslMechanism,
        ErrorCode::IllegalSaslState,
        ErrorCode::SaslAuthenticationFailed,
        ErrorCode::ResourceNotFound,
        ErrorCode::UnacceptableCredential,
        ErrorCode::DuplicateResource,
        ErrorCode::CorruptMessage,
        ErrorCode::UnknownTopicOrPartition,
        ErrorCode::MessageTooLarge,
        ErrorCode::RequestTimedOut,
        ErrorCode::StorageError,
        ErrorCode::UnsupportedVersion,
        ErrorCode::TopicAlreadyExists,
        ErrorCode::InvalidPartitions,
        ErrorCode::InvalidRequiredAcks,
        ErrorCode::InvalidTopic,
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidConfig,
        ErrorCode::OffsetMetadataTooLarge,
        ErrorCode::CoordinatorNotAvailable,
        ErrorCode::CoordinatorLoadInProgress,
        ErrorCode::NotCoordinator,
        ErrorCode::InconsistentGroupProtocol,
        ErrorCode::IllegalGeneration,
        ErrorCode::InvalidGroupId,
        ErrorCode::UnknownMemberId,
        ErrorCode::InvalidSessionTimeout,
        ErrorCode::RebalanceInProgress,
        ErrorCode::MemberIdRequired,
        ErrorCode::GroupSubscribedToTopic,
        ErrorCode::NonEmptyGroup,
        ErrorCode::GroupIdNotFound,
        ErrorCode::FencedInstanceId,
        ErrorCode::FencedMemberEpoch,
        ErrorCode::UnsupportedAssignor,
        ErrorCode::StaleMemberEpoch,
        ErrorCode::InvalidRegularExpression,
        ErrorCode::OutOfOrderSequenceNumber,
        ErrorCode::InvalidProducerEpoch,
        ErrorCode::LeaderNotAvailable,
        ErrorCode::InvalidReplicationFactor,
        ErrorCode::InvalidReplicaAssignment,
        ErrorCode::NotLeaderOrFollower,
        ErrorCode::NotController,
        ErrorCode::FencedLeaderEpoch,
        ErrorCode::UnknownLeaderEpoch,
        ErrorCode::NotEnoughReplicas,
        ErrorCode::NotEnoughReplicasAfterAppend,
        ErrorCode::DuplicateBrokerRegistration,
        ErrorCode::InconsistentClusterId,
        ErrorCode::UnknownApi,
        ErrorCode::BrokerShuttingDown,
    ];

    /// The code for a wire value; unknown values (from a newer broker) are
    /// `UnknownServerError`.
    pub fn from_i32(code: i32) -> ErrorCode {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|c| *c as i32 == code)
            .unwrap_or(ErrorCode::UnknownServerError)
    }

    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn is_ok(self) -> bool {
        self == ErrorCode::None
    }

    /// Whether the same request may succeed if sent again later.
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorCode::RequestTimedOut
                | ErrorCode::BrokerShuttingDown
                | ErrorCode::StorageError
                | ErrorCode::CoordinatorNotAvailable
                | ErrorCode::CoordinatorLoadInProgress
                | ErrorCode::NotCoordinator
                | ErrorCode::LeaderNotAvailable
                | ErrorCode::NotLeaderOrFollower
                | ErrorCode::NotController
                | ErrorCode::FencedLeaderEpoch
                | ErrorCode::UnknownLeaderEpoch
                | ErrorCode::NotEnoughReplicas
                | ErrorCode::NotEnoughReplicasAfterAppend
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::None => "NONE",
            ErrorCode::UnsupportedSaslMechanism => "UNSUPPORTED_SASL_MECHANISM",
            ErrorCode::IllegalSaslState => "ILLEGAL_SASL_STATE",
            ErrorCode::SaslAuthenticationFailed => "SASL_AUTHENTICATION_FAILED",
            ErrorCode::ResourceNotFound => "RESOURCE_NOT_FOUND",
            ErrorCode::UnacceptableCredential => "UNACCEPTABLE_CREDENTIAL",
            ErrorCode::DuplicateResource => "DUPLICATE_RESOURCE",
            ErrorCode::UnknownServerError => "UNKNOWN_SERVER_ERROR",
            ErrorCode::OffsetOutOfRange => "OFFSET_OUT_OF_RANGE",
            ErrorCode::CorruptMessage => "CORRUPT_MESSAGE",
            ErrorCode::UnknownTopicOrPartition => "UNKNOWN_TOPIC_OR_PARTITION",
            ErrorCode::MessageTooLarge => "MESSAGE_TOO_LARGE",
            ErrorCode::RequestTimedOut => "REQUEST_TIMED_OUT",
            ErrorCode::StorageError => "STORAGE_ERROR",
            ErrorCode::UnsupportedVersion => "UNSUPPORTED_VERSION",
            ErrorCode::TopicAlreadyExists => "TOPIC_ALREADY_EXISTS",
            ErrorCode::InvalidPartitions => "INVALID_PARTITIONS",
            ErrorCode::InvalidRequiredAcks => "INVALID_REQUIRED_ACKS",
            ErrorCode::InvalidTopic => "INVALID_TOPIC",
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::InvalidConfig => "INVALID_CONFIG",
            ErrorCode::OffsetMetadataTooLarge => "OFFSET_METADATA_TOO_LARGE",
            ErrorCode::CoordinatorNotAvailable => "COORDINATOR_NOT_AVAILABLE",
            ErrorCode::CoordinatorLoadInProgress => "COORDINATOR_LOAD_IN_PROGRESS",
            ErrorCode::NotCoordinator => "NOT_COORDINATOR",
            ErrorCode::InconsistentGroupProtocol => "INCONSISTENT_GROUP_PROTOCOL",
            ErrorCode::IllegalGeneration => "ILLEGAL_GENERATION",
            ErrorCode::InvalidGroupId => "INVALID_GROUP_ID",
            ErrorCode::UnknownMemberId => "UNKNOWN_MEMBER_ID",
            ErrorCode::InvalidSessionTimeout => "INVALID_SESSION_TIMEOUT",
            ErrorCode::RebalanceInProgress => "REBALANCE_IN_PROGRESS",
            ErrorCode::MemberIdRequired => "MEMBER_ID_REQUIRED",
            ErrorCode::GroupSubscribedToTopic => "GROUP_SUBSCRIBED_TO_TOPIC",
            ErrorCode::NonEmptyGroup => "NON_EMPTY_GROUP",
            ErrorCode::GroupIdNotFound => "GROUP_ID_NOT_FOUND",
            ErrorCode::FencedInstanceId => "FENCED_INSTANCE_ID",
            ErrorCode::FencedMemberEpoch => "FENCED_MEMBER_EPOCH",
            ErrorCode::UnsupportedAssignor => "UNSUPPORTED_ASSIGNOR",
            ErrorCode::StaleMemberEpoch => "STALE_MEMBER_EPOCH",
            ErrorCode::InvalidRegularExpression => "INVALID_REGULAR_EXPRESSION",
            ErrorCode::OutOfOrderSequenceNumber => "OUT_OF_ORDER_SEQUENCE_NUMBER",
            ErrorCode::InvalidProducerEpoch => "INVALID_PRODUCER_EPOCH",
            ErrorCode::LeaderNotAvailable => "LEADER_NOT_AVAILABLE",
            ErrorCode::InvalidReplicationFactor => "INVALID_REPLICATION_FACTOR",
            ErrorCode::InvalidReplicaAssignment => "INVALID_REPLICA_ASSIGNMENT",
            ErrorCode::NotLeaderOrFollower => "NOT_LEADER_OR_FOLLOWER",
            ErrorCode::NotController => "NOT_CONTROLLER",
            ErrorCode::FencedLeaderEpoch => "FENCED_LEADER_EPOCH",
            ErrorCode::UnknownLeaderEpoch => "UNKNOWN_LEADER_EPOCH",
            ErrorCode::NotEnoughReplicas => "NOT_ENOUGH_REPLICAS",
            ErrorCode::NotEnoughReplicasAfterAppend => "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
            ErrorCode::DuplicateBrokerRegistration => "DUPLICATE_BROKER_REGISTRATION",
            ErrorCode::InconsistentClusterId => "INCONSISTENT_CLUSTER_ID",
            ErrorCode::UnknownApi => "UNKNOWN_API",
            ErrorCode::BrokerShuttingDown => "BROKER_SHUTTING_DOWN",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.code()), "{c} reuses {}", c.code());
            assert_eq!(ErrorCode::from_i32(c.code()), *c);
        }
        assert_eq!(ErrorCode::from_i32(123_456), ErrorCode::UnknownServerError);
    }
}

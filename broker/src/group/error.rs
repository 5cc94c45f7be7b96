//! The coordinator's error: what went wrong with a group request or one of its
//! partitions ([`GroupErrorKind`]) and a message for people. Shared by the group shell
//! and both protocols, so it depends on neither; the service layer maps a kind to the
//! code both listeners answer with.

/// What went wrong, typed. Mapped to a wire code at the edge (`service`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupErrorKind {
    /// The coordinator cannot answer now (stopping): retry.
    CoordinatorNotAvailable,
    /// This broker has just become the group's coordinator and is loading its offsets-log
    /// partition: retry shortly.
    CoordinatorLoadInProgress,
    /// This broker does not lead the group's offsets-log partition: find the coordinator.
    NotCoordinator,
    /// Another member took over this static member's instance id.
    FencedInstanceId,
    /// The member's epoch is not one the coordinator gave it: rejoin.
    FencedMemberEpoch,
    /// No such group.
    GroupIdNotFound,
    /// The group still consumes the topic.
    GroupSubscribedToTopic,
    /// A classic member's generation is not the group's: rejoin.
    IllegalGeneration,
    /// The member's protocol, assignor or protocol type differs from the group's.
    InconsistentGroupProtocol,
    /// An empty or too long group id.
    InvalidGroupId,
    /// A subscription regex that does not compile.
    InvalidRegularExpression,
    /// A request the group cannot take (a negative offset, say).
    InvalidRequest,
    /// A session timeout outside the broker's bounds.
    InvalidSessionTimeout,
    /// The group has members; stop them first.
    NonEmptyGroup,
    /// Commit metadata over the limit.
    OffsetMetadataTooLarge,
    /// A classic group is rebalancing: rejoin.
    RebalanceInProgress,
    /// A commit from an older epoch, or for a partition the member does not own.
    StaleMemberEpoch,
    /// No such member (it left, or its session expired): rejoin.
    UnknownMemberId,
    /// A commit for a partition that does not exist.
    UnknownTopicOrPartition,
    /// An assignor the broker does not know.
    UnsupportedAssignor,
}

/// A request-level or per-partition group error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupError {
    pub kind: GroupErrorKind,
    pub message: String,
}

impl GroupError {
    pub fn new(kind: GroupErrorKind, message: impl Into<String>) -> GroupError {
        GroupError {
            kind,
            message: message.into(),
        }
    }
}

pub type GroupResult<T> = std::result::Result<T, GroupError>;

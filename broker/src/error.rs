//! The broker crate's one error type. Each variant maps to a wire error code at the edge
//! (the server issue); here they carry enough to say what went wrong in one line.

use std::path::PathBuf;

use runnel_protocol::BatchError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error("batch of {size} bytes exceeds max.message.bytes={limit}")]
    RecordTooLarge { size: usize, limit: usize },
    #[error("offset {offset} is out of range: the log holds [{start}, {end})")]
    OffsetOutOfRange { offset: u64, start: u64, end: u64 },
    #[error("invalid config {key}={value}: {reason}")]
    InvalidConfig { key: String, value: String, reason: String },
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: &'static str },
    #[error("invalid partition count {count}: must be between 1 and {max}")]
    InvalidPartitions { count: i64, max: u32 },
    #[error("topic {topic:?} has {current} partitions; it can only grow (asked for {requested})")]
    PartitionsCannotShrink {
        topic: String,
        current: u32,
        requested: i64,
    },
    #[error("replication factor {asked} is more than the {brokers} live broker(s)")]
    InvalidReplicationFactor { asked: i64, brokers: usize },
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    #[error("unknown partition {topic}-{partition}")]
    UnknownPartition { topic: String, partition: u32 },
    #[error("log {path} is offline after an I/O failure: {reason}")]
    LogOffline { path: PathBuf, reason: String },
    #[error("corrupt metadata log: {0}")]
    CorruptMetadata(String),
    #[error("the storage engine is shutting down")]
    ShuttingDown,
    #[error("producer {producer_id}: batch with sequence {sequence} does not follow {expected}")]
    OutOfOrderSequence {
        producer_id: i64,
        sequence: i32,
        expected: String,
    },
    #[error("producer {producer_id}: epoch {epoch} is older than {current}, which fenced it")]
    InvalidProducerEpoch { producer_id: i64, epoch: i16, current: i16 },
    /// The log is a follower's copy (or is changing role): only its leader appends.
    #[error("{0}")]
    NotLeader(String),
    #[error("{isr} in-sync replica(s), fewer than min.insync.replicas={min}: not written")]
    NotEnoughReplicas { isr: usize, min: usize },
    #[error("written on the leader, but the in-sync replicas fell to {isr}, below min.insync.replicas={min}, before it was replicated")]
    NotEnoughReplicasAfterAppend { isr: usize, min: usize },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

impl Error {
    /// The wire error code this error is reported as.
    /// This error again, for each of many operations it failed at once (a batch of topic
    /// records whose one append failed): the same code and message, the I/O source as
    /// text.
    pub fn for_each_of_many(&self) -> Error {
        match self {
            Error::ShuttingDown => Error::ShuttingDown,
            Error::InvalidReplicationFactor { asked, brokers } => Error::InvalidReplicationFactor {
                asked: *asked,
                brokers: *brokers,
            },
            Error::Io { op, path, source } => Error::Io {
                op,
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            other => Error::Io {
                op: "append to the metadata log",
                path: PathBuf::new(),
                source: std::io::Error::other(other.to_string()),
            },
        }
    }

    pub fn code(&self) -> runnel_protocol::ErrorCode {
        use runnel_protocol::ErrorCode as C;
        match self {
            Error::Io { .. } | Error::LogOffline { .. } => C::StorageError,
            Error::InvalidBatch(_) => C::CorruptMessage,
            Error::RecordTooLarge { .. } => C::MessageTooLarge,
            Error::OffsetOutOfRange { .. } => C::OffsetOutOfRange,
            Error::InvalidConfig { .. } => C::InvalidConfig,
            Error::InvalidTopicName { .. } => C::InvalidTopic,
            Error::InvalidPartitions { .. } | Error::PartitionsCannotShrink { .. } => C::InvalidPartitions,
            Error::TopicExists(_) => C::TopicAlreadyExists,
            Error::InvalidReplicationFactor { .. } => C::InvalidReplicationFactor,
            Error::UnknownTopic(_) | Error::UnknownPartition { .. } => C::UnknownTopicOrPartition,
            Error::CorruptMetadata(_) => C::UnknownServerError,
            Error::ShuttingDown => C::BrokerShuttingDown,
            Error::OutOfOrderSequence { .. } => C::OutOfOrderSequenceNumber,
            Error::InvalidProducerEpoch { .. } => C::InvalidProducerEpoch,
            Error::NotLeader(_) => C::NotLeaderOrFollower,
            Error::NotEnoughReplicas { .. } => C::NotEnoughReplicas,
            Error::NotEnoughReplicasAfterAppend { .. } => C::NotEnoughReplicasAfterAppend,
        }
    }
}

//! The client's one error type.

use std::time::Duration;

use runnel_protocol::{BatchError, ErrorCode};

/// The client's result: [`Error`] unless said otherwise.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to a broker. [`Error::is_retriable`] says
/// whether trying again may help; [`Error::code`] gives the broker's error code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// No connection could be opened, or what answered is not a Runnel broker.
    #[error("cannot connect to broker at {addr}: {reason}")]
    Connect {
        /// The address tried.
        addr: String,
        /// Why it failed, for people.
        reason: String,
    },
    /// An open connection failed; requests in flight on it may or may not have been
    /// served.
    #[error("connection to broker at {addr} lost: {reason}")]
    Disconnected {
        /// The broker's address.
        addr: String,
        /// Why, for people.
        reason: String,
    },
    /// No response within the request timeout.
    #[error("no response from the broker within {0:?}")]
    Timeout(Duration),
    /// The broker answered with an error code.
    #[error("{}", server_message(*.code, .message))]
    Server {
        /// The broker's error code (Kafka's numbers).
        code: ErrorCode,
        /// The broker's explanation, possibly empty.
        message: String,
    },
    /// The broker sent something this client cannot make sense of.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A fetched batch failed its checks (length, CRC, decoding).
    #[error("invalid record batch from the broker: {0}")]
    Batch(#[from] BatchError),
    /// A record larger than the producer's `max_request_bytes`.
    #[error("record of {size} bytes exceeds max_request_bytes={max}")]
    RecordTooLarge {
        /// The record's encoded size.
        size: usize,
        /// The producer's limit.
        max: usize,
    },
    /// The producer's buffer stayed full for `max_block`.
    #[error("producer buffer full: no room freed within {0:?}")]
    BufferFull(Duration),
    /// A record sent to a partition the topic does not have.
    #[error("partition {partition} does not exist: topic {topic:?} has {count} partitions")]
    InvalidPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many partitions the topic has.
        count: u32,
    },
    /// The producer or consumer was closed.
    #[error("closed")]
    Closed,
    /// A call's arguments make no sense (said why).
    #[error("{0}")]
    InvalidArgument(String),
}

fn server_message(code: ErrorCode, message: &str) -> String {
    if message.is_empty() {
        code.name().to_owned()
    } else {
        format!("{message} ({code})")
    }
}

impl Error {
    /// An error from a response's `(error_code, error_message)`, or `Ok` for code 0.
    pub fn check(code: i32, message: &str) -> Result<()> {
        match ErrorCode::from_i32(code) {
            ErrorCode::None => Ok(()),
            code => Err(Error::Server {
                code,
                message: message.to_owned(),
            }),
        }
    }

    /// The broker's error code, if the broker sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether sending the same request again may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Server { code, .. } => code.is_retriable(),
            Error::Disconnected { .. } | Error::Timeout(_) | Error::Connect { .. } => true,
            _ => false,
        }
    }
}

//! The client's one error type.

use std::time::Duration;

use runnel_protocol::{BatchError, ErrorCode};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to broker at {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("connection to broker at {addr} lost: {reason}")]
    Disconnected { addr: String, reason: String },
    #[error("no response from the broker within {0:?}")]
    Timeout(Duration),
    /// The broker answered with an error code.
    #[error("{}", server_message(*.code, .message))]
    Server { code: ErrorCode, message: String },
    /// The broker sent something this client cannot make sense of.
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("invalid record batch from the broker: {0}")]
    Batch(#[from] BatchError),
    #[error("record of {size} bytes exceeds max_request_bytes={max}")]
    RecordTooLarge { size: usize, max: usize },
    #[error("producer buffer full: no room freed within {0:?}")]
    BufferFull(Duration),
    #[error("partition {partition} does not exist: topic {topic:?} has {count} partitions")]
    InvalidPartition { topic: String, partition: u32, count: u32 },
    #[error("closed")]
    Closed,
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

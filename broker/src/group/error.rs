//! The coordinator's error: what went wrong with a group request or one of its
//! partitions, as the code both protocols answer with (`ErrorCode`, Kafka's numbers) and
//! a message for people. Shared by the group shell and both protocols, so it depends on
//! neither.

use runnel_protocol::ErrorCode;

/// A request-level or per-partition group error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupError {
    pub code: ErrorCode,
    pub message: String,
}

impl GroupError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> GroupError {
        GroupError {
            code,
            message: message.into(),
        }
    }
}

pub type GroupResult<T> = std::result::Result<T, GroupError>;

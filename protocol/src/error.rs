//! The protocol crate's one error type.

/// What can be wrong with a record batch handed to us by a peer or read from a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch length {0} is below the minimum batch size")]
    LengthTooSmall(i32),
    #[error("unsupported record batch magic {0} (only magic 2 is supported)")]
    UnsupportedMagic(i8),
    #[error("batch CRC mismatch: header says {stored:#010x}, bytes give {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("batch is truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("unsupported compression codec {0}")]
    UnsupportedCompression(u8),
    #[error("invalid batch header: {0}")]
    InvalidHeader(&'static str),
    #[error("invalid record: {0}")]
    InvalidRecord(&'static str),
    #[error("{codec} decompression failed: {reason}")]
    Decompression { codec: &'static str, reason: String },
    #[error("{codec} compression failed: {reason}")]
    Compression { codec: &'static str, reason: String },
}

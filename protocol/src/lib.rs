//! `runnel-protocol`: what crosses the wire and lands on disk, shared by broker and client.
//!
//! This crate does no I/O. Codecs are pure functions over byte buffers; "need more
//! bytes" is an ordinary outcome ([`batch::check_batch`] returns `Ok(None)`), not an error.
//!
//! The native protocol: [`frame`] (length-prefixed frames), [`messages`] (protobuf bodies
//! from `proto/runnel.proto`, compiled at build time without a system `protoc`), [`api`]
//! (API keys and their request/response types) and [`ErrorCode`].
//!
//! The one batch format, on disk and on the wire, is Kafka's RecordBatch v2 (magic 2).
//! See [`batch`] for the byte layout.

pub mod api;
pub mod batch;
pub mod compression;
pub mod crc;
pub mod error;
pub mod error_code;
pub mod frame;
pub mod record;
pub mod varint;

/// The native protocol's messages, generated from `proto/runnel.proto` by prost.
#[allow(clippy::all, missing_docs)]
pub mod messages {
    include!(concat!(env!("OUT_DIR"), "/runnel.v1.rs"));
}

/// Records of the broker's internal offsets log, generated from `proto/group_log.proto`.
#[allow(clippy::all, missing_docs)]
pub mod group_log {
    include!(concat!(env!("OUT_DIR"), "/runnel.grouplog.rs"));
}

pub use batch::{check_batch, BatchHeader, RecordBatch, TimestampType};
/// The native listener's default address: loopback, so a fresh broker is not exposed.
pub const DEFAULT_BROKER_ADDR: &str = "127.0.0.1:7117";
/// The native listener's default port (an address given without one means this port).
pub const DEFAULT_BROKER_PORT: u16 = 7117;

pub use api::{ApiKey, Request, Response};
pub use compression::Compression;
pub use error::BatchError;
pub use error_code::ErrorCode;
pub use record::{BatchBuilder, BatchOptions, Header, Record};

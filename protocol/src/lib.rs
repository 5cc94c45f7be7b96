//! `runnel-protocol`: what crosses the wire and lands on disk, shared by broker and client.
//!
//! This crate does no I/O. Codecs are pure functions over byte buffers; "need more
//! bytes" is an ordinary outcome ([`batch::check_batch`] returns `Ok(None)`), not an error.
//!
//! The one batch format, on disk and on the wire, is Kafka's RecordBatch v2 (magic 2).
//! See [`batch`] for the byte layout.

pub mod batch;
pub mod compression;
pub mod crc;
pub mod error;
pub mod record;
pub mod varint;

pub use batch::{check_batch, BatchHeader, RecordBatch, TimestampType};
pub use compression::Compression;
pub use error::BatchError;
pub use record::{BatchBuilder, BatchOptions, Header, Record};

//! The storage engine: partitioned, segmented, crash-safe logs of RecordBatch v2 batches.
//!
//! - [`segment`]: one `.log` with its `.index` and `.timeindex`
//! - [`offset_index`], [`time_index`]: the memory-mapped sparse indexes
//! - [`log`]: a partition's log — append, read, durability, truncation, retention
//! - [`flusher`]: group-commit sync threads
//! - [`recovery`]: opening a log after a clean or unclean stop
//! - [`manager`]: the topic registry, its metadata log, and background maintenance
//! - [`io`]: every file operation storage makes, where a test can install a simulated
//!   disk ([`sim`]: power loss and disk faults)

pub mod config;
pub mod epochs;
pub mod flusher;
mod index_file;
pub mod io;
pub mod log;
pub mod manager;
mod metadata;
pub(crate) mod offset_index;
pub mod producers;
mod recovery;
pub mod segment;
pub mod sim;
pub(crate) mod time_index;

pub use config::{FlushPolicy, LogConfig, TimestampType};
pub use flusher::Flusher;
pub use log::{AppendInfo, DurableWait, PartitionLog, ReadResult, Role};
pub use manager::{LogManager, NewTopic, StorageConfig, Topic};
pub use segment::FileRegion;

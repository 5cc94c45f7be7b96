//! `runnel-broker`: the storage engine ([`storage`]) and the network server that puts it
//! behind the native protocol ([`server`]), and the consumer-group coordinator ([`group`]).

pub mod alloc_guard;
pub mod error;
pub mod group;
pub mod kafka;
pub mod metrics;
pub mod server;
pub mod storage;

pub use error::{Error, Result};

/// Every program linking the broker (the daemon, its tests, embedding tools) survives a
/// Kafka request that declares an absurd array length: see [`alloc_guard`].
#[global_allocator]
static ALLOCATOR: alloc_guard::GuardedAlloc = alloc_guard::GuardedAlloc;

//! `runnel-broker`: the broker as a library and the `runnel-broker` daemon. Layers, each
//! depending only on those below it (see `docs/architecture.md`):
//!
//! - [`server`]: binds the listeners and puts the layers together;
//! - [`native`] and [`kafka`]: the two wire protocols, translated to and from the service;
//! - [`service`]: what the broker does, protocol-neutral;
//! - [`net`]: the connection machinery both protocols share (no protocol types);
//! - [`group`], [`storage`], [`metrics`]: the group coordinator, the storage engine, the
//!   metrics registry.

pub mod alloc_guard;
pub mod cluster;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod group;
pub mod kafka;
pub mod metrics;
pub mod native;
pub mod net;
pub mod replication;
pub mod scram;
pub mod server;
pub mod service;
pub mod storage;
pub mod sync;
pub mod tls;

pub use error::{Error, Result};

/// Every program linking the broker (the daemon, its tests, embedding tools) survives a
/// Kafka request that declares an absurd array length: see [`alloc_guard`].
#[global_allocator]
static ALLOCATOR: alloc_guard::GuardedAlloc = alloc_guard::GuardedAlloc;

//! `runnel-broker`: the storage engine ([`storage`]) and the network server that puts it
//! behind the native protocol ([`server`]); the group coordinator comes next.

pub mod error;
pub mod server;
pub mod storage;

pub use error::{Error, Result};

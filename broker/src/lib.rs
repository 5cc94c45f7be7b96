//! `runnel-broker`: the storage engine ([`storage`]) and the network server that puts it
//! behind the native protocol ([`server`]), and the consumer-group coordinator ([`group`]).

pub mod error;
pub mod group;
pub mod kafka;
pub mod server;
pub mod storage;

pub use error::{Error, Result};

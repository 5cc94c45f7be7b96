//! `runnel-broker`: the storage engine (this crate's [`storage`] module) and, later, the
//! network server and group coordinator built on it.

pub mod error;
pub mod storage;

pub use error::{Error, Result};

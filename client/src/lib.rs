//! `runnel-client`: talk to a Runnel broker from a tokio service.
//!
//! - [`Producer`]: batching per partition (size and linger), bounded memory with
//!   backpressure, Kafka-compatible key partitioning, retries; `send` gives a future of
//!   the record's partition and offset.
//! - [`Consumer`]: assign partitions, seek (earliest, latest, offset, timestamp), read
//!   records as a `Stream`, with fetches pipelined ahead of the application.
//! - [`Consumer::subscribe`]: read as a member of a consumer group; the coordinator shares
//!   the partitions among the members and moves them incrementally; auto or manual
//!   commits, commit on revoke, `on_assigned`/`on_revoked` callbacks.
//! - [`Admin`]: create, delete, list and describe topics and groups (with lag); change
//!   topic configs; reset a stopped group's offsets.
//!
//! ```no_run
//! use futures::StreamExt;
//! use runnel_client::{Consumer, ConsumerConfig, Offset, Producer, ProducerConfig, ProducerRecord};
//!
//! # async fn run() -> Result<(), runnel_client::Error> {
//! let producer = Producer::connect("127.0.0.1:7117", ProducerConfig::default()).await?;
//! let delivery = producer.send(ProducerRecord::new("clicks", "hello").key("visitor-7")).await?;
//! let meta = delivery.await?;
//! println!("stored at partition {} offset {}", meta.partition, meta.offset);
//!
//! let mut consumer = Consumer::connect("127.0.0.1:7117", ConsumerConfig::default()).await?;
//! consumer.assign_topic("clicks").await?;
//! consumer.seek_all(Offset::Earliest).await?;
//! let mut records = consumer.stream();
//! while let Some(record) = records.next().await {
//!     let record = record?;
//!     println!("{}-{}@{}: {:?}", record.topic, record.partition, record.offset, record.value);
//! }
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod admin;
mod client;
mod connection;
mod consumer;
mod delivery;
mod error;
pub mod group;
pub mod partitioner;
mod producer;
mod sync;
mod tls;

pub use admin::{
    Admin, BrokerStatus, ClusterBroker, ClusterDescription, ConfigEntry, GroupCoordinator, GroupDescription,
    GroupListing, GroupMember, PartitionInfo, PartitionLag, TopicDescription, TopicListing, TopicStatus,
};
pub use client::{Client, ClientConfig};
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, Offset, OffsetReset};
pub use error::{Error, Result};
pub use group::{GroupConfig, TopicPartition};
pub use producer::{
    Acks, DeliveryFuture, Producer, ProducerConfig, ProducerRecord, RecordMetadata, MAX_IDEMPOTENT_IN_FLIGHT,
};
pub use runnel_protocol::{Compression, ErrorCode, Header, DEFAULT_BROKER_ADDR};
pub use tls::TlsConfig;

/// A partition as the producer and consumer key their state: the topic shared (`Arc`),
/// so keys clone without allocating. The public [`TopicPartition`] owns its name.
pub(crate) type PartitionKey = (std::sync::Arc<str>, u32);

/// The README's Rust snippets compile as doc tests of this crate.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme {}

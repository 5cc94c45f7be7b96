//! Per-topic log configuration. Keys are Kafka's topic config names where the meaning is
//! the same, plus `flush.policy` and `flush.ms` (Runnel's durability choice).
//!
//! | key                     | default         | bounds                    |
//! |-------------------------|-----------------|---------------------------|
//! | segment.bytes           | 1 GiB           | 14 ..= 2^31-1             |
//! | segment.ms              | 7 days          | >= 1                      |
//! | segment.index.bytes     | 10 MiB          | 8 ..= 2^31-1              |
//! | index.interval.bytes    | 4096            | >= 0                      |
//! | retention.ms            | 7 days          | -1 (forever) or >= 0      |
//! | retention.bytes         | -1 (unlimited)  | -1 or >= 0                |
//! | max.message.bytes       | 1048588         | 0 ..= 2^31-1              |
//! | message.timestamp.type  | CreateTime      | CreateTime, LogAppendTime |
//! | cleanup.policy          | delete          | delete (compact: not yet) |
//! | compression.type        | producer        | producer, uncompressed, gzip, snappy, lz4, zstd |
//! | flush.policy            | always          | always, interval, os      |
//! | flush.ms                | 1000            | >= 1                      |
//! | min.insync.replicas     | 1               | 1 ..= 2^31-1              |
//! | unclean.leader.election.enable | false    | true, false               |

use std::collections::BTreeMap;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Acknowledge only after `fdatasync`; concurrent appends share one sync.
    Always,
    /// Sync every `flush.ms` in the background; acknowledge after the write.
    Interval,
    /// Leave it to the OS page cache.
    Os,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// Kafka's `compression.type` topic config: keep the producer's codec, or store batches
/// in this one (the broker recompresses batches that arrive in another).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionType {
    Producer,
    Uncompressed,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl CompressionType {
    /// The codec batches must be stored in, `None` for whatever the producer sent.
    pub fn codec(self) -> Option<runnel_protocol::Compression> {
        use runnel_protocol::Compression as C;
        Some(match self {
            CompressionType::Producer => return None,
            CompressionType::Uncompressed => C::None,
            CompressionType::Gzip => C::Gzip,
            CompressionType::Snappy => C::Snappy,
            CompressionType::Lz4 => C::Lz4,
            CompressionType::Zstd => C::Zstd,
        })
    }

    fn name(self) -> &'static str {
        match self {
            CompressionType::Producer => "producer",
            CompressionType::Uncompressed => "uncompressed",
            CompressionType::Gzip => "gzip",
            CompressionType::Snappy => "snappy",
            CompressionType::Lz4 => "lz4",
            CompressionType::Zstd => "zstd",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub segment_index_bytes: u64,
    pub index_interval_bytes: u64,
    /// -1: keep forever.
    pub retention_ms: i64,
    /// -1: no size limit.
    pub retention_bytes: i64,
    pub max_message_bytes: u64,
    pub message_timestamp_type: TimestampType,
    pub compression_type: CompressionType,
    pub flush_policy: FlushPolicy,
    pub flush_ms: u64,
    /// acks=all writes are refused while the partition has fewer in-sync replicas.
    pub min_insync_replicas: u32,
    /// Whether a replica outside the ISR may lead when no in-sync one is live (acknowledged
    /// records may then be lost). Read by the controller from the topic's configs.
    pub unclean_leader_election: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            max_message_bytes: 1_048_588,
            message_timestamp_type: TimestampType::CreateTime,
            compression_type: CompressionType::Producer,
            flush_policy: FlushPolicy::Always,
            flush_ms: 1000,
            min_insync_replicas: 1,
            unclean_leader_election: false,
        }
    }
}

/// Every key a topic may set.
pub const TOPIC_CONFIG_KEYS: &[&str] = &[
    "segment.bytes",
    "segment.ms",
    "segment.index.bytes",
    "index.interval.bytes",
    "retention.ms",
    "retention.bytes",
    "max.message.bytes",
    "message.timestamp.type",
    "cleanup.policy",
    "compression.type",
    "flush.policy",
    "flush.ms",
    "min.insync.replicas",
    "unclean.leader.election.enable",
];

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> Error {
    Error::InvalidConfig {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.into(),
    }
}

fn int_in(key: &str, value: &str, min: i64, max: i64) -> Result<i64> {
    let v: i64 = value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, "not an integer"))?;
    if v < min || v > max {
        return Err(invalid(key, value, format!("must be between {min} and {max}")));
    }
    Ok(v)
}

impl LogConfig {
    /// Applies one `key=value`, validating it.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        const I32_MAX: i64 = i32::MAX as i64;
        match key {
            "segment.bytes" => self.segment_bytes = int_in(key, value, 14, I32_MAX)? as u64,
            "segment.ms" => self.segment_ms = int_in(key, value, 1, i64::MAX)?,
            "segment.index.bytes" => self.segment_index_bytes = int_in(key, value, 8, I32_MAX)? as u64,
            "index.interval.bytes" => self.index_interval_bytes = int_in(key, value, 0, I32_MAX)? as u64,
            "retention.ms" => self.retention_ms = int_in(key, value, -1, i64::MAX)?,
            "retention.bytes" => self.retention_bytes = int_in(key, value, -1, i64::MAX)?,
            "max.message.bytes" => self.max_message_bytes = int_in(key, value, 0, I32_MAX)? as u64,
            "message.timestamp.type" => {
                self.message_timestamp_type = match value {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => return Err(invalid(key, value, "must be CreateTime or LogAppendTime")),
                }
            }
            "cleanup.policy" => match value {
                "delete" => {}
                "compact" | "compact,delete" | "delete,compact" => {
                    return Err(invalid(key, value, "log compaction is not supported yet"))
                }
                _ => return Err(invalid(key, value, "must be delete")),
            },
            "compression.type" => {
                self.compression_type = match value {
                    "producer" => CompressionType::Producer,
                    "uncompressed" => CompressionType::Uncompressed,
                    "gzip" => CompressionType::Gzip,
                    "snappy" => CompressionType::Snappy,
                    "lz4" => CompressionType::Lz4,
                    "zstd" => CompressionType::Zstd,
                    _ => {
                        return Err(invalid(
                            key,
                            value,
                            "must be producer, uncompressed, gzip, snappy, lz4 or zstd",
                        ))
                    }
                }
            }
            "flush.policy" => {
                self.flush_policy = match value {
                    "always" => FlushPolicy::Always,
                    "interval" => FlushPolicy::Interval,
                    "os" => FlushPolicy::Os,
                    _ => return Err(invalid(key, value, "must be always, interval or os")),
                }
            }
            "flush.ms" => self.flush_ms = int_in(key, value, 1, i64::MAX)? as u64,
            "min.insync.replicas" => self.min_insync_replicas = int_in(key, value, 1, I32_MAX)? as u32,
            "unclean.leader.election.enable" => {
                self.unclean_leader_election = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(invalid(key, value, "must be true or false")),
                }
            }
            _ => {
                return Err(invalid(
                    key,
                    value,
                    format!("unknown topic config; known keys: {}", TOPIC_CONFIG_KEYS.join(", ")),
                ))
            }
        }
        Ok(())
    }

    /// `defaults` with `overrides` applied, each validated.
    pub fn with_overrides(defaults: &LogConfig, overrides: &BTreeMap<String, String>) -> Result<LogConfig> {
        let mut cfg = defaults.clone();
        for (k, v) in overrides {
            cfg.set(k, v)?;
        }
        Ok(cfg)
    }

    /// The value of `key` as Kafka would print it.
    pub fn get(&self, key: &str) -> Option<String> {
        Some(match key {
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "segment.index.bytes" => self.segment_index_bytes.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "message.timestamp.type" => match self.message_timestamp_type {
                TimestampType::CreateTime => "CreateTime".into(),
                TimestampType::LogAppendTime => "LogAppendTime".into(),
            },
            "cleanup.policy" => "delete".into(),
            "compression.type" => self.compression_type.name().into(),
            "flush.policy" => match self.flush_policy {
                FlushPolicy::Always => "always".into(),
                FlushPolicy::Interval => "interval".into(),
                FlushPolicy::Os => "os".into(),
            },
            "flush.ms" => self.flush_ms.to_string(),
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
            "unclean.leader.election.enable" => self.unclean_leader_election.to_string(),
            _ => return None,
        })
    }
}

/// The kind of a config's value, as Kafka's DescribeConfigs names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    Boolean,
    Int,
    Long,
    String,
    List,
}

/// What a topic config key is, for DescribeConfigs: the broker setting that gives its
/// default (Kafka's synonym), the kind of value, and its documentation.
#[derive(Debug, Clone, Copy)]
pub struct ConfigKeyInfo {
    pub broker_name: &'static str,
    pub kind: ConfigKind,
    pub doc: &'static str,
}

/// `key`'s [`ConfigKeyInfo`], `None` for an unknown key.
pub fn key_info(key: &str) -> Option<ConfigKeyInfo> {
    let (broker_name, kind, doc) = match key {
        "segment.bytes" => ("log.segment.bytes", ConfigKind::Int, "The segment file size: a segment rolls once it holds this many bytes."),
        "segment.ms" => ("log.roll.ms", ConfigKind::Long, "A segment rolls once its first and latest batch timestamps are this far apart, even if not full."),
        "segment.index.bytes" => ("log.index.size.max.bytes", ConfigKind::Int, "Size of each segment's preallocated offset and time index."),
        "index.interval.bytes" => ("log.index.interval.bytes", ConfigKind::Int, "An offset index entry is added every this many bytes of log."),
        "retention.ms" => ("log.retention.ms", ConfigKind::Long, "Whole segments older than this are deleted; -1 keeps them for ever."),
        "retention.bytes" => ("log.retention.bytes", ConfigKind::Long, "Old segments are deleted while a partition holds more than this; -1 for no limit."),
        "max.message.bytes" => ("message.max.bytes", ConfigKind::Int, "The largest record batch the broker accepts for this topic."),
        "message.timestamp.type" => ("log.message.timestamp.type", ConfigKind::String, "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with the broker's clock."),
        "cleanup.policy" => ("log.cleanup.policy", ConfigKind::List, "delete: old segments are deleted by retention (compaction is not supported yet)."),
        "compression.type" => ("compression.type", ConfigKind::String, "producer keeps the producer's codec; uncompressed, gzip, snappy, lz4 or zstd makes the broker recompress batches that arrive in another codec."),
        "flush.policy" => ("log.flush.policy", ConfigKind::String, "always acknowledges after fdatasync (group commit); interval syncs every flush.ms; os leaves it to the page cache."),
        "flush.ms" => ("log.flush.interval.ms", ConfigKind::Long, "With flush.policy=interval, how often the log is synced."),
        "min.insync.replicas" => ("min.insync.replicas", ConfigKind::Int, "acks=all writes are refused with NOT_ENOUGH_REPLICAS while fewer replicas than this are in sync."),
        "unclean.leader.election.enable" => ("unclean.leader.election.enable", ConfigKind::Boolean, "Whether a replica outside the ISR may become leader when no in-sync replica is live; acknowledged records may be lost."),
        _ => return None,
    };
    Some(ConfigKeyInfo { broker_name, kind, doc })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_info() {
        for key in TOPIC_CONFIG_KEYS {
            assert!(key_info(key).is_some(), "{key}");
        }
    }

    #[test]
    fn every_key_round_trips_through_get() {
        let defaults = LogConfig::default();
        for key in TOPIC_CONFIG_KEYS {
            let v = defaults.get(key).unwrap();
            let mut c = LogConfig::default();
            c.set(key, &v).unwrap();
            assert_eq!(c, defaults, "{key}");
        }
    }

    #[test]
    fn bad_values_are_named() {
        let mut c = LogConfig::default();
        let e = c.set("segment.bytes", "10").unwrap_err().to_string();
        assert!(e.contains("segment.bytes=10") && e.contains("between"), "{e}");
        assert!(c.set("flush.policy", "sometimes").is_err());
        assert!(c.set("retention.ms", "-2").is_err());
        assert!(c.set("retention.ms", "abc").is_err());
        assert!(c
            .set("cleanup.policy", "compact")
            .unwrap_err()
            .to_string()
            .contains("not supported"));
        assert!(c
            .set("no.such.key", "1")
            .unwrap_err()
            .to_string()
            .contains("unknown topic config"));
        c.set("flush.policy", "os").unwrap();
        assert_eq!(c.flush_policy, FlushPolicy::Os);
    }
}

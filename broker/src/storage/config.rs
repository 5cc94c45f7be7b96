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
//! | flush.policy            | always          | always, interval, os      |
//! | flush.ms                | 1000            | >= 1                      |

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
    pub flush_policy: FlushPolicy,
    pub flush_ms: u64,
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
            flush_policy: FlushPolicy::Always,
            flush_ms: 1000,
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
    "flush.policy",
    "flush.ms",
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
            "flush.policy" => {
                self.flush_policy = match value {
                    "always" => FlushPolicy::Always,
                    "interval" => FlushPolicy::Interval,
                    "os" => FlushPolicy::Os,
                    _ => return Err(invalid(key, value, "must be always, interval or os")),
                }
            }
            "flush.ms" => self.flush_ms = int_in(key, value, 1, i64::MAX)? as u64,
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
            "flush.policy" => match self.flush_policy {
                FlushPolicy::Always => "always".into(),
                FlushPolicy::Interval => "interval".into(),
                FlushPolicy::Os => "os".into(),
            },
            "flush.ms" => self.flush_ms.to_string(),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

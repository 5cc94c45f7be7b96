//! DescribeLogDirs: the one log directory (the data directory) with each partition's size
//! on disk, and (v4) the file system's total and usable bytes.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};

use super::{str_bytes, topic_name};
use crate::service::{topics, Broker};

pub const VERSIONS: RangeInclusive<i16> = 1..=4;

pub fn handle(broker: &Broker, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    // Null: every partition; else the ones asked for that this broker has.
    let wanted: Option<BTreeSet<(String, i32)>> = req.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t.topic.0.to_string(), *p)))
            .collect()
    });
    let topics = broker
        .storage
        .topics()
        .iter()
        .filter_map(|t| {
            let partitions: Vec<DescribeLogDirsPartition> = t
                .partitions
                .iter()
                .enumerate()
                .filter(|(p, _)| wanted.as_ref().is_none_or(|w| w.contains(&(t.name.clone(), *p as i32))))
                .map(|(p, log)| {
                    DescribeLogDirsPartition::default()
                        .with_partition_index(p as i32)
                        .with_partition_size(log.size_bytes() as i64)
                        .with_offset_lag(0)
                        .with_is_future_key(false)
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                DescribeLogDirsTopic::default()
                    .with_name(topic_name(&t.name))
                    .with_partitions(partitions)
            })
        })
        .collect();
    let dir = topics::data_dir(broker);
    let (total, usable) = match nix::sys::statvfs::statvfs(dir) {
        Ok(s) => (
            (s.blocks() as i64).saturating_mul(s.fragment_size() as i64),
            (s.blocks_available() as i64).saturating_mul(s.fragment_size() as i64),
        ),
        Err(_) => (-1, -1),
    };
    let path = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(&path.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable)])
}

//! One file per API. Each declares the versions it supports (`VERSIONS`) and turns a
//! decoded request into a response; per-topic and per-partition failures become error
//! codes in the response, never a dropped connection.

pub mod alter_configs;
pub mod api_versions;
pub mod broker_status;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_configs;
pub mod describe_groups;
pub mod fetch;
pub mod find_coordinator;
pub mod init_producer_id;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_fetch;
pub mod produce;

use std::collections::BTreeSet;

use std::ops::RangeInclusive;

use runnel_protocol::messages::TopicPartitions;
use runnel_protocol::ApiKey;

use crate::error::Error;

/// The versions of `key` this broker serves.
pub fn versions(key: ApiKey) -> RangeInclusive<i16> {
    match key {
        ApiKey::Produce => produce::VERSIONS,
        ApiKey::Fetch => fetch::VERSIONS,
        ApiKey::ListOffsets => list_offsets::VERSIONS,
        ApiKey::Metadata => metadata::VERSIONS,
        ApiKey::ApiVersions => api_versions::VERSIONS,
        ApiKey::CreateTopics => create_topics::VERSIONS,
        ApiKey::DeleteTopics => delete_topics::VERSIONS,
        ApiKey::DescribeConfigs => describe_configs::VERSIONS,
        ApiKey::AlterConfigs => alter_configs::VERSIONS,
        ApiKey::OffsetCommit => offset_commit::VERSIONS,
        ApiKey::OffsetFetch => offset_fetch::VERSIONS,
        ApiKey::FindCoordinator => find_coordinator::VERSIONS,
        ApiKey::DescribeGroups => describe_groups::VERSIONS,
        ApiKey::ListGroups => list_groups::VERSIONS,
        ApiKey::DeleteGroups => delete_groups::VERSIONS,
        ApiKey::ConsumerGroupHeartbeat => consumer_group_heartbeat::VERSIONS,
        ApiKey::CreatePartitions => create_partitions::VERSIONS,
        ApiKey::InitProducerId => init_producer_id::VERSIONS,
        ApiKey::DeleteRecords => delete_records::VERSIONS,
        ApiKey::BrokerStatus => broker_status::VERSIONS,
    }
}

/// An error as (code, message) for a response field.
pub(crate) fn code_and_message(e: &Error) -> (i32, String) {
    (e.code().code(), e.to_string())
}

/// Runs blocking storage work (topic changes sync the metadata log) off the runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> crate::Result<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or(Err(Error::ShuttingDown))
}

/// Partitions grouped by topic, for a response.
pub(crate) fn to_topic_partitions(set: &BTreeSet<crate::group::Tp>) -> Vec<TopicPartitions> {
    TopicPartitions::group(set.iter().map(|(t, p)| (t.as_str(), *p)))
}

pub(crate) fn from_topic_partitions(list: Vec<TopicPartitions>) -> BTreeSet<crate::group::Tp> {
    TopicPartitions::flatten(list).collect()
}

pub(crate) fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

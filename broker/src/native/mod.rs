//! The native protocol: frames with protobuf bodies (`runnel-protocol`), translated to
//! and from the service layer. [`dispatch`] checks a request's API key and version,
//! decodes its body and runs its handler under the request timeout; then one file per
//! API, each declaring the versions it serves (`VERSIONS`) and turning a decoded request
//! into a response. Per-topic and per-partition failures become error codes in the
//! response, never a dropped connection.

pub mod alter_configs;
pub mod api_versions;
pub mod broker_status;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod dispatch;
pub mod fetch;
pub mod find_coordinator;
pub mod init_producer_id;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use runnel_protocol::messages::{TopicPartitions, TopicResult};
use runnel_protocol::ApiKey;

use crate::service::Outcome;

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
        ApiKey::DescribeCluster => describe_cluster::VERSIONS,
        ApiKey::Raft | ApiKey::ControllerWrite | ApiKey::OffsetForLeaderEpoch => 0..=0,
    }
}

pub(crate) use crate::service::{blocking, code_and_message};

/// A service outcome as a response's `(error_code, error_message)`: `(0, "")` on success.
pub(crate) fn error_fields<T>(outcome: Outcome<T>) -> (i32, String) {
    outcome.err().map(|f| (f.code.code(), f.message)).unwrap_or_default()
}

/// One result per topic name, from the service's outcomes in the same order.
pub(crate) fn topic_results(names: Vec<String>, outcomes: Vec<Outcome<()>>) -> Vec<TopicResult> {
    names
        .into_iter()
        .zip(outcomes)
        .map(|(name, r)| {
            let (error_code, error_message) = error_fields(r);
            TopicResult {
                name,
                error_code,
                error_message,
            }
        })
        .collect()
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

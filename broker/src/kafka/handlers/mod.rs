//! One file per Kafka API. Each declares the versions it serves (`VERSIONS`, advertised
//! by ApiVersions exactly) and maps the request onto the broker's storage and native
//! handlers; per-topic and per-partition failures are error codes in the response.

pub mod alter_configs;
pub mod alter_user_scram_credentials;
pub mod api_versions;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_user_scram_credentials;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod produce;
pub mod sasl_authenticate;
pub mod sasl_handshake;
pub mod sync_group;

use std::ops::RangeInclusive;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{decode, respond, Request};
use crate::net::order::ApplyOrder;
use crate::net::reply::Reply;
use crate::service::Broker;

/// The APIs this listener serves, with their version ranges.
pub const SERVED: [(ApiKey, RangeInclusive<i16>); 31] = [
    (ApiKey::Produce, produce::VERSIONS),
    (ApiKey::Fetch, fetch::VERSIONS),
    (ApiKey::ListOffsets, list_offsets::VERSIONS),
    (ApiKey::Metadata, metadata::VERSIONS),
    (ApiKey::ApiVersions, api_versions::VERSIONS),
    (ApiKey::CreateTopics, create_topics::VERSIONS),
    (ApiKey::DeleteTopics, delete_topics::VERSIONS),
    (ApiKey::DescribeConfigs, describe_configs::VERSIONS),
    (ApiKey::FindCoordinator, find_coordinator::VERSIONS),
    (ApiKey::OffsetCommit, offset_commit::VERSIONS),
    (ApiKey::OffsetFetch, offset_fetch::VERSIONS),
    (ApiKey::InitProducerId, init_producer_id::VERSIONS),
    (ApiKey::JoinGroup, join_group::VERSIONS),
    (ApiKey::SyncGroup, sync_group::VERSIONS),
    (ApiKey::Heartbeat, heartbeat::VERSIONS),
    (ApiKey::LeaveGroup, leave_group::VERSIONS),
    (ApiKey::ListGroups, list_groups::VERSIONS),
    (ApiKey::DescribeGroups, describe_groups::VERSIONS),
    (ApiKey::DeleteGroups, delete_groups::VERSIONS),
    (ApiKey::OffsetDelete, offset_delete::VERSIONS),
    (ApiKey::ConsumerGroupHeartbeat, consumer_group_heartbeat::VERSIONS),
    (ApiKey::CreatePartitions, create_partitions::VERSIONS),
    (ApiKey::AlterConfigs, alter_configs::VERSIONS),
    (ApiKey::IncrementalAlterConfigs, incremental_alter_configs::VERSIONS),
    (ApiKey::DeleteRecords, delete_records::VERSIONS),
    (ApiKey::DescribeLogDirs, describe_log_dirs::VERSIONS),
    (ApiKey::DescribeCluster, describe_cluster::VERSIONS),
    (ApiKey::SaslHandshake, sasl_handshake::VERSIONS),
    (ApiKey::SaslAuthenticate, sasl_authenticate::VERSIONS),
    (
        ApiKey::DescribeUserScramCredentials,
        describe_user_scram_credentials::VERSIONS,
    ),
    (
        ApiKey::AlterUserScramCredentials,
        alter_user_scram_credentials::VERSIONS,
    ),
];

/// The versions of `key` served, `None` if the API is not.
pub fn versions(key: ApiKey) -> Option<RangeInclusive<i16>> {
    SERVED.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone())
}

pub(crate) async fn handle(
    broker: &Arc<Broker>,
    req: Request,
    body: Bytes,
    order: Option<ApplyOrder>,
) -> Option<Reply> {
    serve(broker, req, body, order).await.unwrap_or_else(Some)
}

/// `Err`: the request could not be decoded; the reply closes the connection.
///
/// Every request has its turn in the connection's order (`ApplyOrder`), as Kafka serves a
/// connection's requests one at a time: the ones that change state and then wait (for
/// durability, other members, a rebalance) take their turn around the change only;
/// Fetch waits for its predecessor but holds no one up while it long-polls; every other
/// request holds its turn until it is answered.
async fn serve(
    broker: &Arc<Broker>,
    req: Request,
    body: Bytes,
    order: Option<ApplyOrder>,
) -> Result<Option<Reply>, Reply> {
    let (order, _turn) = match req.key {
        ApiKey::Produce
        | ApiKey::OffsetCommit
        | ApiKey::JoinGroup
        | ApiKey::SyncGroup
        | ApiKey::LeaveGroup
        | ApiKey::ConsumerGroupHeartbeat => (order, None),
        ApiKey::Fetch => {
            drop(after_predecessor(order).await);
            (None, None)
        }
        _ => (None, after_predecessor(order).await),
    };
    Ok(match req.key {
        ApiKey::ApiVersions => respond(&req, &api_versions::handle(&decode(&req, body)?)),
        ApiKey::Metadata => respond(&req, &metadata::handle(broker, &req, decode(&req, body)?).await),
        ApiKey::CreateTopics => respond(
            &req,
            &create_topics::handle(broker, req.version, decode(&req, body)?).await,
        ),
        ApiKey::DeleteTopics => respond(
            &req,
            &delete_topics::handle(broker, req.version, decode(&req, body)?).await,
        ),
        ApiKey::DescribeConfigs => respond(&req, &describe_configs::handle(broker, decode(&req, body)?)),
        ApiKey::FindCoordinator => respond(
            &req,
            &find_coordinator::handle(broker, req.version, decode(&req, body)?).await,
        ),
        ApiKey::OffsetCommit => respond(&req, &offset_commit::handle(broker, decode(&req, body)?, order).await),
        ApiKey::OffsetFetch => respond(
            &req,
            &offset_fetch::handle(broker, req.version, decode(&req, body)?).await,
        ),
        ApiKey::InitProducerId => respond(&req, &init_producer_id::handle(broker, decode(&req, body)?)),
        ApiKey::ListOffsets => respond(
            &req,
            &list_offsets::handle(broker, req.version, decode(&req, body)?).await,
        ),
        ApiKey::JoinGroup => respond(
            &req,
            &join_group::handle(broker, &req, decode(&req, body)?, order).await,
        ),
        ApiKey::SyncGroup => respond(
            &req,
            &sync_group::handle(broker, req.version, decode(&req, body)?, order).await,
        ),
        ApiKey::Heartbeat => respond(&req, &heartbeat::handle(broker, decode(&req, body)?)),
        ApiKey::LeaveGroup => respond(
            &req,
            &leave_group::handle(broker, req.version, decode(&req, body)?, order).await,
        ),
        ApiKey::ListGroups => respond(&req, &list_groups::handle(broker, req.version, decode(&req, body)?)),
        ApiKey::DescribeGroups => respond(&req, &describe_groups::handle(broker, decode(&req, body)?)),
        ApiKey::DeleteGroups => respond(&req, &delete_groups::handle(broker, decode(&req, body)?).await),
        ApiKey::OffsetDelete => respond(&req, &offset_delete::handle(broker, decode(&req, body)?).await),
        ApiKey::ConsumerGroupHeartbeat => respond(
            &req,
            &consumer_group_heartbeat::handle(broker, decode(&req, body)?, order).await,
        ),
        ApiKey::CreatePartitions => respond(&req, &create_partitions::handle(broker, decode(&req, body)?).await),
        ApiKey::AlterConfigs => respond(&req, &alter_configs::handle(broker, decode(&req, body)?).await),
        ApiKey::IncrementalAlterConfigs => respond(
            &req,
            &incremental_alter_configs::handle(broker, decode(&req, body)?).await,
        ),
        ApiKey::DeleteRecords => respond(&req, &delete_records::handle(broker, decode(&req, body)?).await),
        ApiKey::DescribeLogDirs => respond(&req, &describe_log_dirs::handle(broker, decode(&req, body)?)),
        ApiKey::DescribeCluster => respond(&req, &describe_cluster::handle(broker, decode(&req, body)?)),
        ApiKey::SaslHandshake => respond(&req, &sasl_handshake::handle(&req, decode(&req, body)?)),
        ApiKey::SaslAuthenticate => sasl_authenticate::handle(broker, &req, decode(&req, body)?).await,
        ApiKey::DescribeUserScramCredentials => respond(
            &req,
            &describe_user_scram_credentials::handle(broker, decode(&req, body)?),
        ),
        ApiKey::AlterUserScramCredentials => respond(
            &req,
            &alter_user_scram_credentials::handle(broker, decode(&req, body)?).await,
        ),
        ApiKey::Produce => produce::handle(broker, &req, body, order).await?,
        ApiKey::Fetch => fetch::handle(broker, &req, decode(&req, body)?).await,
        _ => None,
    })
}

pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

pub fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

/// A static member's instance id (absent or empty: a dynamic member).
pub fn instance_id(id: &Option<StrBytes>) -> Option<String> {
    id.as_ref().map(|i| i.to_string()).filter(|i| !i.is_empty())
}

/// Waits for an answer the coordinator gives once other members have acted (JoinGroup,
/// SyncGroup). Not service time: it counts as a wait in the request's record.
pub(crate) use crate::net::order::{after_predecessor, in_turn};

pub async fn group_answer<T>(
    broker: &Broker,
    answer: tokio::sync::oneshot::Receiver<crate::group::GroupResult<T>>,
) -> crate::group::GroupResult<T> {
    use crate::group::error::GroupErrorKind::CoordinatorNotAvailable;
    use crate::group::GroupError;
    crate::metrics::waiting(async {
        tokio::select! {
            r = answer => r.unwrap_or_else(|_| Err(GroupError::new(CoordinatorNotAvailable, "the coordinator dropped the request"))),
            _ = broker.shutting_down() => Err(GroupError::new(CoordinatorNotAvailable, "the broker is stopping")),
        }
    })
    .await
}

/// A coordinator error as a Kafka error code.
pub fn group_error(e: &crate::group::GroupError) -> i16 {
    kafka_code(runnel_protocol::ErrorCode::from(e.kind).code())
}

/// Kafka's error codes are ours (`ErrorCode` uses Kafka's numbers). Every error code
/// passed through here is counted for the request's metrics.
pub fn kafka_code(code: i32) -> i16 {
    crate::metrics::note_error_code(code);
    code as i16
}

//! API keys, and which request and response messages each one carries.

use crate::messages::*;

/// The native protocol's API keys (Kafka's numbers for the same APIs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum ApiKey {
    Produce = 0,
    Fetch = 1,
    ListOffsets = 2,
    Metadata = 3,
    ApiVersions = 18,
    CreateTopics = 19,
    DeleteTopics = 20,
    DescribeConfigs = 32,
    AlterConfigs = 44,
    OffsetCommit = 8,
    OffsetFetch = 9,
    FindCoordinator = 10,
    DescribeGroups = 15,
    ListGroups = 16,
    DeleteGroups = 42,
    ConsumerGroupHeartbeat = 68,
    CreatePartitions = 37,
    InitProducerId = 22,
    DeleteRecords = 21,
    /// Runnel's own (no Kafka counterpart): `runnel status`.
    BrokerStatus = 1000,
    DescribeCluster = 60,
    /// Between controller voters: the metadata quorum's Raft messages.
    Raft = 1001,
    /// From a broker to the controller: registration, heartbeats, topic changes.
    ControllerWrite = 1002,
    /// From a follower to its partition's leader: where an epoch ends (Kafka's key).
    OffsetForLeaderEpoch = 23,
}

impl ApiKey {
    pub const ALL: &'static [ApiKey] = &[
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::Metadata,
        ApiKey::ApiVersions,
        ApiKey::CreateTopics,
        ApiKey::DeleteTopics,
        ApiKey::DescribeConfigs,
        ApiKey::AlterConfigs,
        ApiKey::OffsetCommit,
        ApiKey::OffsetFetch,
        ApiKey::FindCoordinator,
        ApiKey::DescribeGroups,
        ApiKey::ListGroups,
        ApiKey::DeleteGroups,
        ApiKey::ConsumerGroupHeartbeat,
        ApiKey::CreatePartitions,
        ApiKey::InitProducerId,
        ApiKey::DeleteRecords,
        ApiKey::BrokerStatus,
        ApiKey::DescribeCluster,
        ApiKey::Raft,
        ApiKey::ControllerWrite,
        ApiKey::OffsetForLeaderEpoch,
    ];

    pub fn from_i16(key: i16) -> Option<ApiKey> {
        ApiKey::ALL.iter().copied().find(|k| *k as i16 == key)
    }

    pub fn name(self) -> &'static str {
        match self {
            ApiKey::Produce => "Produce",
            ApiKey::Fetch => "Fetch",
            ApiKey::ListOffsets => "ListOffsets",
            ApiKey::Metadata => "Metadata",
            ApiKey::ApiVersions => "ApiVersions",
            ApiKey::CreateTopics => "CreateTopics",
            ApiKey::DeleteTopics => "DeleteTopics",
            ApiKey::DescribeConfigs => "DescribeConfigs",
            ApiKey::AlterConfigs => "AlterConfigs",
            ApiKey::OffsetCommit => "OffsetCommit",
            ApiKey::OffsetFetch => "OffsetFetch",
            ApiKey::FindCoordinator => "FindCoordinator",
            ApiKey::DescribeGroups => "DescribeGroups",
            ApiKey::ListGroups => "ListGroups",
            ApiKey::DeleteGroups => "DeleteGroups",
            ApiKey::ConsumerGroupHeartbeat => "ConsumerGroupHeartbeat",
            ApiKey::CreatePartitions => "CreatePartitions",
            ApiKey::InitProducerId => "InitProducerId",
            ApiKey::DeleteRecords => "DeleteRecords",
            ApiKey::BrokerStatus => "BrokerStatus",
            ApiKey::DescribeCluster => "DescribeCluster",
            ApiKey::Raft => "Raft",
            ApiKey::ControllerWrite => "ControllerWrite",
            ApiKey::OffsetForLeaderEpoch => "OffsetForLeaderEpoch",
        }
    }
}

/// A request body type: its API key, the version this crate speaks, its response type.
pub trait Request: prost::Message + Default {
    const KEY: ApiKey;
    const VERSION: i16 = 0;
    type Response: Response;
}

/// A response body type. Every response reserves fields 1 and 2 for a request-level
/// error, so an [`ErrorResponse`] decodes as any of them.
pub trait Response: prost::Message + Default {
    fn error_code(&self) -> i32;
    fn error_message(&self) -> &str;
    fn with_error(code: crate::ErrorCode, message: String) -> Self;
}

macro_rules! api {
    ($($key:ident: $req:ident => $resp:ident;)*) => {$(
        impl Request for $req {
            const KEY: ApiKey = ApiKey::$key;
            type Response = $resp;
        }
        impl Response for $resp {
            fn error_code(&self) -> i32 {
                self.error_code
            }
            fn error_message(&self) -> &str {
                &self.error_message
            }
            fn with_error(code: crate::ErrorCode, message: String) -> Self {
                $resp { error_code: code.code(), error_message: message, ..Default::default() }
            }
        }
    )*};
}

api! {
    Produce: ProduceRequest => ProduceResponse;
    Fetch: FetchRequest => FetchResponse;
    ListOffsets: ListOffsetsRequest => ListOffsetsResponse;
    Metadata: MetadataRequest => MetadataResponse;
    ApiVersions: ApiVersionsRequest => ApiVersionsResponse;
    CreateTopics: CreateTopicsRequest => CreateTopicsResponse;
    DeleteTopics: DeleteTopicsRequest => DeleteTopicsResponse;
    DescribeConfigs: DescribeConfigsRequest => DescribeConfigsResponse;
    AlterConfigs: AlterConfigsRequest => AlterConfigsResponse;
    OffsetCommit: OffsetCommitRequest => OffsetCommitResponse;
    OffsetFetch: OffsetFetchRequest => OffsetFetchResponse;
    FindCoordinator: FindCoordinatorRequest => FindCoordinatorResponse;
    DescribeGroups: DescribeGroupsRequest => DescribeGroupsResponse;
    ListGroups: ListGroupsRequest => ListGroupsResponse;
    DeleteGroups: DeleteGroupsRequest => DeleteGroupsResponse;
    ConsumerGroupHeartbeat: ConsumerGroupHeartbeatRequest => ConsumerGroupHeartbeatResponse;
    CreatePartitions: CreatePartitionsRequest => CreatePartitionsResponse;
    InitProducerId: InitProducerIdRequest => InitProducerIdResponse;
    DeleteRecords: DeleteRecordsRequest => DeleteRecordsResponse;
    BrokerStatus: BrokerStatusRequest => BrokerStatusResponse;
    DescribeCluster: DescribeClusterRequest => DescribeClusterResponse;
    Raft: RaftRequest => RaftResponse;
    ControllerWrite: ControllerWriteRequest => ControllerWriteResponse;
    OffsetForLeaderEpoch: OffsetForLeaderEpochRequest => OffsetForLeaderEpochResponse;
}

impl TopicPartitions {
    /// Groups (topic, partition) pairs by topic, keeping their order (sorted input gives
    /// one entry per topic).
    pub fn group<'a>(pairs: impl IntoIterator<Item = (&'a str, u32)>) -> Vec<TopicPartitions> {
        let mut out: Vec<TopicPartitions> = Vec::new();
        for (topic, partition) in pairs {
            match out.last_mut() {
                Some(t) if t.topic == topic => t.partitions.push(partition),
                _ => out.push(TopicPartitions {
                    topic: topic.to_owned(),
                    partitions: vec![partition],
                }),
            }
        }
        out
    }

    /// The (topic, partition) pairs of a list.
    pub fn flatten(list: Vec<TopicPartitions>) -> impl Iterator<Item = (String, u32)> {
        list.into_iter()
            .flat_map(|t| t.partitions.into_iter().map(move |p| (t.topic.clone(), p)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn an_error_response_decodes_as_every_response() {
        let e = ErrorResponse {
            error_code: crate::ErrorCode::UnknownApi.code(),
            error_message: "no such api".into(),
        }
        .encode_to_vec();
        fn check<R: Response>(bytes: &[u8]) {
            let r = R::decode(bytes).unwrap();
            assert_eq!(r.error_code(), crate::ErrorCode::UnknownApi.code());
            assert_eq!(r.error_message(), "no such api");
        }
        check::<ProduceResponse>(&e);
        check::<FetchResponse>(&e);
        check::<ListOffsetsResponse>(&e);
        check::<MetadataResponse>(&e);
        check::<ApiVersionsResponse>(&e);
        check::<CreateTopicsResponse>(&e);
        check::<DeleteTopicsResponse>(&e);
        check::<DescribeConfigsResponse>(&e);
        check::<AlterConfigsResponse>(&e);
        check::<OffsetCommitResponse>(&e);
        check::<OffsetFetchResponse>(&e);
        check::<FindCoordinatorResponse>(&e);
        check::<DescribeGroupsResponse>(&e);
        check::<ListGroupsResponse>(&e);
        check::<DeleteGroupsResponse>(&e);
        check::<ConsumerGroupHeartbeatResponse>(&e);
        check::<DeleteRecordsResponse>(&e);
    }
}

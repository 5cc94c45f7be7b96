//! Kafka admin behaviours that clients and tools rely on, driven byte for byte: topic
//! auto-creation on Metadata, CreateTopics defaults (KIP-464), replica assignments,
//! `validate_only` and configs in the response, Kafka's error codes for illegal names
//! and unknown partitions, and DescribeConfigs for topics and the broker.

mod common;

use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use runnel_broker::server::ServerConfig;

use common::kafka::{name, Kafka};
use common::wire::{TestServer, Wire};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC: i16 = 17;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;

fn start_with(cfg: ServerConfig) -> (tempfile::TempDir, TestServer, Kafka) {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(
        dir.path(),
        ServerConfig {
            kafka_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..cfg
        },
    );
    let k = Kafka::connect(s.kafka_addr.unwrap());
    (dir, s, k)
}

fn metadata(k: &mut Kafka, version: i16, topics: &[&str], allow: bool) -> MetadataResponse {
    let mut req = MetadataRequest::default().with_topics(Some(
        topics
            .iter()
            .map(|t| MetadataRequestTopic::default().with_name(Some(name(t))))
            .collect(),
    ));
    if version >= 4 {
        req = req.with_allow_auto_topic_creation(allow);
    }
    k.call(ApiKey::Metadata, version, &req)
}

fn code_of(resp: &MetadataResponse, topic: &str) -> (i16, usize) {
    let t = resp
        .topics
        .iter()
        .find(|t| t.name == Some(name(topic)))
        .unwrap_or_else(|| panic!("{topic} not in the response"));
    (t.error_code, t.partitions.len())
}

#[test]
fn metadata_creates_missing_topics_when_allowed_and_never_illegal_ones() {
    let (_dir, s, mut k) = start_with(ServerConfig {
        num_partitions: 3,
        ..ServerConfig::default()
    });
    let long = "x".repeat(250);
    let illegal = ["a$#!", ".", "..", long.as_str()];
    let mut asked = vec!["auto-a", "__reserved"];
    asked.extend(illegal);
    let resp = metadata(&mut k, 12, &asked, true);
    assert_eq!(code_of(&resp, "auto-a"), (0, 3), "created with num.partitions");
    assert_eq!(code_of(&resp, "__reserved").0, INVALID_TOPIC);
    for bad in illegal {
        assert_eq!(code_of(&resp, bad).0, INVALID_TOPIC, "{bad}");
    }
    // Not allowed by the request: unknown, and still unknown after.
    let resp = metadata(&mut k, 12, &["auto-b"], false);
    assert_eq!(code_of(&resp, "auto-b").0, UNKNOWN_TOPIC_OR_PARTITION);
    // Before v4 a Metadata request always allows it.
    let resp = metadata(&mut k, 3, &["auto-c"], true);
    assert_eq!(code_of(&resp, "auto-c"), (0, 3));
    let mut names: Vec<String> = s.storage.topics().iter().map(|t| t.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["auto-a", "auto-c"]);
}

#[test]
fn auto_creation_off_or_impossible_creates_nothing() {
    let (_dir, s, mut k) = start_with(ServerConfig {
        auto_create_topics_enable: false,
        ..ServerConfig::default()
    });
    let resp = metadata(&mut k, 12, &["nope"], true);
    assert_eq!(code_of(&resp, "nope").0, UNKNOWN_TOPIC_OR_PARTITION);
    assert!(s.storage.topics().is_empty());

    let (_dir, s, mut k) = start_with(ServerConfig {
        default_replication_factor: 2,
        ..ServerConfig::default()
    });
    let resp = metadata(&mut k, 12, &["two-replicas"], true);
    assert_eq!(code_of(&resp, "two-replicas").0, INVALID_REPLICATION_FACTOR);
    assert!(s.storage.topics().is_empty());
}

fn creatable(topic: &str, partitions: i32, replicas: i16) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(replicas)
}

fn assigned(topic: &str, brokers: &[&[i32]]) -> CreatableTopic {
    creatable(topic, -1, -1).with_assignments(
        brokers
            .iter()
            .enumerate()
            .map(|(p, b)| {
                CreatableReplicaAssignment::default()
                    .with_partition_index(p as i32)
                    .with_broker_ids(b.iter().map(|id| BrokerId(*id)).collect())
            })
            .collect(),
    )
}

#[test]
fn create_topics_takes_defaults_assignments_and_answers_with_configs() {
    let (_dir, s, mut k) = start_with(ServerConfig {
        num_partitions: 4,
        ..ServerConfig::default()
    });
    let req = CreateTopicsRequest::default().with_timeout_ms(5_000).with_topics(vec![
        creatable("defaults", -1, -1),
        creatable("explicit", 2, 1).with_configs(vec![CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str("retention.ms"))
            .with_value(Some(StrBytes::from_static_str("60000")))]),
        assigned("by-assignment", &[&[0], &[0], &[0]]),
        assigned("elsewhere", &[&[0], &[7]]),
        assigned("both", &[&[0]]).with_num_partitions(1),
        creatable("three-replicas", 1, 3),
        creatable("a$#!", 1, 1),
        creatable("bad-config", 1, 1).with_configs(vec![CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str("retention.ms"))
            .with_value(Some(StrBytes::from_static_str("soon")))]),
    ]);
    let resp: CreateTopicsResponse = k.call(ApiKey::CreateTopics, 7, &req);
    let by_name = |n: &str| resp.topics.iter().find(|t| t.name == name(n)).unwrap();
    for (topic, code) in [
        ("defaults", 0),
        ("explicit", 0),
        ("by-assignment", 0),
        ("elsewhere", INVALID_REPLICA_ASSIGNMENT),
        ("both", INVALID_REQUEST),
        ("three-replicas", INVALID_REPLICATION_FACTOR),
        ("a$#!", INVALID_TOPIC),
        ("bad-config", INVALID_CONFIG),
    ] {
        let t = by_name(topic);
        assert_eq!(t.error_code, code, "{topic}: {:?}", t.error_message);
    }
    assert_eq!(by_name("defaults").num_partitions, 4);
    assert_eq!(by_name("defaults").replication_factor, 1);
    assert_eq!(by_name("by-assignment").num_partitions, 3);
    let explicit = by_name("explicit");
    assert_eq!(explicit.num_partitions, 2);
    assert!(!explicit.topic_id.is_nil());
    let configs = explicit.configs.as_ref().expect("v5+: configs");
    let retention = configs.iter().find(|c| c.name.as_str() == "retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("60000"));
    assert_eq!(retention.config_source, 1, "TOPIC_CONFIG");
    let segment = configs.iter().find(|c| c.name.as_str() == "segment.bytes").unwrap();
    assert_eq!(segment.config_source, 5, "DEFAULT_CONFIG");
    assert_eq!(s.storage.topic("defaults").unwrap().partitions.len(), 4);
    assert_eq!(s.storage.topic("by-assignment").unwrap().partitions.len(), 3);
    for refused in ["elsewhere", "both", "three-replicas", "bad-config"] {
        assert!(s.storage.topic(refused).is_none(), "{refused}");
    }

    // validate_only: the same checks, nothing created.
    let req = CreateTopicsRequest::default()
        .with_validate_only(true)
        .with_topics(vec![creatable("checked", 2, 1), creatable("explicit", 1, 1)]);
    let resp: CreateTopicsResponse = k.call(ApiKey::CreateTopics, 7, &req);
    assert_eq!(resp.topics[0].error_code, 0);
    assert_eq!(resp.topics[0].num_partitions, 2);
    assert_eq!(resp.topics[1].error_code, 36, "TOPIC_ALREADY_EXISTS");
    assert!(s.storage.topic("checked").is_none());
}

#[test]
fn offsets_for_missing_topics_or_partitions_are_refused() {
    let (_dir, s, mut k) = start_with(ServerConfig::default());
    Wire::connect(s.addr).create_topic("t", 2, &[]);
    let partition = |p: i32| {
        OffsetCommitRequestPartition::default()
            .with_partition_index(p)
            .with_committed_offset(5)
    };
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![partition(1), partition(2)]),
            OffsetCommitRequestTopic::default()
                .with_name(name("missing"))
                .with_partitions(vec![partition(0)]),
        ]);
    let resp: OffsetCommitResponse = k.call(ApiKey::OffsetCommit, 8, &req);
    let codes: Vec<(String, i32, i16)> = resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.partition_index, p.error_code))
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("t".to_string(), 1, 0),
            ("t".to_string(), 2, UNKNOWN_TOPIC_OR_PARTITION),
            ("missing".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION)
        ]
    );
}

#[test]
fn describe_configs_gives_sources_synonyms_documentation_and_the_broker() {
    let (_dir, s, mut k) = start_with(ServerConfig::default());
    Wire::connect(s.addr).create_topic("t", 1, &[("retention.ms", "1000")]);
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(true)
        .with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("t")),
            DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(StrBytes::from_static_str("0")),
            DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(StrBytes::from_static_str("9")),
        ]);
    let resp: DescribeConfigsResponse = k.call(ApiKey::DescribeConfigs, 4, &req);
    let topic = &resp.results[0];
    assert_eq!(topic.error_code, 0);
    let retention = topic
        .configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    assert_eq!(retention.value.as_deref(), Some("1000"));
    assert_eq!(retention.config_source, 1);
    assert_eq!(retention.config_type, 5, "LONG");
    let synonyms: Vec<(&str, i8)> = retention.synonyms.iter().map(|s| (s.name.as_str(), s.source)).collect();
    assert_eq!(synonyms, [("retention.ms", 1), ("log.retention.ms", 5)]);
    assert!(retention.documentation.as_deref().is_some_and(|d| !d.is_empty()));
    let compression = topic
        .configs
        .iter()
        .find(|c| c.name.as_str() == "compression.type")
        .unwrap();
    assert_eq!(compression.value.as_deref(), Some("producer"));

    let broker = &resp.results[1];
    assert_eq!(broker.error_code, 0);
    let get = |key: &str| {
        broker
            .configs
            .iter()
            .find(|c| c.name.as_str() == key)
            .unwrap_or_else(|| panic!("{key}"))
    };
    assert_eq!(get("auto.create.topics.enable").value.as_deref(), Some("true"));
    assert_eq!(get("num.partitions").value.as_deref(), Some("1"));
    assert_eq!(get("log.retention.ms").value.as_deref(), Some("604800000"));
    assert!(get("num.partitions").read_only);
    assert_eq!(get("num.partitions").config_source, 4, "STATIC_BROKER_CONFIG");
    assert_eq!(resp.results[2].error_code, INVALID_REQUEST, "no broker 9");
}

#[test]
fn configs_change_incrementally_or_wholesale_and_validate_only_changes_nothing() {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource as IncResource, AlterableConfig as IncConfig,
    };
    let (_dir, s, mut k) = start_with(ServerConfig::default());
    Wire::connect(s.addr).create_topic("t", 1, &[]);
    let op = |key: &str, op: i8, value: Option<&str>| {
        IncConfig::default()
            .with_name(StrBytes::from_string(key.to_owned()))
            .with_config_operation(op)
            .with_value(value.map(|v| StrBytes::from_string(v.to_owned())))
    };
    let incremental = |k: &mut Kafka, kind: i8, topic: &str, validate_only: bool, ops: Vec<IncConfig>| {
        let req = IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![IncResource::default()
                .with_resource_type(kind)
                .with_resource_name(StrBytes::from_string(topic.to_owned()))
                .with_configs(ops)]);
        let resp: IncrementalAlterConfigsResponse = k.call(ApiKey::IncrementalAlterConfigs, 1, &req);
        resp.responses[0].error_code
    };
    let overrides = |s: &TestServer| s.storage.topic("t").unwrap().overrides.clone();
    let pairs = |kv: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };

    let set_two = vec![
        op("retention.ms", 0, Some("5000")),
        op("compression.type", 0, Some("zstd")),
    ];
    assert_eq!(incremental(&mut k, 2, "t", false, set_two), 0);
    assert_eq!(
        overrides(&s),
        pairs(&[("compression.type", "zstd"), ("retention.ms", "5000")])
    );
    assert_eq!(s.storage.topic("t").unwrap().config.retention_ms, 5000);
    // DELETE returns a key to its default; APPEND to a list config.
    let ops = vec![op("retention.ms", 1, None), op("cleanup.policy", 2, Some("delete"))];
    assert_eq!(incremental(&mut k, 2, "t", false, ops), 0);
    assert_eq!(
        overrides(&s),
        pairs(&[("cleanup.policy", "delete"), ("compression.type", "zstd")])
    );
    // Refused, with nothing changed: APPEND to a scalar, a bad value, an unknown key.
    for ops in [
        vec![op("retention.ms", 2, Some("1"))],
        vec![
            op("segment.bytes", 0, Some("2048")),
            op("retention.ms", 0, Some("soon")),
        ],
        vec![op("no.such.key", 0, Some("1"))],
    ] {
        assert_eq!(incremental(&mut k, 2, "t", false, ops), INVALID_CONFIG);
    }
    // validate_only: accepted, not stored.
    assert_eq!(
        incremental(&mut k, 2, "t", true, vec![op("segment.bytes", 0, Some("2048"))]),
        0
    );
    assert_eq!(
        overrides(&s),
        pairs(&[("cleanup.policy", "delete"), ("compression.type", "zstd")])
    );
    assert_eq!(
        incremental(&mut k, 2, "missing", false, vec![op("retention.ms", 0, Some("1"))]),
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        incremental(&mut k, 4, "0", false, vec![op("num.partitions", 0, Some("3"))]),
        INVALID_REQUEST
    );

    // AlterConfigs (legacy): the overrides become exactly what is given.
    let req = AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(StrBytes::from_static_str("t"))
        .with_configs(vec![AlterableConfig::default()
            .with_name(StrBytes::from_static_str("flush.policy"))
            .with_value(Some(StrBytes::from_static_str("os")))])]);
    let resp: AlterConfigsResponse = k.call(ApiKey::AlterConfigs, 2, &req);
    assert_eq!(resp.responses[0].error_code, 0, "{:?}", resp.responses[0].error_message);
    assert_eq!(overrides(&s), pairs(&[("flush.policy", "os")]));
}

#[test]
fn delete_records_moves_the_log_start_and_describe_log_dirs_sizes_partitions() {
    use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    let (_dir, s, mut k) = start_with(ServerConfig::default());
    Wire::connect(s.addr).create_topic("t", 2, &[]);
    let log = s.storage.partition("t", 0).unwrap();
    for tag in 0..10 {
        log.append(&mut common::batch(tag, 1, 100, 1_000)).unwrap();
    }
    let part = |p: i32, offset: i64| {
        DeleteRecordsPartition::default()
            .with_partition_index(p)
            .with_offset(offset)
    };
    let req = DeleteRecordsRequest::default().with_timeout_ms(5_000).with_topics(vec![
        DeleteRecordsTopic::default()
            .with_name(name("t"))
            .with_partitions(vec![part(0, 4), part(1, 5), part(7, 0)]),
        DeleteRecordsTopic::default()
            .with_name(name("missing"))
            .with_partitions(vec![part(0, 0)]),
    ]);
    let resp: DeleteRecordsResponse = k.call(ApiKey::DeleteRecords, 2, &req);
    let got: Vec<(i32, i64, i16)> = resp.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.low_watermark, p.error_code))
        .collect();
    assert_eq!(
        got,
        [(0, 4, 0), (1, -1, 1), (7, -1, UNKNOWN_TOPIC_OR_PARTITION)],
        "offset past the end: OFFSET_OUT_OF_RANGE"
    );
    assert_eq!(resp.topics[1].partitions[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(log.start_offset(), 4);
    // -1: up to the high watermark.
    let req = DeleteRecordsRequest::default().with_topics(vec![DeleteRecordsTopic::default()
        .with_name(name("t"))
        .with_partitions(vec![part(0, -1)])]);
    let resp: DeleteRecordsResponse = k.call(ApiKey::DeleteRecords, 0, &req);
    assert_eq!(resp.topics[0].partitions[0].low_watermark, 10);

    let req = DescribeLogDirsRequest::default().with_topics(Some(vec![DescribableLogDirTopic::default()
        .with_topic(name("t"))
        .with_partitions(vec![1, 9])]));
    let resp: DescribeLogDirsResponse = k.call(ApiKey::DescribeLogDirs, 4, &req);
    let dir = &resp.results[0];
    assert_eq!(dir.error_code, 0);
    assert!(dir.total_bytes > 0 && dir.usable_bytes > 0 && dir.usable_bytes <= dir.total_bytes);
    let listed: Vec<(String, Vec<i32>)> = dir
        .topics
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    assert_eq!(listed, [("t".to_string(), vec![1])], "only partitions this broker has");
    // All partitions: sizes as on disk.
    let resp: DescribeLogDirsResponse = k.call(
        ApiKey::DescribeLogDirs,
        1,
        &DescribeLogDirsRequest::default().with_topics(None),
    );
    let t = &resp.results[0].topics[0];
    assert_eq!(t.partitions.len(), 2);
    assert_eq!(t.partitions[0].partition_size as u64, log.size_bytes());
}

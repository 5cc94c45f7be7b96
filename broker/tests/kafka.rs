//! The Kafka listener driven at the byte level with the `kafka-protocol` crate's own
//! encoders and decoders (an independent implementation of the wire format): header
//! rules, ApiVersions, Metadata, CreateTopics, Produce, Fetch (records spliced in with
//! sendfile), ListOffsets, unsupported APIs, and a batch produced on the native listener
//! read back byte for byte on the Kafka one.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use runnel_broker::server::{ServerConfig, ServerStats};

use common::kafka::{name, Kafka};
use common::wire::{TestServer, Wire};

fn start() -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ServerConfig {
        kafka_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..ServerConfig::default()
    };
    let s = TestServer::start(dir.path(), cfg);
    (dir, s)
}

/// A server config with the Kafka listener and this initial rebalance delay.
fn group_config(initial_rebalance_delay_ms: u32) -> ServerConfig {
    let mut cfg = ServerConfig {
        kafka_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..ServerConfig::default()
    };
    cfg.group.initial_rebalance_delay_ms = initial_rebalance_delay_ms;
    cfg
}

fn records(base_ts: i64, n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The crate starts a new batch where offset - sequence changes.
            sequence: i as i32,
            timestamp: base_ts + i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("value {i}"))),
            headers: IndexMap::from_iter([(StrBytes::from_static_str("h"), Some(Bytes::from(format!("{i}"))))]),
        })
        .collect()
}

fn batch(recs: &[Record]) -> Bytes {
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, recs, &options).unwrap();
    buf.freeze()
}

fn produce(k: &mut Kafka, version: i16, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])]);
    let resp: ProduceResponse = k.call(ApiKey::Produce, version, &req);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn fetch(k: &mut Kafka, version: i16, topic: &str, partition: i32, offset: i64) -> (i16, i64, Option<Bytes>) {
    let req = FetchRequest::default()
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default().with_topic(name(topic)).with_partitions(
            vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)],
        )]);
    let resp: FetchResponse = k.call(ApiKey::Fetch, version, &req);
    let p = &resp.responses[0].partitions[0];
    (p.error_code, p.high_watermark, p.records.clone())
}

/// Produce requests of 16 KiB and more are appended from the memory they were read
/// into: not one record byte is copied (the broker counts copies), and the records land
/// as sent. A small request is copied (cheaper than moving what was read past it).
#[test]
fn large_produce_requests_are_appended_where_they_were_read() {
    let (_dir, s) = start();
    Wire::connect(s.addr).create_topic("inplace", 2, &[("flush.policy", "os")]);
    let mut k = Kafka::connect(s.kafka_addr.unwrap());
    let copied = || ServerStats::get(&s.stats().kafka_produce_copied_bytes);
    let big = |partition: i32, round: i64| {
        let recs: Vec<Record> = records(1_700_000_000_000 + round, 20)
            .into_iter()
            .map(|r| Record {
                value: Some(Bytes::from(format!("{partition}/{round}/{}", r.offset).repeat(300))),
                ..r
            })
            .collect();
        (batch(&recs), recs)
    };
    let mut sent: [Vec<Record>; 2] = Default::default();
    for round in 0..8 {
        let (b0, r0) = big(0, round);
        let (b1, r1) = big(1, round);
        assert!(b0.len() + b1.len() > 32 * 1024);
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name("inplace"))
                .with_partition_data(vec![
                    PartitionProduceData::default().with_index(0).with_records(Some(b0)),
                    PartitionProduceData::default().with_index(1).with_records(Some(b1)),
                ])]);
        let resp: ProduceResponse = k.call(ApiKey::Produce, 9, &req);
        for p in &resp.responses[0].partition_responses {
            assert_eq!((p.error_code, p.base_offset), (0, round * 20), "partition {}", p.index);
        }
        sent[0].extend(r0);
        sent[1].extend(r1);
    }
    // Pipelined: requests written together arrive together, yet each is read into a
    // buffer of its own.
    let mut burst = Vec::new();
    for round in 8..16 {
        let (b0, r0) = big(0, round);
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name("inplace"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(b0))])]);
        burst.extend_from_slice(&k.frame(ApiKey::Produce, 9, &req).1);
        sent[0].extend(r0);
    }
    k.sock.write_all(&burst).unwrap();
    for round in 8..16 {
        let resp: ProduceResponse = read_response(&mut k, 9);
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (0, round * 20));
    }
    assert_eq!(copied(), 0, "no record byte copied");
    for (partition, want) in sent.iter().enumerate() {
        let mut got = Vec::new();
        while got.len() < want.len() {
            let (code, _, records) = fetch(&mut k, 12, "inplace", partition as i32, got.len() as i64);
            assert_eq!(code, 0);
            let mut bytes = records.expect("records");
            while bytes.has_remaining() {
                got.extend(RecordBatchDecoder::decode(&mut bytes).unwrap().records);
            }
        }
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(
                (g.offset, &g.key, &g.value, &g.headers),
                (i as i64, &w.key, &w.value, &w.headers)
            );
        }
    }
    assert_eq!(produce(&mut k, 9, "inplace", 0, batch(&records(0, 3))), (0, 320));
    assert!(copied() > 0, "a small request is copied");
}

#[test]
fn api_versions_follow_the_header_rules_and_advertise_only_what_is_served() {
    let (_dir, s) = start();
    let mut k = Kafka::connect(s.kafka_addr.unwrap());
    for version in 0..=4 {
        let mut req = ApiVersionsRequest::default();
        if version >= 3 {
            req = req
                .with_client_software_name(StrBytes::from_static_str("test"))
                .with_client_software_version(StrBytes::from_static_str("1"));
        }
        // The response header is v0 for every version (the crate's header_version says so).
        let resp: ApiVersionsResponse = k.call(ApiKey::ApiVersions, version, &req);
        assert_eq!(resp.error_code, 0);
        let keys: Vec<i16> = resp.api_keys.iter().map(|a| a.api_key).collect();
        for key in [ApiKey::Produce, ApiKey::Fetch, ApiKey::Metadata, ApiKey::ApiVersions] {
            assert!(keys.contains(&(key as i16)), "{key:?} missing in v{version}");
        }
        for unserved in [ApiKey::AddPartitionsToTxn, ApiKey::DescribeAcls, ApiKey::CreateAcls] {
            assert!(
                !keys.contains(&(unserved as i16)),
                "{unserved:?}: nothing without a handler"
            );
        }
        let av = resp
            .api_keys
            .iter()
            .find(|a| a.api_key == ApiKey::ApiVersions as i16)
            .unwrap();
        assert_eq!((av.min_version, av.max_version), (0, 4));
        // No optional tagged fields: librdkafka < 2.2 cannot parse them.
        assert!(resp.supported_features.is_empty() && resp.finalized_features.is_empty());
        assert!(resp.unknown_tagged_fields.is_empty());
    }
    // Too new: UNSUPPORTED_VERSION (35) and our ranges in a v0 body after a v0 header.
    // (The crate cannot encode v9: a v2 header with a null client id, no tagged fields.)
    let id = 4242;
    let mut raw = BytesMut::new();
    raw.put_u32(11);
    raw.put_i16(ApiKey::ApiVersions as i16);
    raw.put_i16(9);
    raw.put_i32(id);
    raw.put_i16(-1);
    raw.put_u8(0);
    k.sock.write_all(&raw).unwrap();
    let mut frame = k.read_frame().unwrap();
    assert_eq!(frame.get_i32(), id);
    let resp = ApiVersionsResponse::decode(&mut frame, 0).unwrap();
    assert_eq!(resp.error_code, 35);
    assert!(resp.api_keys.iter().any(|a| a.api_key == ApiKey::Fetch as i16));
    s.shutdown();
}

#[test]
fn create_metadata_produce_fetch_and_list_offsets() {
    let (_dir, s) = start();
    let mut k = Kafka::connect(s.kafka_addr.unwrap());
    for (version, topic) in [(2, "legacy"), (5, "flex")] {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(5_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(3)
                .with_replication_factor(1)]);
        let resp: CreateTopicsResponse = k.call(ApiKey::CreateTopics, version, &req);
        assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0].error_message);
    }
    // Again: TOPIC_ALREADY_EXISTS (36).
    let again = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name("flex"))
        .with_num_partitions(1)
        .with_replication_factor(1)]);
    let resp: CreateTopicsResponse = k.call(ApiKey::CreateTopics, 5, &again);
    assert_eq!(resp.topics[0].error_code, 36);

    for version in [0i16, 1, 4, 9, 12] {
        let missing_name = format!("missing-v{version}");
        let topics = (version > 0).then(|| {
            vec![
                MetadataRequestTopic::default().with_name(Some(name("flex"))),
                MetadataRequestTopic::default().with_name(Some(name(&missing_name))),
            ]
        });
        // Auto-creation not allowed (v4+ can say so; before v4 Kafka always allowed it).
        let req = MetadataRequest::default()
            .with_topics(topics.or(Some(vec![])))
            .with_allow_auto_topic_creation(version < 4);
        let resp: MetadataResponse = k.call(ApiKey::Metadata, version, &req);
        assert_eq!(resp.brokers.len(), 1);
        assert_eq!(
            resp.brokers[0].port,
            i32::from(s.kafka_addr.unwrap().port()),
            "v{version}"
        );
        let flex = resp.topics.iter().find(|t| t.name == Some(name("flex"))).unwrap();
        assert_eq!(flex.error_code, 0);
        assert_eq!(flex.partitions.len(), 3);
        if version >= 4 {
            let missing = resp
                .topics
                .iter()
                .find(|t| t.name == Some(name(&missing_name)))
                .unwrap();
            assert_eq!(missing.error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
        } else if version > 0 {
            let created = resp
                .topics
                .iter()
                .find(|t| t.name == Some(name(&missing_name)))
                .unwrap();
            assert_eq!(created.error_code, 0, "auto-created before v4");
            assert_eq!(created.partitions.len(), 1);
        } else {
            assert!(
                resp.topics.iter().any(|t| t.name == Some(name("legacy"))),
                "v0: all topics"
            );
        }
    }

    // Produce (v3 and v9, flexible), fetch back (v4 and v12): same records.
    let first = records(1_700_000_000_000, 5);
    let second = records(1_700_000_001_000, 3);
    assert_eq!(produce(&mut k, 3, "flex", 1, batch(&first)), (0, 0));
    assert_eq!(produce(&mut k, 9, "flex", 1, batch(&second)), (0, 5));
    for version in [4i16, 11, 12] {
        let (code, hw, bytes) = fetch(&mut k, version, "flex", 1, 0);
        assert_eq!((code, hw), (0, 8));
        let mut bytes = bytes.expect("records");
        let mut got = Vec::new();
        while bytes.has_remaining() {
            got.extend(RecordBatchDecoder::decode(&mut bytes).unwrap().records);
        }
        assert_eq!(got.len(), 8);
        for (i, r) in got.iter().enumerate() {
            let want = if i < 5 { &first[i] } else { &second[i - 5] };
            assert_eq!(r.offset, i as i64);
            assert_eq!(
                (&r.key, &r.value, &r.headers, r.timestamp),
                (&want.key, &want.value, &want.headers, want.timestamp)
            );
        }
    }
    // From the middle of the second batch: the whole batch comes (clients skip ahead).
    let (code, _, bytes) = fetch(&mut k, 12, "flex", 1, 6);
    assert_eq!(code, 0);
    assert_eq!(
        RecordBatchDecoder::decode(&mut bytes.unwrap()).unwrap().records[0].offset,
        5
    );
    // Past the end: OFFSET_OUT_OF_RANGE (1); unknown partition: 3.
    assert_eq!(fetch(&mut k, 12, "flex", 1, 99).0, 1);
    assert_eq!(fetch(&mut k, 12, "flex", 7, 0).0, 3);

    // ListOffsets: earliest, latest, by timestamp.
    for version in [1i16, 5, 7] {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(name("flex"))
                .with_partitions(
                    [-2i64, -1, 1_700_000_001_001, 1_800_000_000_000]
                        .into_iter()
                        .map(|ts| {
                            ListOffsetsPartition::default()
                                .with_partition_index(1)
                                .with_timestamp(ts)
                        })
                        .collect(),
                )]);
        let resp: ListOffsetsResponse = k.call(ApiKey::ListOffsets, version, &req);
        let offsets: Vec<(i16, i64)> = resp.topics[0]
            .partitions
            .iter()
            .map(|p| (p.error_code, p.offset))
            .collect();
        assert_eq!(offsets, [(0, 0), (0, 8), (0, 6), (0, -1)], "v{version}");
    }
    // v7: -3, the record with the largest timestamp (KIP-734).
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name("flex"))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(1)
                .with_timestamp(-3)])]);
    let resp: ListOffsetsResponse = k.call(ApiKey::ListOffsets, 7, &req);
    let p = &resp.topics[0].partitions[0];
    assert_eq!((p.error_code, p.offset, p.timestamp), (0, 7, 1_700_000_001_002));
    s.shutdown();
}

#[test]
fn native_and_kafka_listeners_share_the_log_byte_for_byte() {
    let (_dir, s) = start();
    let mut native = Wire::connect(s.addr);
    native.create_topic("shared", 1, &[("flush.policy", "os")]);
    // A batch encoded by the crate, produced natively, fetched by Kafka: identical bytes
    // (the broker stamps only the base offset, outside the CRC).
    let b = batch(&records(1_700_000_000_000, 4));
    let r = native.produce("shared", 0, runnel_protocol::messages::Acks::Leader, &b);
    assert_eq!((r.error_code, r.base_offset), (0, 0));
    let mut k = Kafka::connect(s.kafka_addr.unwrap());
    let (code, _, bytes) = fetch(&mut k, 12, "shared", 0, 0);
    assert_eq!(code, 0);
    assert_eq!(bytes.unwrap(), b);
    // And the other way: produced on Kafka, fetched natively.
    let b2 = batch(&records(1_700_000_005_000, 2));
    assert_eq!(produce(&mut k, 8, "shared", 0, b2.clone()), (0, 4));
    let (p, trailer) = native.fetch("shared", 0, 4, 100);
    assert_eq!(p.error_code, 0);
    let mut stamped = b2.to_vec();
    stamped[..8].copy_from_slice(&4i64.to_be_bytes());
    assert_eq!(&trailer[..], &stamped[..]);
    // The Kafka fetch went out with sendfile.
    assert!(s.stats().bytes_sendfile.load(std::sync::atomic::Ordering::Relaxed) >= b.len() as u64);
    s.shutdown();
}

#[test]
fn bad_kafka_requests_never_take_the_broker_down() {
    let (_dir, s) = start();
    let addr = s.kafka_addr.unwrap();
    // Unknown api key, unserved api, unserved version: UNSUPPORTED_VERSION, and the
    // connection goes on.
    let mut k = Kafka::connect(addr);
    let mut frame = BytesMut::new();
    for (key, version) in [
        (999i16, 0i16),
        (ApiKey::DescribeAcls as i16, 0),
        (ApiKey::Produce as i16, 2),
    ] {
        frame.clear();
        frame.put_u32(10);
        frame.put_i16(key);
        frame.put_i16(version);
        frame.put_i32(77);
        frame.put_i16(-1);
        k.sock.write_all(&frame).unwrap();
        let mut resp = k.read_frame().expect("an answer, not a close");
        assert_eq!(resp.get_i32(), 77);
        assert_eq!(resp.get_i16(), 35, "api {key} v{version}");
    }
    let resp: ApiVersionsResponse = k.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(resp.error_code, 0);

    // Truncated body, absurd array counts, oversized length: closed, never a panic or an
    // abort (kafka-protocol 0.18 reserves a declared count up front: `alloc_guard`).
    let garbage: [&[u8]; 4] = [
        // Metadata v1 whose topic array claims 2^31-1 entries.
        &[0, 0, 0, 14, 0, 3, 0, 1, 0, 0, 0, 5, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff],
        // Fetch v12 (flexible): topics as a compact array of 2^32-2 entries.
        &[
            0, 0, 0, 41, // length
            0, 1, 0, 12, 0, 0, 0, 7, 0xff, 0xff, 0, // header v2: key, version, id, null client, no tags
            0xff, 0xff, 0xff, 0xff, 0, 0, 0, 100, 0, 0, 0, 1, 0, 16, 0, 0, // replica, wait, min, max
            0, 0, 0, 0, 0, 0, 0, 0, 0, // isolation, session id, session epoch
            0xff, 0xff, 0xff, 0xff, 0x0f, // topics: uvarint 2^32-1, so 2^32-2 entries
        ],
        // Produce v3 cut short inside its body.
        &[0, 0, 0, 12, 0, 0, 0, 3, 0, 0, 0, 6, 0xff, 0xff, 0, 1],
        // A length far over the frame limit.
        &[0x7f, 0xff, 0xff, 0xff, 0, 18, 0, 3, 0, 0, 0, 1],
    ];
    for g in garbage {
        let mut bad = TcpStream::connect(addr).unwrap();
        bad.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        bad.write_all(g).unwrap();
        let mut buf = [0u8; 64];
        match bad.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("expected the connection closed, got {other:?}"),
        }
    }
    // Everyone else is still served.
    let resp: ApiVersionsResponse = k.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(resp.error_code, 0);
    let mut native = Wire::connect(s.addr);
    native.ping();
    s.shutdown();
}

#[test]
fn describe_configs_and_delete_topics() {
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let (_dir, s) = start();
    let mut native = Wire::connect(s.addr);
    native.create_topic("conf", 1, &[("retention.ms", "60000")]);
    native.create_topic("gone", 1, &[]);
    native.create_topic("gone6", 1, &[]);
    let mut k = Kafka::connect(s.kafka_addr.unwrap());
    for version in [1i16, 4] {
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("conf"))
                .with_configuration_keys(None),
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("nope")),
        ]);
        let resp: DescribeConfigsResponse = k.call(ApiKey::DescribeConfigs, version, &req);
        let conf = &resp.results[0];
        assert_eq!(conf.error_code, 0);
        let retention = conf.configs.iter().find(|c| c.name.as_str() == "retention.ms").unwrap();
        assert_eq!(retention.value.as_deref(), Some("60000"));
        assert_eq!(retention.config_source, 1, "an override is a dynamic topic config");
        let other = conf
            .configs
            .iter()
            .find(|c| c.name.as_str() == "segment.bytes")
            .unwrap();
        assert_eq!(other.config_source, 5, "the rest are defaults");
        assert_eq!(resp.results[1].error_code, 3);
    }
    let req = DeleteTopicsRequest::default()
        .with_timeout_ms(5_000)
        .with_topic_names(vec![name("gone"), name("never")]);
    let resp: DeleteTopicsResponse = k.call(ApiKey::DeleteTopics, 4, &req);
    let codes: Vec<i16> = resp.responses.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, [0, 3]);
    let req = DeleteTopicsRequest::default()
        .with_timeout_ms(5_000)
        .with_topics(vec![DeleteTopicState::default().with_name(Some(name("gone6")))]);
    let resp: DeleteTopicsResponse = k.call(ApiKey::DeleteTopics, 6, &req);
    assert_eq!(resp.responses[0].error_code, 0);
    let resp: MetadataResponse = k.call(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(None));
    let left: Vec<String> = resp
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref())
        .map(|n| n.0.to_string())
        .collect();
    assert_eq!(left, ["conf"]);
    s.shutdown();
}

#[test]
fn find_coordinator_in_old_and_batched_forms() {
    let (_dir, s) = start();
    let port = i32::from(s.kafka_addr.unwrap().port());
    let mut k = Kafka::connect(s.kafka_addr.unwrap());
    for version in [0i16, 1, 3] {
        let req = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g"));
        let resp: FindCoordinatorResponse = k.call(ApiKey::FindCoordinator, version, &req);
        assert_eq!((resp.error_code, resp.node_id.0, resp.port), (0, 0, port), "v{version}");
    }
    let req = FindCoordinatorRequest::default()
        .with_coordinator_keys(vec![StrBytes::from_static_str("g1"), StrBytes::from_static_str("g2")]);
    let resp: FindCoordinatorResponse = k.call(ApiKey::FindCoordinator, 4, &req);
    let keys: Vec<(&str, i16, i32)> = resp
        .coordinators
        .iter()
        .map(|c| (c.key.as_str(), c.error_code, c.port))
        .collect();
    assert_eq!(keys, [("g1", 0, port), ("g2", 0, port)]);
    // Transaction coordinators do not exist: COORDINATOR_NOT_AVAILABLE (15).
    let req = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_static_str("tx"))
        .with_key_type(1);
    let resp: FindCoordinatorResponse = k.call(ApiKey::FindCoordinator, 3, &req);
    assert_eq!(resp.error_code, 15);
    s.shutdown();
}

/// A batch of `n` records from idempotent producer `pid`/`epoch`, sequences from `seq`.
fn idempotent_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Bytes {
    let recs: Vec<Record> = records(1_700_000_000_000, n)
        .into_iter()
        .enumerate()
        .map(|(i, r)| Record {
            producer_id: pid,
            producer_epoch: epoch,
            sequence: seq + i as i32,
            ..r
        })
        .collect();
    batch(&recs)
}

#[test]
fn idempotent_producers_get_ids_duplicates_their_offsets_and_gaps_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || ServerConfig {
        kafka_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..ServerConfig::default()
    };
    let s = TestServer::start(dir.path(), cfg());
    Wire::connect(s.addr).create_topic("idem", 1, &[("flush.policy", "os")]);
    let mut k = Kafka::connect(s.kafka_addr.unwrap());
    let resp: InitProducerIdResponse = k.call(
        ApiKey::InitProducerId,
        1,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(-1),
    );
    assert_eq!((resp.error_code, resp.producer_epoch), (0, 0));
    let pid = resp.producer_id.0;
    assert!(pid > 0);
    let other: InitProducerIdResponse = k.call(
        ApiKey::InitProducerId,
        1,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(-1),
    );
    assert_ne!(other.producer_id.0, pid, "ids are unique");

    assert_eq!(produce(&mut k, 8, "idem", 0, idempotent_batch(pid, 0, 0, 3)), (0, 0));
    // The retry of a batch whose answer was lost: its original offset, nothing appended.
    assert_eq!(produce(&mut k, 8, "idem", 0, idempotent_batch(pid, 0, 0, 3)), (0, 0));
    assert_eq!(produce(&mut k, 8, "idem", 0, idempotent_batch(pid, 0, 3, 2)), (0, 3));
    // A gap: OUT_OF_ORDER_SEQUENCE_NUMBER (45), nothing appended.
    assert_eq!(produce(&mut k, 8, "idem", 0, idempotent_batch(pid, 0, 9, 1)).0, 45);
    assert_eq!(fetch(&mut k, 12, "idem", 0, 0).1, 5, "high watermark: 5 records");

    // A new incarnation (v3+: same id, next epoch) fences the old one.
    let bumped: InitProducerIdResponse = k.call(
        ApiKey::InitProducerId,
        3,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(-1)
            .with_producer_id(kafka_protocol::messages::ProducerId(pid))
            .with_producer_epoch(0),
    );
    assert_eq!((bumped.producer_id.0, bumped.producer_epoch), (pid, 1));
    assert_eq!(produce(&mut k, 8, "idem", 0, idempotent_batch(pid, 1, 0, 1)), (0, 5));
    assert_eq!(
        produce(&mut k, 8, "idem", 0, idempotent_batch(pid, 0, 5, 1)).0,
        47,
        "INVALID_PRODUCER_EPOCH"
    );
    // Transactions: not served.
    let txn: InitProducerIdResponse = k.call(
        ApiKey::InitProducerId,
        1,
        &InitProducerIdRequest::default().with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("t")))),
    );
    assert_eq!(txn.error_code, 15);
    s.shutdown();

    // After a restart the state is rebuilt from the log: the retry is still recognised.
    let s = TestServer::start(dir.path(), cfg());
    let mut k = Kafka::connect(s.kafka_addr.unwrap());
    assert_eq!(produce(&mut k, 8, "idem", 0, idempotent_batch(pid, 1, 0, 1)), (0, 5));
    assert_eq!(produce(&mut k, 8, "idem", 0, idempotent_batch(pid, 1, 1, 1)), (0, 6));
    assert_eq!(produce(&mut k, 8, "idem", 0, idempotent_batch(pid, 1, 3, 1)).0, 45);
    s.shutdown();
}

fn subscription(topics: &[&str]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| StrBytes::from_string(t.to_string())).collect())
        .encode(&mut buf, 1)
        .unwrap();
    buf.freeze()
}

fn join_request(member: &str, instance: Option<&str>) -> JoinGroupRequest {
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(5_000)
        .with_member_id(StrBytes::from_string(member.to_owned()))
        .with_group_instance_id(instance.map(|i| StrBytes::from_string(i.to_owned())))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(subscription(&["t"]))])
}

fn sync_request(member: &str, generation: i32, assignments: &[(&str, &'static [u8])]) -> SyncGroupRequest {
    use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
    SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_generation_id(generation)
        .with_member_id(StrBytes::from_string(member.to_owned()))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(StrBytes::from_string(m.to_string()))
                        .with_assignment(Bytes::from_static(a))
                })
                .collect(),
        )
}

fn heartbeat(k: &mut Kafka, member: &str, generation: i32) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_generation_id(generation)
        .with_member_id(StrBytes::from_string(member.to_owned()));
    let resp: HeartbeatResponse = k.call(ApiKey::Heartbeat, 3, &req);
    resp.error_code
}

fn commit(k: &mut Kafka, member: &str, generation: i32) -> i16 {
    static_commit(k, member, None, generation)
}

fn static_commit(k: &mut Kafka, member: &str, instance: Option<&str>, generation: i32) -> i16 {
    use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(StrBytes::from_string(member.to_owned()))
        .with_group_instance_id(instance.map(|i| StrBytes::from_string(i.to_owned())))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(name("t"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(5)])]);
    let resp: OffsetCommitResponse = k.call(ApiKey::OffsetCommit, 8, &req);
    resp.topics[0].partitions[0].error_code
}

fn list_groups(k: &mut Kafka) -> Vec<(String, String, String)> {
    let resp: ListGroupsResponse = k.call(ApiKey::ListGroups, 5, &ListGroupsRequest::default());
    resp.groups
        .iter()
        .map(|g| {
            (
                g.group_id.0.to_string(),
                g.group_state.to_string(),
                g.group_type.to_string(),
            )
        })
        .collect()
}

/// Joins through MEMBER_ID_REQUIRED; sends the second JoinGroup and returns the id
/// without waiting for the answer.
fn start_join(k: &mut Kafka) -> String {
    let first: JoinGroupResponse = k.call(ApiKey::JoinGroup, 5, &join_request("", None));
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    let id = first.member_id.to_string();
    k.send(ApiKey::JoinGroup, 5, &join_request(&id, None));
    id
}

fn read_response<Resp: Decodable + HeaderVersion>(k: &mut Kafka, version: i16) -> Resp {
    let mut frame = k.read_frame().expect("a response");
    ResponseHeader::decode(&mut frame, Resp::header_version(version)).unwrap();
    Resp::decode(&mut frame, version).unwrap()
}

/// Offset commits pipelined on one connection are applied in the order they were sent,
/// as Kafka does (it handles a connection's requests one at a time): the last one wins,
/// and an OffsetFetch sent right after them sees it.
/// Requests otherwise run concurrently here, so commits are chained like produces.
#[test]
fn pipelined_commits_apply_in_order() {
    use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    let (_dir, s) = start();
    Wire::connect(s.addr).create_topic("t", 1, &[]);
    let mut k = Kafka::connect(s.kafka_addr.unwrap());
    for round in 0..20 {
        let group = format!("order-{round}");
        let commit = |offset: i64| {
            OffsetCommitRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.clone())))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(name("t"))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)])])
        };
        // 50 commits and an OffsetFetch, written together.
        let mut burst = Vec::new();
        for offset in 0..50 {
            burst.extend_from_slice(&k.frame(ApiKey::OffsetCommit, 8, &commit(offset)).1);
        }
        let fetch = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())))
            .with_topics(None);
        burst.extend_from_slice(&k.frame(ApiKey::OffsetFetch, 7, &fetch).1);
        k.sock.write_all(&burst).unwrap();
        for _ in 0..50 {
            let resp: OffsetCommitResponse = read_response(&mut k, 8);
            assert_eq!(resp.topics[0].partitions[0].error_code, 0);
        }
        let resp: OffsetFetchResponse = read_response(&mut k, 7);
        assert_eq!(resp.topics[0].partitions[0].committed_offset, 49, "round {round}");
    }
}

/// Any request sees what the requests sent before it on its connection did, as with
/// Kafka: a Fetch right behind a Produce returns its records (without waiting), a
/// Metadata right behind a CreateTopics lists the topic.
#[test]
fn requests_see_what_earlier_ones_on_their_connection_did() {
    let (_dir, s) = start();
    let mut k = Kafka::connect(s.kafka_addr.unwrap());
    for round in 0..20 {
        let topic = format!("seen-{round}");
        let create = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(name(&topic))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
        let metadata = MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(&topic)))
        ]));
        let produce = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name(&topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch(&records(0, 3))))])]);
        let fetch = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default().with_topic(name(&topic)).with_partitions(
                vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)],
            )]);
        let mut burst = Vec::new();
        burst.extend_from_slice(&k.frame(ApiKey::CreateTopics, 5, &create).1);
        burst.extend_from_slice(&k.frame(ApiKey::Metadata, 9, &metadata).1);
        burst.extend_from_slice(&k.frame(ApiKey::Produce, 9, &produce).1);
        burst.extend_from_slice(&k.frame(ApiKey::Fetch, 12, &fetch).1);
        k.sock.write_all(&burst).unwrap();
        let created: CreateTopicsResponse = read_response(&mut k, 5);
        assert_eq!(created.topics[0].error_code, 0);
        let listed: MetadataResponse = read_response(&mut k, 9);
        assert_eq!(
            listed.topics[0].error_code, 0,
            "round {round}: Metadata after CreateTopics"
        );
        let produced: ProduceResponse = read_response(&mut k, 9);
        assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
        let fetched: FetchResponse = read_response(&mut k, 12);
        let p = &fetched.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        assert_eq!(p.high_watermark, 3, "round {round}: Fetch after Produce");
        assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()), "round {round}");
    }
    s.shutdown();
}

/// A member that commits and leaves without waiting in between (as a closing consumer
/// may) has its commits counted: the LeaveGroup takes effect after them.
#[test]
fn a_commit_sent_before_leaving_counts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = group_config(0);
    let s = TestServer::start(dir.path(), cfg);
    Wire::connect(s.addr).create_topic("t", 1, &[]);
    let mut k = Kafka::connect(s.kafka_addr.unwrap());
    for round in 0..20 {
        let id = start_join(&mut k);
        let joined: JoinGroupResponse = read_response(&mut k, 5);
        let generation = joined.generation_id;
        assert_eq!(joined.error_code, 0);
        let synced: SyncGroupResponse = k.call(ApiKey::SyncGroup, 3, &sync_request(&id, generation, &[(&id, b"t")]));
        assert_eq!(synced.error_code, 0);
        use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
        let commit = |offset: i64| {
            OffsetCommitRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_generation_id_or_member_epoch(generation)
                .with_member_id(StrBytes::from_string(id.clone()))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(name("t"))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)])])
        };
        let leave = LeaveGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_member_id(StrBytes::from_string(id.clone()));
        for i in 0..20 {
            k.send(ApiKey::OffsetCommit, 8, &commit(round * 100 + i));
        }
        k.send(ApiKey::LeaveGroup, 2, &leave);
        for i in 0..20 {
            let committed: OffsetCommitResponse = read_response(&mut k, 8);
            assert_eq!(
                committed.topics[0].partitions[0].error_code, 0,
                "round {round}: commit {i}"
            );
        }
        let left: LeaveGroupResponse = read_response(&mut k, 2);
        assert_eq!(left.error_code, 0);
        let fetch = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(None);
        let resp: OffsetFetchResponse = k.call(ApiKey::OffsetFetch, 7, &fetch);
        assert_eq!(
            resp.topics[0].partitions[0].committed_offset,
            round * 100 + 19,
            "round {round}"
        );
    }
    s.shutdown();
}

/// A static member that comes back under a new member id takes over without a
/// rebalance (JoinGroup answers at once, same generation, and being the leader it is
/// told the old leader id before v9); its old incarnation is fenced on heartbeats and
/// commits alike (FENCED_INSTANCE_ID, 82).
#[test]
fn a_returning_static_member_fences_its_old_incarnation() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = group_config(100);
    let s = TestServer::start(dir.path(), cfg);
    Wire::connect(s.addr).create_topic("t", 2, &[]);
    let mut k = Kafka::connect(s.kafka_addr.unwrap());
    let first: JoinGroupResponse = k.call(ApiKey::JoinGroup, 5, &join_request("", Some("i1")));
    assert_eq!(
        (first.error_code, first.generation_id),
        (0, 1),
        "static: no MEMBER_ID_REQUIRED"
    );
    let old = first.member_id.to_string();
    assert_eq!(first.leader.as_str(), old);
    let synced: SyncGroupResponse = k.call(ApiKey::SyncGroup, 3, &sync_request(&old, 1, &[(&old, b"both")]));
    assert_eq!(synced.error_code, 0);
    assert_eq!(static_commit(&mut k, &old, Some("i1"), 1), 0);

    let back: JoinGroupResponse = k.call(ApiKey::JoinGroup, 5, &join_request("", Some("i1")));
    let new = back.member_id.to_string();
    assert_ne!(new, old);
    assert_eq!((back.error_code, back.generation_id), (0, 1), "no rebalance");
    assert_eq!(
        back.leader.as_str(),
        old,
        "v5: told the old leader id, so it syncs as a follower"
    );
    let mut sync = sync_request(&new, 1, &[]);
    sync.group_instance_id = Some(StrBytes::from_static_str("i1"));
    let synced: SyncGroupResponse = k.call(ApiKey::SyncGroup, 3, &sync);
    assert_eq!((synced.error_code, &synced.assignment[..]), (0, &b"both"[..]));
    assert_eq!(
        static_commit(&mut k, &old, Some("i1"), 1),
        82,
        "the old incarnation's commit"
    );
    assert_eq!(static_commit(&mut k, &new, Some("i1"), 1), 0);
    s.shutdown();
}

#[test]
fn classic_group_protocol_rebalances_fences_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = group_config(200);
    let s = TestServer::start(dir.path(), cfg.clone());
    let mut a = Kafka::connect(s.kafka_addr.unwrap());
    let create = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name("t"))
        .with_num_partitions(4)
        .with_replication_factor(1)]);
    let resp: CreateTopicsResponse = a.call(ApiKey::CreateTopics, 5, &create);
    assert_eq!(resp.topics[0].error_code, 0);

    // A alone: joins after the initial delay, leads generation 1.
    let a_id = start_join(&mut a);
    let joined: JoinGroupResponse = read_response(&mut a, 5);
    assert_eq!(joined.error_code, 0);
    assert_eq!((joined.generation_id, joined.leader.as_str()), (1, a_id.as_str()));
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.members[0].metadata, subscription(&["t"]));
    let synced: SyncGroupResponse = a.call(ApiKey::SyncGroup, 3, &sync_request(&a_id, 1, &[(&a_id, b"all")]));
    assert_eq!((synced.error_code, &synced.assignment[..]), (0, &b"all"[..]));
    assert_eq!(heartbeat(&mut a, &a_id, 1), 0);
    assert_eq!(commit(&mut a, &a_id, 1), 0);
    assert_eq!(commit(&mut a, &a_id, 7), 22, "ILLEGAL_GENERATION");
    assert_eq!(commit(&mut a, "ghost", 1), 25, "UNKNOWN_MEMBER_ID");
    assert_eq!(
        list_groups(&mut a),
        vec![("g".into(), "Stable".into(), "classic".into())]
    );

    // The group survives a restart: same generation, same member.
    s.shutdown();
    let s = TestServer::start(dir.path(), cfg);
    let mut a = Kafka::connect(s.kafka_addr.unwrap());
    assert_eq!(heartbeat(&mut a, &a_id, 1), 0);

    // B arrives: A is told to rejoin; when it does both get generation 2.
    let mut b = Kafka::connect(s.kafka_addr.unwrap());
    let b_id = start_join(&mut b);
    // (B's second JoinGroup was only sent: wait until the coordinator has it.)
    for _ in 0..500 {
        if list_groups(&mut a)[0].1 == "PreparingRebalance" {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(heartbeat(&mut a, &a_id, 1), 27, "REBALANCE_IN_PROGRESS");
    let rejoined: JoinGroupResponse = a.call(ApiKey::JoinGroup, 5, &join_request(&a_id, None));
    let b_joined: JoinGroupResponse = read_response(&mut b, 5);
    assert_eq!((rejoined.generation_id, b_joined.generation_id), (2, 2));
    assert_eq!(rejoined.leader.as_str(), a_id, "the leader stays");
    assert_eq!(rejoined.members.len(), 2);
    assert!(b_joined.members.is_empty(), "only the leader sees the members");
    assert_eq!(list_groups(&mut a)[0].1, "CompletingRebalance");
    assert_eq!(commit(&mut b, &b_id, 2), 27, "no commits between join and sync");
    // B's SyncGroup waits for the leader's.
    b.send(ApiKey::SyncGroup, 3, &sync_request(&b_id, 2, &[]));
    let synced: SyncGroupResponse = a.call(
        ApiKey::SyncGroup,
        3,
        &sync_request(&a_id, 2, &[(&a_id, b"p0,p1"), (&b_id, b"p2,p3")]),
    );
    assert_eq!(&synced.assignment[..], b"p0,p1");
    let b_synced: SyncGroupResponse = read_response(&mut b, 3);
    assert_eq!(&b_synced.assignment[..], b"p2,p3");
    assert_eq!(heartbeat(&mut a, &a_id, 1), 22, "the old generation is fenced");
    assert_eq!(commit(&mut b, &b_id, 2), 0);

    // Described as Kafka tools expect.
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(StrBytes::from_static_str("g"))]);
    let described: DescribeGroupsResponse = a.call(ApiKey::DescribeGroups, 5, &req);
    let g = &described.groups[0];
    assert_eq!(
        (
            g.group_state.as_str(),
            g.protocol_type.as_str(),
            g.protocol_data.as_str()
        ),
        ("Stable", "consumer", "range")
    );
    assert_eq!(g.members.len(), 2);
    assert!(g
        .members
        .iter()
        .all(|m| m.client_id.as_str() == "runnel-test" && m.client_host.as_str() == "/127.0.0.1"));

    // Offsets of a topic the group consumes cannot be deleted.
    use kafka_protocol::messages::offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
    let delete_offsets = OffsetDeleteRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_topics(vec![OffsetDeleteRequestTopic::default()
            .with_name(name("t"))
            .with_partitions(vec![
                OffsetDeleteRequestPartition::default().with_partition_index(0)
            ])]);
    let resp: OffsetDeleteResponse = a.call(ApiKey::OffsetDelete, 0, &delete_offsets);
    assert_eq!(resp.topics[0].partitions[0].error_code, 86, "GROUP_SUBSCRIBED_TO_TOPIC");
    let resp: DeleteGroupsResponse = a.call(
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(StrBytes::from_static_str("g"))]),
    );
    assert_eq!(resp.results[0].error_code, 68, "NON_EMPTY_GROUP");

    // B leaves (v3 batch form); A must rejoin and goes on alone in generation 3.
    use kafka_protocol::messages::leave_group_request::MemberIdentity;
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_members(vec![
            MemberIdentity::default().with_member_id(StrBytes::from_string(b_id.clone())),
            MemberIdentity::default().with_member_id(StrBytes::from_static_str("ghost")),
        ]);
    let resp: LeaveGroupResponse = b.call(ApiKey::LeaveGroup, 3, &leave);
    let codes: Vec<i16> = resp.members.iter().map(|m| m.error_code).collect();
    assert_eq!(codes, vec![0, 25]);
    assert_eq!(heartbeat(&mut a, &a_id, 2), 27);
    let alone: JoinGroupResponse = a.call(ApiKey::JoinGroup, 5, &join_request(&a_id, None));
    assert_eq!((alone.generation_id, alone.members.len()), (3, 1));
    let _: SyncGroupResponse = a.call(ApiKey::SyncGroup, 3, &sync_request(&a_id, 3, &[(&a_id, b"all")]));

    // A leaves (v0 form): the group is empty; now its offsets and the group can go.
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_member_id(StrBytes::from_string(a_id.clone()));
    let resp: LeaveGroupResponse = a.call(ApiKey::LeaveGroup, 0, &leave);
    assert_eq!(resp.error_code, 0);
    assert_eq!(list_groups(&mut a)[0].1, "Empty");
    let resp: OffsetDeleteResponse = a.call(ApiKey::OffsetDelete, 0, &delete_offsets);
    assert_eq!((resp.error_code, resp.topics[0].partitions[0].error_code), (0, 0));
    let resp: DeleteGroupsResponse = a.call(
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(StrBytes::from_static_str("g"))]),
    );
    assert_eq!(
        resp.results[0].error_code, 69,
        "GROUP_ID_NOT_FOUND: it died with its last offset"
    );
    let described: DescribeGroupsResponse = a.call(ApiKey::DescribeGroups, 5, &req);
    assert_eq!(described.groups[0].group_state.as_str(), "Dead");
    s.shutdown();
}

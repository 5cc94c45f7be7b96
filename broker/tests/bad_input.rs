//! Bad input and limits: each case gets an error response or a logged close of that one
//! connection, the log is never corrupted, and a second, well-behaved client is served
//! before, during and after.

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use bytes::BufMut;
use prost::Message;
use runnel_broker::server::{ServerConfig, ServerStats};
use runnel_protocol::messages::*;
use runnel_protocol::{ApiKey, ErrorCode};

use common::wire::{produce_request, TestServer, Wire};

fn raw_frame(key: i16, version: i16, id: i32, body: &[u8], trailer: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.put_u32((12 + body.len() + trailer.len()) as u32);
    f.put_i16(key);
    f.put_i16(version);
    f.put_i32(id);
    f.put_u32(body.len() as u32);
    f.extend_from_slice(body);
    f.extend_from_slice(trailer);
    f
}

/// Sends `frame` and expects a response with `code` for correlation id `id`.
fn expect_error(c: &mut Wire, frame: &[u8], id: i32, code: ErrorCode) -> String {
    c.send_raw(frame);
    let r = c.read_response().expect("an error response, not a close");
    assert_eq!(r.correlation_id, id);
    let e = ErrorResponse::decode(r.body).unwrap();
    assert_eq!(ErrorCode::from_i32(e.error_code), code, "{}", e.error_message);
    assert!(!e.error_message.is_empty());
    e.error_message
}

fn start(cfg: ServerConfig) -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), cfg);
    (dir, s)
}

#[test]
fn bad_requests_get_error_responses_and_the_connection_goes_on() {
    let (_dir, s) = start(ServerConfig::default());
    let mut good = Wire::connect(s.addr);
    good.create_topic("t", 1, &[]);
    let mut c = Wire::connect(s.addr);

    // Garbage protobuf.
    let f = raw_frame(ApiKey::Metadata as i16, 0, 100, &[0xff; 7], &[]);
    let msg = expect_error(&mut c, &f, 100, ErrorCode::InvalidRequest);
    assert!(msg.contains("cannot decode Metadata"), "{msg}");
    good.ping();
    c.ping();
    // Unknown API key, unknown version.
    expect_error(&mut c, &raw_frame(999, 0, 101, &[], &[]), 101, ErrorCode::UnknownApi);
    let msg = expect_error(
        &mut c,
        &raw_frame(ApiKey::Metadata as i16, 9, 102, &[], &[]),
        102,
        ErrorCode::UnsupportedVersion,
    );
    assert!(msg.contains("version 9"), "{msg}");
    // A body length that overruns its frame: the frame boundary is intact.
    let mut f = raw_frame(ApiKey::Metadata as i16, 0, 103, &[], &[]);
    f[12..16].copy_from_slice(&50u32.to_be_bytes());
    expect_error(&mut c, &f, 103, ErrorCode::InvalidRequest);
    // Trailing bytes where none belong.
    expect_error(
        &mut c,
        &raw_frame(ApiKey::Metadata as i16, 0, 104, &[], b"xx"),
        104,
        ErrorCode::InvalidRequest,
    );
    c.ping();
    good.ping();

    // Produce: bad CRC, wrong magic, lengths that do not add up, unknown acks.
    let batch = common::batch(1, 3, 50, 1_000).to_vec();
    let mut bad_crc = batch.clone();
    *bad_crc.last_mut().unwrap() ^= 0x40;
    let mut bad_magic = batch.clone();
    bad_magic[16] = 1;
    for bad in [&bad_crc, &bad_magic] {
        let (r, _) = c.call(&produce_request("t", 0, Acks::All, bad.len()), bad);
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            ErrorCode::from_i32(p.error_code),
            ErrorCode::CorruptMessage,
            "{}",
            p.error_message
        );
    }
    // The frame is well formed, but the partition announces one byte more than it carries.
    let (id, f) = c.frame(
        ApiKey::Produce as i16,
        0,
        &produce_request("t", 0, Acks::All, batch.len() + 1),
        &batch,
    );
    expect_error(&mut c, &f, id, ErrorCode::InvalidRequest);
    let mut req = produce_request("t", 0, Acks::All, batch.len());
    req.acks = 7;
    let (id, f) = c.frame(ApiKey::Produce as i16, 0, &req, &batch);
    expect_error(&mut c, &f, id, ErrorCode::InvalidRequiredAcks);
    // Nothing reached the log; a good batch lands at offset 0.
    assert_eq!(s.storage.partition("t", 0).unwrap().end_offset(), 0);
    assert_eq!(good.produce("t", 0, Acks::All, &batch).base_offset, 0);
    let (p, records) = good.fetch("t", 0, 0, 0);
    assert_eq!((p.high_watermark, records.len()), (3, batch.len()));
    // Unknown topic and partition are per-partition errors.
    let (r, _) = c.call(&produce_request("nope", 0, Acks::All, batch.len()), &batch);
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    let (p, _) = c.fetch("t", 5, 0, 0);
    assert_eq!(p.error_code, ErrorCode::UnknownTopicOrPartition.code());
    let (p, _) = c.fetch("t", 0, 99, 0);
    assert_eq!(p.error_code, ErrorCode::OffsetOutOfRange.code());
    c.ping();
    s.shutdown();
}

#[test]
fn undelimitable_frames_close_only_their_connection() {
    let cfg = ServerConfig {
        max_request_frame_bytes: 1 << 20,
        max_connection_buffer_bytes: 1 << 20,
        ..ServerConfig::default()
    };
    let (_dir, s) = start(cfg);
    let mut good = Wire::connect(s.addr);
    good.create_topic("t", 1, &[]);

    // A length over the limit: an error response naming the limit, then a close.
    let mut c = Wire::connect(s.addr);
    let mut f = raw_frame(ApiKey::Metadata as i16, 0, 7, &[], &[]);
    f[..4].copy_from_slice(&(200u32 << 20).to_be_bytes());
    let msg = expect_error(&mut c, &f, 7, ErrorCode::InvalidRequest);
    assert!(msg.contains("exceeds the limit"), "{msg}");
    assert!(c.is_closed());
    good.ping();

    // A length shorter than the header.
    let mut c = Wire::connect(s.addr);
    let mut f = raw_frame(ApiKey::Metadata as i16, 0, 8, &[], &[]);
    f[..4].copy_from_slice(&3u32.to_be_bytes());
    c.send_raw(&f);
    let _ = c.read_response();
    assert!(c.is_closed());
    good.ping();

    // A truncated frame: the client gives up halfway; nothing is appended.
    let mut c = Wire::connect(s.addr);
    let batch = common::batch(2, 10, 100, 1_000).to_vec();
    let (_, f) = c.frame(
        ApiKey::Produce as i16,
        0,
        &produce_request("t", 0, Acks::All, batch.len()),
        &batch,
    );
    c.send_raw(&f[..f.len() / 2]);
    good.ping();
    c.sock.shutdown(Shutdown::Write).unwrap();
    assert!(c.is_closed());
    assert_eq!(s.storage.partition("t", 0).unwrap().end_offset(), 0);

    // Random garbage, not even a frame.
    let mut c = Wire::connect(s.addr);
    c.send_raw(&[0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    let _ = c.read_response();
    assert!(c.is_closed());

    good.ping();
    assert_eq!(good.produce("t", 0, Acks::Leader, &batch).base_offset, 0);
    assert!(ServerStats::get(&s.stats().connections_rejected) >= 2);
    s.shutdown();
}

#[test]
fn connection_limit_idle_reaping_and_long_poll_bound() {
    let cfg = ServerConfig {
        max_connections: 2,
        // Well above the few hundred milliseconds between `b`'s ping and `c`'s wait
        // below, even on a loaded machine; the long poll (capped at 1.8 s) outlasts it.
        idle_timeout_ms: 800,
        request_timeout_ms: 2_000,
        ..ServerConfig::default()
    };
    let (_dir, s) = start(cfg);
    let mut a = Wire::connect(s.addr);
    let mut b = Wire::connect(s.addr);
    a.create_topic("t", 1, &[]);
    b.ping();
    // A third connection waits to be accepted while two are open.
    let mut c = Wire::connect(s.addr);
    c.sock.set_read_timeout(Some(Duration::from_millis(150))).unwrap();
    let (_, f) = c.frame(ApiKey::ApiVersions as i16, 0, &ApiVersionsRequest::default(), &[]);
    c.send_raw(&f);
    assert!(c.read_response().is_none(), "served beyond max_connections");
    // A long poll outlasts the idle timeout: a waiting client is not idle, and the wait is
    // capped below the request timeout (the client asked for 60 s).
    let started = Instant::now();
    let (p, records) = a.fetch("t", 0, 0, 60_000);
    assert_eq!((p.error_code, records.len()), (0, 0));
    assert!(
        started.elapsed() < Duration::from_millis(2_000),
        "{:?}",
        started.elapsed()
    );
    // `b` was idle all along: reaped, which lets `c` in.
    assert!(b.is_closed());
    c.sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let r = c.read_response().expect("served once a slot is free");
    assert_eq!(ApiVersionsResponse::decode(r.body).unwrap().error_code, 0);
    s.shutdown();
}

#[test]
fn per_connection_memory_is_bounded_and_pipelined_responses_stay_in_order() {
    // The budget holds about one frame: the broker reads the next request only as earlier
    // ones finish, and still answers all of them, in order.
    let cfg = ServerConfig {
        max_request_frame_bytes: 64 * 1024,
        max_connection_buffer_bytes: 64 * 1024,
        ..ServerConfig::default()
    };
    let (_dir, s) = start(cfg);
    let mut good = Wire::connect(s.addr);
    good.create_topic("t", 1, &[("flush.policy", "os")]);
    let mut c = Wire::connect(s.addr);
    let batch = common::batch(3, 40, 1_000, 1_000).to_vec();
    pipeline_produces(&mut c, "t", (0..50).map(|_| batch.clone()), |i, p| {
        assert_eq!((p.error_code, p.base_offset), (0, i as i64 * 40));
        if i % 10 == 0 {
            good.ping();
        }
    });
    s.shutdown();
}

/// Writes one produce request per batch (partition 0 of `topic`) back to back from
/// another thread, and hands each response, checked to come in request order, to `each`.
fn pipeline_produces(
    c: &mut Wire,
    topic: &str,
    batches: impl Iterator<Item = Vec<u8>>,
    mut each: impl FnMut(usize, ProducePartitionResult),
) {
    let mut frames = Vec::new();
    let mut ids = Vec::new();
    for batch in batches {
        let (id, f) = c.frame(
            ApiKey::Produce as i16,
            0,
            &produce_request(topic, 0, Acks::Leader, batch.len()),
            &batch,
        );
        ids.push(id);
        frames.extend_from_slice(&f);
    }
    let mut writer = c.sock.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&frames).unwrap());
    for (i, id) in ids.iter().enumerate() {
        let r = c.read_response().unwrap();
        assert_eq!(r.correlation_id, *id);
        each(
            i,
            ProduceResponse::decode(r.body).unwrap().topics[0].partitions[0].clone(),
        );
    }
    sender.join().unwrap();
}

#[test]
fn pipelined_produce_requests_append_in_request_order() {
    // Requests run as tasks on a 2-thread runtime; without ordering, a burst of
    // back-to-back produce requests for one partition can append out of order (Kafka
    // clients pipeline up to 5 per partition and rely on the order).
    let (_dir, s) = start(ServerConfig::default());
    let mut c = Wire::connect(s.addr);
    c.create_topic("ordered", 1, &[("flush.policy", "os")]);
    // Two records per batch, tagged with the request's number.
    let batches = (0..2_000u64).map(|i| common::batch(i, 2, 16, 1_000).to_vec());
    pipeline_produces(&mut c, "ordered", batches, |i, p| {
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, i as i64 * 2),
            "request {i} appended out of order"
        );
    });
    s.shutdown();
}

#[test]
fn pipelined_offset_commits_take_effect_in_request_order() {
    // As produce requests: of commits sent back to back, the last one sent must win.
    let (_dir, s) = start(ServerConfig::default());
    let mut c = Wire::connect(s.addr);
    c.create_topic("t", 1, &[]);
    let commit = |offset: i64| OffsetCommitRequest {
        group_id: "ordered".into(),
        member_id: String::new(),
        member_epoch: -1,
        group_instance_id: None,
        topics: vec![OffsetCommitTopic {
            topic: "t".into(),
            partitions: vec![OffsetCommitPartition {
                partition: 0,
                offset,
                metadata: String::new(),
            }],
        }],
    };
    for round in 0..20 {
        let mut frames = Vec::new();
        for offset in 0..50 {
            frames.extend(
                c.frame(ApiKey::OffsetCommit as i16, 0, &commit(round * 100 + offset), &[])
                    .1,
            );
            if offset == 25 {
                // An undecodable commit in the middle fails at once; the commits after it
                // still come after the ones before it.
                let (_, mut bad) = c.frame(ApiKey::OffsetCommit as i16, 0, &commit(0), &[]);
                let body = bad.len() - 4;
                bad.truncate(bad.len() - body / 2);
                let len = (bad.len() - 4) as u32;
                bad[..4].copy_from_slice(&len.to_be_bytes());
                frames.extend(bad);
            }
        }
        // And an OffsetFetch in the same burst: it sees the last commit.
        let fetch = OffsetFetchRequest {
            group_id: "ordered".into(),
            ..Default::default()
        };
        frames.extend(c.frame(ApiKey::OffsetFetch as i16, 0, &fetch, &[]).1);
        c.send_raw(&frames);
        for i in 0..51 {
            let r = OffsetCommitResponse::decode(c.read_response().unwrap().body).unwrap();
            let code = if i == 26 {
                r.error_code
            } else {
                r.topics[0].partitions[0].error_code
            };
            assert_eq!(code != 0, i == 26, "response {i}: {r:?}");
        }
        let fetched = OffsetFetchResponse::decode(c.read_response().unwrap().body).unwrap();
        assert_eq!(
            fetched.topics[0].partitions[0].offset,
            round * 100 + 49,
            "round {round}"
        );
    }
    s.shutdown();
}

#[test]
fn a_consumer_that_stops_reading_stalls_no_one_else() {
    let (_dir, s) = start(ServerConfig::default());
    let mut good = Wire::connect(s.addr);
    good.create_topic("t", 1, &[("flush.policy", "os")]);
    for i in 0..64 {
        good.produce("t", 0, Acks::Leader, &common::batch(i, 64, 1_000, 1_000));
    }
    // `slow` asks for everything, twice, and never reads: the socket buffers fill and
    // the broker's writer for that connection parks.
    let mut slow = Wire::connect(s.addr);
    for _ in 0..2 {
        let (_, f) = slow.frame(
            ApiKey::Fetch as i16,
            0,
            &FetchRequest {
                max_wait_ms: 0,
                min_bytes: 1,
                max_bytes: 0,
                topics: vec![FetchTopic {
                    name: "t".into(),
                    partitions: vec![FetchPartition {
                        partition: 0,
                        fetch_offset: 0,
                        max_bytes: 64 << 20,
                        current_leader_epoch: None,
                    }],
                }],
                replica_id: None,
            },
            &[],
        );
        slow.send_raw(&f);
    }
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    for i in 0..20 {
        let r = good.produce("t", 0, Acks::All, &common::batch(100 + i, 4, 100, 1_000));
        let (p, records) = good.fetch("t", 0, r.base_offset, 0);
        assert_eq!(p.error_code, 0);
        assert!(!records.is_empty());
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    drop(slow);
    good.ping();
    s.shutdown();
}

#[test]
fn bad_group_requests_get_clear_errors() {
    let (_dir, s) = start(ServerConfig::default());
    let mut c = Wire::connect(s.addr);
    c.create_topic("t", 2, &[]);
    let join = |group: &str| ConsumerGroupHeartbeatRequest {
        group_id: group.into(),
        member_epoch: 0,
        subscribed_topics: vec!["t".into()],
        ..Default::default()
    };
    let code = |code: i32| ErrorCode::from_i32(code);

    let (r, _) = c.call(&join(""), &[]);
    assert_eq!(code(r.error_code), ErrorCode::InvalidGroupId, "{}", r.error_message);
    let (r, _) = c.call(
        &ConsumerGroupHeartbeatRequest {
            session_timeout_ms: 10,
            ..join("g")
        },
        &[],
    );
    assert_eq!(
        code(r.error_code),
        ErrorCode::InvalidSessionTimeout,
        "{}",
        r.error_message
    );
    let (r, _) = c.call(
        &ConsumerGroupHeartbeatRequest {
            subscribed_topic_regex: "(unclosed".into(),
            subscribed_topics: vec![],
            ..join("g")
        },
        &[],
    );
    assert_eq!(
        code(r.error_code),
        ErrorCode::InvalidRegularExpression,
        "{}",
        r.error_message
    );
    let (r, _) = c.call(
        &ConsumerGroupHeartbeatRequest {
            assignor: "sticky-ish".into(),
            ..join("g")
        },
        &[],
    );
    assert_eq!(
        code(r.error_code),
        ErrorCode::UnsupportedAssignor,
        "{}",
        r.error_message
    );
    let (r, _) = c.call(
        &ConsumerGroupHeartbeatRequest {
            member_id: "ghost".into(),
            member_epoch: 7,
            ..join("g")
        },
        &[],
    );
    assert_eq!(code(r.error_code), ErrorCode::UnknownMemberId, "{}", r.error_message);

    // A real member, then a commit with a future epoch and one for a partition that
    // does not exist.
    let (m, _) = c.call(&join("g"), &[]);
    assert_eq!(code(m.error_code), ErrorCode::None, "{}", m.error_message);
    assert_eq!(m.assignment.iter().map(|t| t.partitions.len()).sum::<usize>(), 2);
    let commit = |epoch: i32, partition: u32| OffsetCommitRequest {
        group_id: "g".into(),
        member_id: m.member_id.clone(),
        member_epoch: epoch,
        group_instance_id: None,
        topics: vec![OffsetCommitTopic {
            topic: "t".into(),
            partitions: vec![OffsetCommitPartition {
                partition,
                offset: 0,
                metadata: String::new(),
            }],
        }],
    };
    // t-9 does not exist: refused as Kafka refuses it, whoever asks.
    let (r, _) = c.call(&commit(m.member_epoch, 9), &[]);
    let p = &r.topics[0].partitions[0];
    assert_eq!(
        code(p.error_code),
        ErrorCode::UnknownTopicOrPartition,
        "{}",
        p.error_message
    );
    assert!(p.error_message.contains("t-9"), "{}", p.error_message);
    let (r, _) = c.call(&commit(m.member_epoch + 5, 0), &[]);
    let p = &r.topics[0].partitions[0];
    assert_eq!(code(p.error_code), ErrorCode::FencedMemberEpoch, "{}", p.error_message);
    let (r, _) = c.call(&commit(m.member_epoch, 0), &[]);
    assert_eq!(code(r.topics[0].partitions[0].error_code), ErrorCode::None);
    // Metadata past the limit.
    let mut big = commit(m.member_epoch, 1);
    big.topics[0].partitions[0].metadata = "x".repeat(5000);
    let (r, _) = c.call(&big, &[]);
    assert_eq!(
        code(r.topics[0].partitions[0].error_code),
        ErrorCode::OffsetMetadataTooLarge
    );
    // Not deletable while it has a member; unknown groups are named as such.
    let (r, _) = c.call(
        &DeleteGroupsRequest {
            group_ids: vec!["g".into(), "nope".into()],
        },
        &[],
    );
    assert_eq!(code(r.results[0].error_code), ErrorCode::NonEmptyGroup);
    assert_eq!(code(r.results[1].error_code), ErrorCode::GroupIdNotFound);
    // Where the group lives.
    let (r, _) = c.call(&FindCoordinatorRequest { group_id: "g".into() }, &[]);
    assert_eq!((r.node_id, r.port), (0, s.addr.port() as u32));
    assert_eq!(r.offsets_partition, runnel_broker::group::partition_for("g"));
    c.ping();
}

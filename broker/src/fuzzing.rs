//! Entry points for the fuzz targets (`fuzz/`, built with the `fuzzing` feature): each runs
//! one decoder the broker runs on bytes it does not control — from the network or from
//! its own files after a crash — the way the broker runs it, without a network or a
//! running broker. None may panic, abort or hang on any input; every error they return is
//! a value the broker turns into an error response, a skipped record or a cut log tail.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use prost::Message;
use runnel_protocol::frame::{self, REQUEST_HEADER_BYTES};
use runnel_protocol::messages::*;
use runnel_protocol::{ApiKey, RecordBatch};

use crate::storage::log::validate_all;
use crate::storage::{Flusher, LogConfig, PartitionLog};

/// The largest native frame the broker accepts by default (`max_request_bytes`).
const MAX_FRAME_BYTES: u32 = 100 << 20;

/// A native request as the connection reads it: the frame check on the first bytes, then
/// the frame split into header, body and trailer, the API and version checked, and the
/// body decoded as that API's request (Raft and controller calls decode their JSON too).
pub fn native_request(data: &[u8]) {
    match frame::check_frame(data, REQUEST_HEADER_BYTES, MAX_FRAME_BYTES) {
        Ok(Some(len)) if len <= data.len() => {}
        _ => return,
    }
    let Ok(f) = frame::parse_request(BytesMut::from(data)) else {
        return;
    };
    let Some(key) = ApiKey::from_i16(f.header.api_key) else {
        return;
    };
    if !crate::native::versions(key).contains(&f.header.api_version) {
        return;
    }
    let body = f.body.freeze();
    fn decode<T: Message + Default>(body: Bytes) -> Option<T> {
        T::decode(body).ok()
    }
    match key {
        ApiKey::Produce => drop(decode::<ProduceRequest>(body)),
        ApiKey::Fetch => drop(decode::<FetchRequest>(body)),
        ApiKey::ListOffsets => drop(decode::<ListOffsetsRequest>(body)),
        ApiKey::Metadata => drop(decode::<MetadataRequest>(body)),
        ApiKey::ApiVersions => drop(decode::<ApiVersionsRequest>(body)),
        ApiKey::CreateTopics => drop(decode::<CreateTopicsRequest>(body)),
        ApiKey::DeleteTopics => drop(decode::<DeleteTopicsRequest>(body)),
        ApiKey::DescribeConfigs => drop(decode::<DescribeConfigsRequest>(body)),
        ApiKey::AlterConfigs => drop(decode::<AlterConfigsRequest>(body)),
        ApiKey::OffsetCommit => drop(decode::<OffsetCommitRequest>(body)),
        ApiKey::OffsetFetch => drop(decode::<OffsetFetchRequest>(body)),
        ApiKey::FindCoordinator => drop(decode::<FindCoordinatorRequest>(body)),
        ApiKey::DescribeGroups => drop(decode::<DescribeGroupsRequest>(body)),
        ApiKey::ListGroups => drop(decode::<ListGroupsRequest>(body)),
        ApiKey::DeleteGroups => drop(decode::<DeleteGroupsRequest>(body)),
        ApiKey::ConsumerGroupHeartbeat => drop(decode::<ConsumerGroupHeartbeatRequest>(body)),
        ApiKey::CreatePartitions => drop(decode::<CreatePartitionsRequest>(body)),
        ApiKey::InitProducerId => drop(decode::<InitProducerIdRequest>(body)),
        ApiKey::DeleteRecords => drop(decode::<DeleteRecordsRequest>(body)),
        ApiKey::BrokerStatus => drop(decode::<BrokerStatusRequest>(body)),
        ApiKey::DescribeCluster => drop(decode::<DescribeClusterRequest>(body)),
        ApiKey::OffsetForLeaderEpoch => drop(decode::<OffsetForLeaderEpochRequest>(body)),
        ApiKey::Raft => {
            if let Some(r) = decode::<RaftRequest>(body) {
                let _ = crate::cluster::network::decode_payload(r.kind, &r.payload);
            }
        }
        ApiKey::ControllerWrite => {
            if let Some(r) = decode::<ControllerWriteRequest>(body) {
                let _ = serde_json::from_slice::<crate::cluster::controller::ControllerCall>(&r.payload);
            }
        }
    }
}

/// A Kafka request as the Kafka listener decodes it: header (in the version its API and
/// version call for), then the body, for every served API and version, under the
/// process's allocation guard (the fuzz target installs it as the global allocator).
pub fn kafka_request(data: &[u8]) {
    crate::kafka::decode_for_fuzzing(Bytes::copy_from_slice(data));
}

/// `data` with the CRC of every whole RecordBatch in it set right, so that a fuzzer
/// reaches what the checks after the CRC look at.
fn with_batch_crcs(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let mut pos = 0usize;
    while out.len() - pos >= 21 {
        let len = i32::from_be_bytes(out[pos + 8..pos + 12].try_into().expect("4 bytes"));
        let Some(total) = usize::try_from(len).ok().map(|l| l + 12) else {
            break;
        };
        if total < 21 || out.len() - pos < total {
            break;
        }
        let crc = runnel_protocol::crc::crc32c(&out[pos + 21..pos + total]);
        out[pos + 17..pos + 21].copy_from_slice(&crc.to_be_bytes());
        pos += total;
    }
    out
}

/// RecordBatch v2 bytes as a Produce carries them, as sent and with their CRCs set right:
/// split into batches, each checked as an append checks it (CRC, lengths, offsets,
/// timestamps, attributes, compression), and records read out of each (decompressing
/// them) as a consumer or a topic codec would.
pub fn record_batches(data: &[u8]) {
    let fixed = with_batch_crcs(data);
    for bytes in [data, &fixed[..]] {
        check_batches(bytes);
    }
}

fn check_batches(data: &[u8]) {
    let cfg = LogConfig::default();
    let _ = validate_all(&mut data.to_vec(), &cfg, None);
    let _ = validate_all(&mut data.to_vec(), &cfg, Some(1_700_000_000_000));
    if let Ok(batches) = RecordBatch::split_all(Bytes::copy_from_slice(data)) {
        for b in batches {
            if let Ok(records) = b.records() {
                for r in records {
                    std::hint::black_box(&r);
                }
            }
        }
    }
}

/// A `.producers` snapshot file's bytes, as read at start (and with a valid checksum
/// appended, so the body's decoder is reached).
pub fn producer_snapshot(data: &[u8]) {
    let _ = crate::storage::producers::ProducerTable::decode(data);
    let mut with_crc = data.to_vec();
    with_crc.extend_from_slice(&runnel_protocol::crc::crc32c(data).to_be_bytes());
    let _ = crate::storage::producers::ProducerTable::decode(&with_crc);
}

/// One offsets-log record (key and value as stored) applied to the groups being rebuilt,
/// then the next; the input is split into records by length prefixes.
pub fn group_log(data: &[u8]) {
    let mut groups = HashMap::new();
    let now = Instant::now();
    let mut rest = data;
    while rest.len() >= 2 {
        let key_len = (rest[0] as usize).min(rest.len() - 2);
        let value_len = (rest[1] as usize).min(rest.len() - 2 - key_len);
        let key = &rest[2..2 + key_len];
        let value = &rest[2 + key_len..2 + key_len + value_len];
        let value = (!value.is_empty()).then_some(value);
        crate::group::store::apply_record(&mut groups, Some(key), value, now);
        rest = &rest[2 + key_len + value_len..];
    }
    for g in groups.values() {
        std::hint::black_box(g.is_dead());
    }
}

/// The metadata Raft log file's bytes, as read at start (records cut at the first torn
/// or corrupt one).
pub fn raft_log(data: &[u8]) {
    let (entries, whole) = crate::cluster::store::decode_records(data);
    assert!(whole <= data.len());
    std::hint::black_box(entries.len());
    // Again with every record's CRC set right, so the JSON decoder is reached.
    let mut fixed = data.to_vec();
    let mut pos = 0usize;
    while fixed.len() - pos >= 8 {
        let len = u32::from_be_bytes(fixed[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        if fixed.len() - pos - 8 < len {
            break;
        }
        let crc = runnel_protocol::crc::crc32c(&fixed[pos + 8..pos + 8 + len]);
        fixed[pos + 4..pos + 8].copy_from_slice(&crc.to_be_bytes());
        pos += 8 + len;
    }
    let (entries, whole) = crate::cluster::store::decode_records(&fixed);
    assert!(whole <= fixed.len());
    std::hint::black_box(entries.len());
}

/// A scratch directory for a file-based target, of this process's own, in memory where
/// there is a tmpfs.
pub fn scratch_dir(target: &str) -> std::path::PathBuf {
    let base = if Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!("runnel-fuzz-{target}-{}", std::process::id()))
}

/// Splits `data` into a segment's three files (lengths from its first bytes).
fn split_segment(data: &[u8]) -> (&[u8], &[u8], &[u8]) {
    if data.len() < 4 {
        return (data, &[], &[]);
    }
    let rest = &data[4..];
    let index_len = (u16::from_be_bytes([data[0], data[1]]) as usize).min(rest.len());
    let time_len = (u16::from_be_bytes([data[2], data[3]]) as usize).min(rest.len() - index_len);
    let (index, rest) = rest.split_at(index_len);
    let (time_index, log) = rest.split_at(time_len);
    (log, index, time_index)
}

/// Opens a partition log whose only segment's `.log`, `.index` and `.timeindex` hold the
/// input (split by the lengths in its first bytes), after a clean stop (indexes trusted
/// after their tail checks) and after a crash (recovery scans the segment), then reads it
/// all and looks offsets up by time: whatever the files hold, opening succeeds or fails
/// with an error, and every read returns whole, valid batches or an error.
pub fn segment_recovery(dir: &Path, data: &[u8]) {
    let (log, index, time_index) = split_segment(data);
    // The log's batches with their CRCs set right, so recovery looks past them.
    let log = &with_batch_crcs(log)[..];
    for clean in [true, false] {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).expect("fuzz dir");
        let base = "00000000000000000000";
        std::fs::write(dir.join(format!("{base}.log")), log).expect("write");
        std::fs::write(dir.join(format!("{base}.index")), index).expect("write");
        std::fs::write(dir.join(format!("{base}.timeindex")), time_index).expect("write");
        let cfg = LogConfig {
            segment_index_bytes: 4096,
            ..LogConfig::default()
        };
        let Ok(opened) = PartitionLog::open(dir, cfg, Flusher::start(1), clean) else {
            continue;
        };
        read_everything(&opened);
        let _ = opened.close();
    }
}

fn read_everything(log: &PartitionLog) {
    let mut next = log.start_offset();
    let mut reads = 0;
    while next < log.end_offset() && reads < 10_000 {
        reads += 1;
        let Ok(r) = log.read(next, 64 * 1024) else { break };
        let Some(region) = r.region else { break };
        let Ok(bytes) = region.read_to_vec() else { break };
        // A read returns whole batches that passed their checks when they were appended
        // or recovered: nothing else may be served.
        let batches = RecordBatch::split_all(Bytes::from(bytes)).expect("a read serves whole batches");
        let last = batches.last().expect("a region holds a batch");
        let after = last.header().next_offset() as u64;
        assert!(after > next, "a read moves forward");
        next = after;
    }
    for ts in [-1, 0, 1_700_000_000_000, i64::MAX] {
        let _ = log.offset_for_timestamp(ts);
    }
}

/// Index files on their own: an offset index and a time index holding the input's two
/// halves, opened, checked against a log of a length and end offset the input chooses,
/// and looked up at offsets, positions and times the input chooses.
pub fn index_files(dir: &Path, data: &[u8]) {
    use crate::storage::offset_index::OffsetIndex;
    use crate::storage::time_index::TimeIndex;
    if data.len() < 24 {
        return;
    }
    let (head, rest) = data.split_at(24);
    let log_bytes = u64::from_be_bytes(head[0..8].try_into().expect("8"));
    let next_offset = u64::from_be_bytes(head[8..16].try_into().expect("8"));
    let target = u64::from_be_bytes(head[16..24].try_into().expect("8"));
    let (idx, tidx) = rest.split_at(rest.len() / 2);
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("fuzz dir");
    let (ip, tp) = (dir.join("0.index"), dir.join("0.timeindex"));
    std::fs::write(&ip, idx).expect("write");
    std::fs::write(&tp, tidx).expect("write");
    if let Ok(index) = OffsetIndex::open(&ip, 0, 4096) {
        if index.is_consistent(log_bytes, Some(next_offset)) {
            let _ = index.lookup_with_next(target, log_bytes);
            let _ = index.lookup_position(target.min(log_bytes));
        }
    }
    if let Ok(index) = TimeIndex::open(&tp, 0, 4096) {
        if index.is_consistent(Some(next_offset)) {
            let _ = index.lookup(target as i64, next_offset);
        }
    }
}

//! Disk faults, injected through the simulated disk (`storage::sim::SimDisk`): EIO on a
//! write, EIO on an fsync, ENOSPC in the middle of a batch, and a read error on a segment.
//! Each fails what it touches with a clear error, never acknowledges what is not durable,
//! never serves a torn batch, and leaves the rest of the broker serving.

mod common;

use common::wire::{TestServer, Wire};
use common::{batch, open, read_all};
use runnel_broker::server::ServerConfig;
use runnel_broker::storage::sim::{Fault, FaultOp, SimDisk};
use runnel_broker::storage::LogConfig;
use runnel_broker::Error;
use runnel_protocol::messages::Acks;
use runnel_protocol::ErrorCode;

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

fn fault(op: FaultOp, path_contains: &str, errno: i32, count: u32) -> Fault {
    Fault {
        op,
        path_contains: path_contains.to_owned(),
        errno,
        count,
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        ..LogConfig::default()
    }
}

#[test]
fn a_write_error_fails_that_append_and_the_log_goes_on() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let (sim, _installed) = SimDisk::install(root.path()).unwrap();
    let log = open(&dir, config(), false);
    for tag in 0..5 {
        log.append(&mut batch(tag, 3, 100, 0)).unwrap();
    }
    sim.inject(fault(FaultOp::Write, ".log", EIO, 1));
    let err = log.append(&mut batch(5, 3, 100, 0)).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("Input/output error"), "{err}");
    assert_eq!(log.end_offset(), 15, "the failed append took no offsets");
    // The next append works and lands where the failed one would have.
    let info = log.append(&mut batch(6, 3, 100, 0)).unwrap();
    assert_eq!(info.base_offset, 15);
    let tags: Vec<String> = read_all(&log, 0, 1 << 20)
        .iter()
        .map(|(_, v)| String::from_utf8_lossy(v).split(':').next().unwrap().to_owned())
        .collect();
    assert_eq!(tags.len(), 18);
    assert!(
        !tags.contains(&"5".to_owned()),
        "nothing of the failed append is served"
    );
    log.close().unwrap();
}

#[test]
fn an_fsync_error_is_never_acknowledged_and_takes_the_log_offline() {
    let root = tempfile::tempdir().unwrap();
    let (sim, _installed) = SimDisk::install(root.path()).unwrap();
    let bad = open(&root.path().join("bad"), config(), false);
    let good = open(&root.path().join("good"), config(), false);
    let (_, wait) = bad.append_durable(&mut batch(0, 2, 100, 0)).unwrap();
    wait.wait_blocking().unwrap();
    sim.inject(fault(FaultOp::Sync, "/bad/", EIO, 1));
    let (_, wait) = bad.append_durable(&mut batch(1, 2, 100, 0)).unwrap();
    let err = wait.wait_blocking().unwrap_err();
    assert!(err.to_string().contains("Input/output error"), "{err}");
    // fsyncgate: a failed fsync is not retried as if it had worked. The log stops
    // taking writes; what was acknowledged before is still read.
    let err = bad.append_durable(&mut batch(2, 2, 100, 0)).map(|_| ()).unwrap_err();
    assert!(matches!(err, Error::LogOffline { .. }), "{err}");
    assert!(
        bad.flush().is_err(),
        "a flush does not report the lost writes as durable"
    );
    assert_eq!(read_all(&bad, 0, 1 << 20)[0].0, 0);
    // Another log on the same disk carries on.
    let (_, wait) = good.append_durable(&mut batch(0, 2, 100, 0)).unwrap();
    wait.wait_blocking().unwrap();
    assert_eq!(sim.failures(), 1);
}

#[test]
fn a_full_disk_mid_batch_serves_no_torn_batch_and_appends_resume() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let (sim, _installed) = SimDisk::install(root.path()).unwrap();
    let log = open(&dir, config(), false);
    for tag in 0..4 {
        let (_, wait) = log.append_durable(&mut batch(tag, 4, 200, 0)).unwrap();
        wait.wait_blocking().unwrap();
    }
    // The disk takes half of the next batch, then is full.
    sim.inject(fault(FaultOp::Write, ".log", ENOSPC, 3));
    for tag in 4..7 {
        let err = log.append(&mut batch(tag, 4, 200, 0)).unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
    }
    assert_eq!(log.end_offset(), 16);
    assert_eq!(read_all(&log, 0, 1 << 20).len(), 16, "only whole batches served");
    // Space returns: appends resume where they stopped, and survive a restart.
    for tag in 7..9 {
        let (_, wait) = log.append_durable(&mut batch(tag, 4, 200, 0)).unwrap();
        wait.wait_blocking().unwrap();
    }
    assert_eq!(log.end_offset(), 24);
    drop(log);
    let log = open(&dir, config(), false);
    let records = read_all(&log, 0, 1 << 20);
    assert_eq!(records.len(), 24);
    for (_, v) in &records {
        let tag: u64 = String::from_utf8_lossy(v).split(':').next().unwrap().parse().unwrap();
        assert!(!(4..7).contains(&tag), "a failed batch came back: {tag}");
    }
}

/// Through the broker: a read error on one partition's segment fails fetches of that
/// partition with a storage error; other partitions, and other clients, are served; the
/// partition reads again once the disk does. An fsync error fails that produce (never an
/// acknowledgement) and only that partition goes offline.
#[test]
fn the_broker_fails_only_what_a_disk_fault_touches() {
    let root = tempfile::tempdir().unwrap();
    let (sim, _installed) = SimDisk::install(root.path()).unwrap();
    let s = TestServer::start(root.path(), ServerConfig::default());
    let mut c = Wire::connect(s.addr);
    c.create_topic("t", 3, &[]);
    for p in 0..3 {
        let r = c.produce("t", p, Acks::All, &batch(p as u64, 5, 100, 0));
        assert_eq!(r.error_code, 0, "{}", r.error_message);
    }

    sim.inject(fault(FaultOp::Read, "/t-0/", EIO, 1_000));
    let (r, _) = c.fetch("t", 0, 0, 0);
    assert_eq!(ErrorCode::from_i32(r.error_code), ErrorCode::StorageError, "{r:?}");
    assert!(r.error_message.contains("Input/output error"), "{}", r.error_message);
    let (r, trailer) = c.fetch("t", 1, 0, 0);
    assert_eq!(r.error_code, 0, "{}", r.error_message);
    assert!(!trailer.is_empty());
    let mut other = Wire::connect(s.addr);
    other.ping();
    sim.clear_faults();
    let (r, trailer) = c.fetch("t", 0, 0, 0);
    assert_eq!(r.error_code, 0, "{}", r.error_message);
    assert!(!trailer.is_empty());

    sim.inject(fault(FaultOp::Sync, "/t-2/", EIO, 1));
    let (resp, _) = c.call(
        &common::wire::produce_request("t", 2, Acks::All, batch(9, 5, 100, 0).len()),
        &batch(9, 5, 100, 0),
    );
    let r = &resp.topics[0].partitions[0];
    assert_eq!(ErrorCode::from_i32(r.error_code), ErrorCode::StorageError, "{r:?}");
    let again = &c
        .call(
            &common::wire::produce_request("t", 2, Acks::All, batch(10, 5, 100, 0).len()),
            &batch(10, 5, 100, 0),
        )
        .0
        .topics[0]
        .partitions[0];
    assert_eq!(
        ErrorCode::from_i32(again.error_code),
        ErrorCode::StorageError,
        "offline: {again:?}"
    );
    let r = c.produce("t", 1, Acks::All, &batch(11, 5, 100, 0));
    assert_eq!(r.error_code, 0, "the other partitions take writes: {}", r.error_message);
    other.ping();
    // (A clean shutdown now fails: it reports the offline log instead of a clean stop.)
    drop(s);
}

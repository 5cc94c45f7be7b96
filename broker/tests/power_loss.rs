//! Simulated power loss (`storage::sim::SimDisk`): a seeded workload — topics created and
//! deleted, records appended under `flush.policy=always`, group offsets committed — is
//! cut at a seeded crash point; the disk is rewritten as a power cut would leave it
//! (every write not covered by an fsync dropped, names not covered by a directory sync
//! undone, or, in the torn runs, a seeded prefix of the unsynced writes kept with the last
//! one cut short); then the broker's storage is opened again and checked:
//!
//! - recovery succeeds;
//! - every acknowledged record is there, once, in order, and so is every acknowledged
//!   topic creation, deletion and offset commit;
//! - nothing is served that was never written whole: every record read back belongs to a
//!   batch that was sent, and that batch is there complete.
//!
//! `RUNNEL_POWER_LOSS_RUNS` sets the number of crash points (default 120, which CI runs;
//! `scripts/power-loss` runs thousands), `RUNNEL_POWER_LOSS_SEED` the first seed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use runnel_broker::group::{Coordinator, GroupConfig, OffsetCommit};
use runnel_broker::storage::sim::SimDisk;
use runnel_broker::storage::{FlushPolicy, LogConfig, LogManager, PartitionLog, StorageConfig};
use runnel_protocol::{BatchBuilder, BatchOptions, Record, RecordBatch};

const STEPS: u64 = 60;
const GROUP: &str = "g";

/// Batches sent to one partition, in order: (tag, records, acknowledged).
type Sent = Vec<(u64, usize, bool)>;

/// What the workload was told: sent (maybe written) and acknowledged (must be there).
#[derive(Default, Debug)]
struct Told {
    /// (topic, partition) → batches sent there.
    batches: BTreeMap<(String, u32), Sent>,
    /// topic → (partitions, state).
    topics: BTreeMap<String, (u32, TopicState)>,
    /// partition of "a" → commits sent, in order: (offset, acknowledged).
    commits: BTreeMap<u32, Vec<(i64, bool)>>,
    /// Partition a-1 is written by an idempotent producer: tag → (base sequence, records,
    /// value bytes) of each batch, and the next sequence.
    idempotent: BTreeMap<u64, (i32, usize, usize)>,
    next_sequence: i32,
}

/// The idempotent producer writing partition a-1.
const PRODUCER_ID: i64 = 7;

/// A batch like `common::batch`, from the idempotent producer, sequences from `seq`.
fn idempotent_batch(tag: u64, n: usize, value_bytes: usize, seq: i32) -> bytes::BytesMut {
    let mut b = BatchBuilder::new(BatchOptions {
        producer_id: PRODUCER_ID,
        producer_epoch: 0,
        base_sequence: seq,
        ..BatchOptions::default()
    });
    for i in 0..n {
        let mut v = format!("{tag}:{i}:").into_bytes();
        v.resize(value_bytes.max(v.len()), b'x');
        b.push(&Record::new(1_700_000_000_000 + tag as i64, None, Some(&v)));
    }
    b.finish().unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TopicState {
    /// Asked for, not acknowledged: may or may not exist.
    Creating,
    Created,
    /// Deletion asked for, not acknowledged.
    Deleting,
    Deleted,
}

fn storage_config(dir: &Path, policy: FlushPolicy) -> StorageConfig {
    StorageConfig {
        log_defaults: LogConfig {
            segment_bytes: 6 * 1024,
            segment_index_bytes: 4096,
            index_interval_bytes: 512,
            flush_policy: policy,
            ..LogConfig::default()
        },
        flush_threads: 1,
        ..StorageConfig::new(dir)
    }
}

fn group_config() -> GroupConfig {
    GroupConfig {
        offsets_segment_bytes: 4096,
        ..GroupConfig::default()
    }
}

/// Runs the workload until it ends or the disk dies. An error while the disk is alive
/// fails the test: faults come only from the crash.
fn workload(dir: &Path, policy: FlushPolicy, seed: u64, sim: &SimDisk, told: &mut Told) {
    let mut rng = StdRng::seed_from_u64(seed);
    let storage = match LogManager::open(storage_config(dir, policy)) {
        Ok(s) => s,
        Err(e) => {
            assert!(sim.crashed(), "open failed without a crash: {e}");
            return;
        }
    };
    let stopped = run_steps(&storage, &mut rng, sim, told);
    if stopped.is_none() {
        // The workload ran to its end: a clean shutdown, which may itself be cut.
        if let Err(e) = storage.shutdown() {
            assert!(sim.crashed(), "shutdown failed without a crash: {e}");
        }
    } else {
        // The machine is dead: stop the threads; their I/O fails.
        let _ = storage.shutdown();
    }
}

/// The steps; `Some(error)` when one failed (the crash).
fn run_steps(storage: &Arc<LogManager>, rng: &mut StdRng, sim: &SimDisk, told: &mut Told) -> Option<String> {
    let fail = |e: String| {
        assert!(sim.crashed(), "failed without a crash: {e}");
        Some(e)
    };
    let coordinator = match Coordinator::open(storage.clone(), group_config()) {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    if let Some(e) = create(storage, told, "a", 2) {
        return fail(e);
    }
    for step in 0..STEPS {
        let roll = rng.random_range(0..100);
        let result = match (step, roll) {
            (10, _) => create(storage, told, "c", 1),
            (20, _) => create(storage, told, "b", 1),
            (30, _) => delete(storage, told, "c"),
            (_, 0..12) => {
                let p = rng.random_range(0..2u32);
                let offset = step as i64;
                let sent = told.commits.entry(p).or_default();
                sent.push((offset, false));
                let commit = OffsetCommit {
                    tp: ("a".into(), p),
                    offset,
                    metadata: String::new(),
                };
                match coordinator.commit(GROUP, "", -1, None, vec![commit]) {
                    Ok((results, wait)) => match (results[0].1.clone(), wait.wait_blocking()) {
                        (Ok(()), Ok(())) => {
                            sent.last_mut().unwrap().1 = true;
                            None
                        }
                        (r, w) => Some(format!("commit: {r:?} {w:?}")),
                    },
                    Err(e) => Some(format!("commit: {e:?}")),
                }
            }
            _ => {
                let b_live = told.topics.get("b").is_some_and(|(_, s)| *s == TopicState::Created);
                let (topic, p) = if b_live && roll % 3 == 0 {
                    ("b", 0)
                } else {
                    ("a", rng.random_range(0..2u32))
                };
                let n = rng.random_range(1..5usize);
                let value_bytes = rng.random_range(50..700usize);
                append(storage, told, topic, p, step, n, value_bytes)
            }
        };
        if let Some(e) = result {
            return fail(e);
        }
    }
    None
}

fn create(storage: &LogManager, told: &mut Told, name: &str, partitions: u32) -> Option<String> {
    told.topics.insert(name.into(), (partitions, TopicState::Creating));
    match storage.create_topic(name, partitions as i64, &BTreeMap::new()) {
        Ok(_) => {
            told.topics.insert(name.into(), (partitions, TopicState::Created));
            None
        }
        Err(e) => Some(format!("create {name}: {e}")),
    }
}

fn delete(storage: &LogManager, told: &mut Told, name: &str) -> Option<String> {
    let partitions = told.topics[name].0;
    told.topics.insert(name.into(), (partitions, TopicState::Deleting));
    match storage.delete_topic(name) {
        Ok(()) => {
            told.topics.insert(name.into(), (partitions, TopicState::Deleted));
            None
        }
        Err(e) => Some(format!("delete {name}: {e}")),
    }
}

fn append(
    storage: &LogManager,
    told: &mut Told,
    topic: &str,
    p: u32,
    tag: u64,
    n: usize,
    value_bytes: usize,
) -> Option<String> {
    let log = match storage.partition(topic, p) {
        Ok(l) => l,
        Err(e) => return Some(format!("{topic}-{p}: {e}")),
    };
    let mut b = if (topic, p) == ("a", 1) {
        // Rolls of this partition write producer-state snapshots.
        let seq = told.next_sequence;
        told.idempotent.insert(tag, (seq, n, value_bytes));
        told.next_sequence += n as i32;
        idempotent_batch(tag, n, value_bytes, seq)
    } else {
        common::batch(tag, n, value_bytes, 1_700_000_000_000 + tag as i64)
    };
    let sent = told.batches.entry((topic.to_owned(), p)).or_default();
    sent.push((tag, n, false));
    match log.append_durable(&mut b) {
        Ok((_, wait)) => match wait.wait_blocking() {
            Ok(()) => {
                sent.last_mut().unwrap().2 = true;
                None
            }
            Err(e) => Some(format!("{topic}-{p} sync: {e}")),
        },
        Err(e) => Some(format!("{topic}-{p} append: {e}")),
    }
}

/// Every record of a log as (offset, tag, index in its batch, records in its batch),
/// each batch CRC-checked as a consumer would.
fn read_back(log: &PartitionLog) -> Vec<(u64, u64, usize)> {
    let mut out = Vec::new();
    let mut next = log.start_offset();
    loop {
        let r = log.read(next, 1 << 20).expect("readable after recovery");
        let Some(region) = r.region else { break };
        let bytes = region.read_to_vec().unwrap();
        let batches = RecordBatch::split_all(bytes.into()).expect("whole, valid batches");
        for b in batches {
            for rec in b.records().expect("records decode") {
                let v = rec.value.expect("a value");
                let text = String::from_utf8_lossy(&v);
                let mut parts = text.split(':');
                let tag: u64 = parts.next().unwrap().parse().unwrap();
                let i: usize = parts.next().unwrap().parse().unwrap();
                out.push((rec.offset as u64, tag, i));
            }
            next = b.header().next_offset() as u64;
        }
    }
    out
}

/// Opens what the power cut left and checks it against what the workload was told.
/// Under `flush.policy=always` every acknowledged batch must be there; under `os`
/// (acknowledged once written to the page cache) the unsynced tail may be lost, so each
/// partition must hold exactly the first batches it was sent — a prefix, nothing lost
/// from before the tail, nothing out of order, nothing torn.
/// Returns how many acknowledged batches were lost (0 unless `os`).
fn check(dir: &Path, policy: FlushPolicy, told: &Told, what: &str) -> usize {
    let mut lost = 0;
    let storage =
        LogManager::open(storage_config(dir, policy)).unwrap_or_else(|e| panic!("{what}: recovery failed: {e}"));
    for (name, (partitions, state)) in &told.topics {
        let found = storage.topic(name);
        match state {
            TopicState::Created => {
                let t = found.unwrap_or_else(|| panic!("{what}: acknowledged topic {name} lost"));
                assert_eq!(t.partitions.len() as u32, *partitions, "{what}: {name}");
            }
            TopicState::Deleted => assert!(found.is_none(), "{what}: deleted topic {name} is back"),
            TopicState::Creating | TopicState::Deleting => {}
        }
    }
    for topic in storage.topics() {
        let state = told.topics.get(&topic.name).map(|(_, s)| *s);
        assert!(
            matches!(
                state,
                Some(TopicState::Created | TopicState::Creating | TopicState::Deleting)
            ),
            "{what}: topic {} exists ({state:?})",
            topic.name
        );
        for (p, log) in topic.partitions.iter().enumerate() {
            let key = (topic.name.clone(), p as u32);
            let sent = told.batches.get(&key).cloned().unwrap_or_default();
            let records = read_back(log);
            // Group the records into batches by tag: each present batch whole, sent
            // here, and the acknowledged ones all present, in order.
            let mut present: Vec<(u64, usize)> = Vec::new();
            for (_, tag, i) in &records {
                match present.last_mut() {
                    Some((t, count)) if t == tag => {
                        assert_eq!(*i, *count, "{what}: {key:?} batch {tag} records out of order");
                        *count += 1;
                    }
                    _ => {
                        assert_eq!(*i, 0, "{what}: {key:?} batch {tag} starts at record {i}");
                        present.push((*tag, 1));
                    }
                }
            }
            let tags: BTreeSet<u64> = present.iter().map(|(t, _)| *t).collect();
            assert_eq!(tags.len(), present.len(), "{what}: {key:?} a batch is there twice");
            let mut order = sent.iter().map(|(t, _, _)| *t);
            for (tag, count) in &present {
                let (_, n, _) = sent
                    .iter()
                    .find(|(t, _, _)| t == tag)
                    .unwrap_or_else(|| panic!("{what}: {key:?} holds batch {tag}, never sent there"));
                assert_eq!(count, n, "{what}: {key:?} batch {tag} is not whole");
                assert!(order.any(|t| t == *tag), "{what}: {key:?} batch {tag} out of order");
            }
            if key == ("a".to_owned(), 1) {
                // The producer state came back (snapshot and replay): a retry of the last
                // acknowledged batch gets its offsets and appends nothing.
                let last_acked = sent.iter().rev().find(|(t, _, acked)| *acked && tags.contains(t));
                if let Some((tag, _, _)) = last_acked {
                    let (seq, n, value_bytes) = told.idempotent[tag];
                    let at = records.iter().find(|(_, t, _)| t == tag).unwrap().0;
                    let end = log.end_offset();
                    let retry = log
                        .append(&mut idempotent_batch(*tag, n, value_bytes, seq))
                        .unwrap_or_else(|e| panic!("{what}: retry of batch {tag}: {e}"));
                    assert_eq!(retry.base_offset, at, "{what}: the retry of batch {tag} is a duplicate");
                    assert_eq!(log.end_offset(), end, "{what}: the retry of batch {tag} appended");
                }
            }
            if policy == FlushPolicy::Os {
                let prefix: Vec<u64> = sent.iter().take(present.len()).map(|(t, _, _)| *t).collect();
                let got: Vec<u64> = present.iter().map(|(t, _)| *t).collect();
                assert_eq!(got, prefix, "{what}: {key:?} holds more than an unsynced tail's loss");
                lost += sent.iter().filter(|(t, _, acked)| *acked && !tags.contains(t)).count();
            } else {
                for (tag, _, acked) in &sent {
                    if *acked {
                        assert!(tags.contains(tag), "{what}: {key:?} acknowledged batch {tag} lost");
                    }
                }
            }
        }
    }
    // Offsets (the offsets log syncs whatever the topics' policy): the last acknowledged
    // commit, or one sent after it.
    let coordinator = Coordinator::open(storage.clone(), group_config())
        .unwrap_or_else(|e| panic!("{what}: offsets log recovery failed: {e}"));
    let committed = coordinator.committed(GROUP, None).unwrap();
    for (p, sent) in &told.commits {
        let last_acked = sent.iter().rposition(|(_, acked)| *acked);
        let got = committed.get(&("a".to_owned(), *p)).map(|c| c.offset);
        match (last_acked, got) {
            (None, None) => {}
            (Some(_), None) => panic!("{what}: acknowledged commit for a-{p} lost"),
            (from, Some(o)) => assert!(
                sent[from.unwrap_or(0)..].iter().any(|(s, _)| *s == o),
                "{what}: a-{p} committed {o}, which is not the last acknowledged commit or a later one: {sent:?}"
            ),
        }
    }
    drop(coordinator);
    storage.shutdown().unwrap();
    lost
}

fn runs(default: u64) -> u64 {
    std::env::var("RUNNEL_POWER_LOSS_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn first_seed() -> u64 {
    std::env::var("RUNNEL_POWER_LOSS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// One crash point: the workload for `seed`, cut at its `crash_at`-th disk operation.
/// Acknowledged batches: (checked, lost).
fn crash_point(policy: FlushPolicy, seed: u64, crash_at: u64, torn: bool) -> (usize, usize) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let (sim, installed) = SimDisk::install(&dir).unwrap();
    sim.crash_after(crash_at);
    let mut told = Told::default();
    workload(&dir, policy, seed, &sim, &mut told);
    sim.crash();
    sim.restore(torn.then_some(seed)).unwrap();
    let what = format!(
        "{policy:?}: seed {seed} crash at op {crash_at}{}",
        if torn { " (torn)" } else { "" }
    );
    let lost = check(&dir, policy, &told, &what);
    drop(installed);
    let acked = told.batches.values().flatten().filter(|(_, _, a)| *a).count();
    (acked, lost)
}

/// Crash points for `policy`: a run without a crash counts the disk operations to
/// choose them from.
fn campaign(policy: FlushPolicy, runs: u64) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let (sim, installed) = SimDisk::install(&dir).unwrap();
    let mut told = Told::default();
    workload(&dir, policy, 0, &sim, &mut told);
    assert!(!sim.crashed());
    let total = sim.ops();
    drop(installed);
    check(&dir, policy, &told, "no crash");
    assert!(total > 100, "the workload does some I/O: {total}");

    let mut rng = StdRng::seed_from_u64(first_seed());
    let (mut acked_total, mut lost_total) = (0, 0);
    for i in 0..runs {
        let seed = first_seed() + i;
        let crash_at = rng.random_range(1..=total);
        let torn = i % 2 == 1;
        let (acked, lost) = crash_point(policy, seed, crash_at, torn);
        acked_total += acked;
        lost_total += lost;
    }
    eprintln!(
        "power loss ({policy:?}): {runs} crash points over {total} disk operations, {acked_total} acknowledged batches checked, {lost_total} lost (unsynced tails), 0 failed recoveries"
    );
}

#[test]
fn acknowledged_data_survives_power_loss_at_any_point() {
    campaign(FlushPolicy::Always, runs(100));
}

#[test]
fn without_fsync_power_loss_costs_only_the_unsynced_tail() {
    campaign(FlushPolicy::Os, runs(100) / 2);
}

// ------------------------------------------------------------------ the whole broker

mod broker {
    //! The same through a running broker (a one-node cluster: its Raft metadata log,
    //! partition logs, offsets log and producer state all on the simulated disk): topics
    //! created, records produced with acks=all and offsets committed over the native
    //! protocol, the power cut at a seeded point after start, the broker started again on
    //! what is left, and everything acknowledged read back through it.

    use super::*;
    use crate::common::wire::{produce_request, TestServer, Wire};
    use prost::Message;
    use runnel_broker::server::ServerConfig;
    use runnel_protocol::messages::*;
    use runnel_protocol::{ErrorCode, Request};

    /// A request that may get no answer (the broker's disk died): the response, or None.
    fn try_call<R: Request>(w: &mut Wire, req: &R, trailer: &[u8]) -> Option<R::Response> {
        let (_, f) = w.frame(R::KEY as i16, R::VERSION, req, trailer);
        w.send_raw(&f);
        let resp = w.read_response()?;
        R::Response::decode(resp.body).ok()
    }

    fn create(w: &mut Wire, name: &str, partitions: i32) -> Option<bool> {
        let r = try_call(
            w,
            &CreateTopicsRequest {
                topics: vec![NewTopic {
                    name: name.into(),
                    partitions,
                    ..Default::default()
                }],
                validate_only: false,
            },
            &[],
        )?;
        Some(r.topics[0].error_code == 0)
    }

    fn commit(w: &mut Wire, p: u32, offset: i64) -> Option<bool> {
        let r = try_call(
            w,
            &OffsetCommitRequest {
                group_id: GROUP.into(),
                member_id: String::new(),
                member_epoch: -1,
                topics: vec![OffsetCommitTopic {
                    topic: "a".into(),
                    partitions: vec![OffsetCommitPartition {
                        partition: p,
                        offset,
                        metadata: String::new(),
                    }],
                }],
                group_instance_id: None,
            },
            &[],
        )?;
        Some(r.error_code == 0 && r.topics[0].partitions[0].error_code == 0)
    }

    /// Runs the workload against a started broker until a request fails.
    fn run(w: &mut Wire, seed: u64, told: &mut Told) {
        let mut rng = StdRng::seed_from_u64(seed);
        told.topics.insert("a".into(), (2, TopicState::Creating));
        if create(w, "a", 2) != Some(true) {
            return;
        }
        told.topics.insert("a".into(), (2, TopicState::Created));
        for step in 0..30u64 {
            if step == 10 {
                told.topics.insert("b".into(), (1, TopicState::Creating));
                if create(w, "b", 1) != Some(true) {
                    return;
                }
                told.topics.insert("b".into(), (1, TopicState::Created));
                continue;
            }
            let p = rng.random_range(0..2u32);
            if rng.random_range(0..100) < 15 {
                let sent = told.commits.entry(p).or_default();
                sent.push((step as i64, false));
                if commit(w, p, step as i64) != Some(true) {
                    return;
                }
                sent.last_mut().unwrap().1 = true;
                continue;
            }
            let b_live = told.topics.get("b").is_some_and(|(_, s)| *s == TopicState::Created);
            let (topic, p) = if b_live && step % 3 == 0 { ("b", 0) } else { ("a", p) };
            let n = rng.random_range(1..5usize);
            let bytes = common::batch(step, n, rng.random_range(50..700usize), 1_700_000_000_000);
            let sent = told.batches.entry((topic.to_owned(), p)).or_default();
            sent.push((step, n, false));
            let Some(r) = try_call(w, &produce_request(topic, p, Acks::All, bytes.len()), &bytes) else {
                return;
            };
            let part = &r.topics[0].partitions[0];
            if r.error_code != 0 || part.error_code != 0 {
                return;
            }
            sent.last_mut().unwrap().2 = true;
        }
    }

    /// Starts the broker on what the power cut left and checks it through the wire.
    fn check(dir: &Path, told: &Told, what: &str) {
        let s = TestServer::start(dir, ServerConfig::default());
        let mut w = Wire::connect(s.addr);
        let (m, _) = w.call(&MetadataRequest::default(), &[]);
        let listed: BTreeMap<String, usize> = m
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .map(|t| (t.name.clone(), t.partitions.len()))
            .collect();
        for (name, (partitions, state)) in &told.topics {
            if *state == TopicState::Created {
                assert_eq!(
                    listed.get(name),
                    Some(&(*partitions as usize)),
                    "{what}: acknowledged topic {name} lost: {listed:?}"
                );
            }
        }
        for (name, partitions) in &listed {
            assert!(told.topics.contains_key(name), "{what}: topic {name} never created");
            for p in 0..*partitions as u32 {
                let key = (name.clone(), p);
                let sent = told.batches.get(&key).cloned().unwrap_or_default();
                let mut present = Vec::new();
                let mut offset = 0i64;
                loop {
                    let (r, trailer) = w.fetch(name, p, offset, 0);
                    assert_eq!(r.error_code, 0, "{what}: fetch {key:?}: {}", r.error_message);
                    if trailer.is_empty() {
                        break;
                    }
                    for b in RecordBatch::split_all(trailer).expect("whole, valid batches") {
                        let records = b.records().expect("records decode");
                        let v = records[0].value.clone().unwrap();
                        let tag: u64 = String::from_utf8_lossy(&v).split(':').next().unwrap().parse().unwrap();
                        present.push((tag, records.len()));
                        offset = b.header().next_offset();
                    }
                }
                for (tag, count) in &present {
                    let (_, n, _) = sent
                        .iter()
                        .find(|(t, _, _)| t == tag)
                        .unwrap_or_else(|| panic!("{what}: {key:?} holds batch {tag}, never sent there"));
                    assert_eq!(count, n, "{what}: {key:?} batch {tag} not whole");
                }
                let tags: BTreeSet<u64> = present.iter().map(|(t, _)| *t).collect();
                assert_eq!(tags.len(), present.len(), "{what}: {key:?} a batch is there twice");
                for (tag, _, acked) in &sent {
                    if *acked {
                        assert!(tags.contains(tag), "{what}: {key:?} acknowledged batch {tag} lost");
                    }
                }
            }
        }
        let (o, _) = w.call(
            &OffsetFetchRequest {
                group_id: GROUP.into(),
                topics: Vec::new(),
            },
            &[],
        );
        assert_eq!(
            ErrorCode::from_i32(o.error_code),
            ErrorCode::None,
            "{what}: {}",
            o.error_message
        );
        for (p, sent) in &told.commits {
            let last_acked = sent.iter().rposition(|(_, acked)| *acked);
            let got = o
                .topics
                .iter()
                .filter(|t| t.topic == "a")
                .flat_map(|t| &t.partitions)
                .find(|x| x.partition == *p && x.offset >= 0)
                .map(|x| x.offset);
            match (last_acked, got) {
                (None, None) => {}
                (Some(_), None) => panic!("{what}: acknowledged commit for a-{p} lost"),
                (from, Some(o)) => assert!(
                    sent[from.unwrap_or(0)..].iter().any(|(s, _)| *s == o),
                    "{what}: a-{p} committed {o}: {sent:?}"
                ),
            }
        }
        s.shutdown();
    }

    fn broker_runs() -> u64 {
        std::env::var("RUNNEL_POWER_LOSS_BROKER_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(8)
    }

    #[test]
    fn a_broker_keeps_what_it_acknowledged_across_power_loss() {
        // A run without a crash counts the operations the workload makes after start.
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        let (sim, installed) = SimDisk::install(&dir).unwrap();
        let s = TestServer::start(&dir, ServerConfig::default());
        let started = sim.ops();
        let mut told = Told::default();
        run(&mut Wire::connect(s.addr), 0, &mut told);
        let total = sim.ops() - started;
        assert!(!sim.crashed());
        s.shutdown();
        drop(installed);
        check(&dir, &told, "no crash");

        let mut rng = StdRng::seed_from_u64(first_seed());
        let runs = broker_runs();
        for i in 0..runs {
            let seed = first_seed() + i;
            let root = tempfile::tempdir().unwrap();
            let dir = root.path().join("data");
            let (sim, installed) = SimDisk::install(&dir).unwrap();
            let s = TestServer::start(&dir, ServerConfig::default());
            let crash_at = rng.random_range(1..=total);
            sim.crash_after(crash_at);
            let mut told = Told::default();
            run(&mut Wire::connect(s.addr), seed, &mut told);
            sim.crash();
            drop(s);
            let torn = i % 2 == 1;
            sim.restore(torn.then_some(seed)).unwrap();
            drop(installed);
            let what = format!(
                "broker seed {seed} crash at op {crash_at}{}",
                if torn { " (torn)" } else { "" }
            );
            check(&dir, &told, &what);
        }
        eprintln!("power loss, whole broker: {runs} crash points over {total} disk operations, 0 lost");
    }
}

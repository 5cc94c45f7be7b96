//! A writer in a child process with `flush.policy=always` records every acknowledged
//! append; the parent kills it with SIGKILL at a random moment, reopens the log, and
//! finds every acknowledged batch intact. Three rounds on the same log, so recovery of one
//! crash is followed by appends and another crash.
//!
//! SIGKILL keeps the page cache, so this proves the acknowledgement protocol and recovery
//! (nothing acknowledged is cut or corrupted by recovery), not survival of power loss.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;
use runnel_broker::storage::{FlushPolicy, Flusher, LogConfig, PartitionLog};
use runnel_protocol::RecordBatch;

const CHILD_DIR_ENV: &str = "RUNNEL_KILL_TEST_DIR";
const WRITERS: u64 = 4;
/// Bounds on the child, should the parent never kill it.
const CHILD_MAX_APPENDS: u64 = 200_000;
const CHILD_MAX_SECS: u64 = 60;

fn config() -> LogConfig {
    LogConfig {
        flush_policy: FlushPolicy::Always,
        segment_bytes: 64 * 1024,
        index_interval_bytes: 1024,
        ..LogConfig::default()
    }
}

/// The child: run only by the parent below, through the test binary itself.
#[test]
#[ignore = "run by acknowledged_appends_survive_sigkill in a child process"]
fn child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else { return };
    let log = PartitionLog::open(dir.as_ref(), config(), Flusher::start(2), false).unwrap();
    let start = Instant::now();
    let stdout = std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let log = log.clone();
            let stdout = stdout.clone();
            std::thread::spawn(move || {
                for seq in 0..CHILD_MAX_APPENDS / WRITERS {
                    if start.elapsed() > Duration::from_secs(CHILD_MAX_SECS) {
                        break;
                    }
                    let tag = w * 1_000_000 + seq;
                    let mut b = common::batch(tag, 1 + (seq % 5) as usize, 100 + (seq % 300) as usize, seq as i64);
                    let (info, wait) = log.append_durable(&mut b).unwrap();
                    wait.wait_blocking().unwrap();
                    let mut out = stdout.lock().unwrap();
                    writeln!(out, "ACK {} {} {}", info.base_offset, info.last_offset, tag).unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked: Vec<(u64, u64, u64)> = Vec::new();
    let mut rng = rand::rng();
    for round in 0..3 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "child_writer",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_acks, started) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() == 4 && f[0] == "ACK" {
                    lines.push((f[1].parse().unwrap(), f[2].parse().unwrap(), f[3].parse().unwrap()));
                    if lines.len() == 20 {
                        let _ = first_acks.send(());
                    }
                }
            }
            lines
        });
        // Kill at a random moment once the writer is under way (however slow its start).
        started
            .recv_timeout(Duration::from_secs(CHILD_MAX_SECS))
            .expect("the child acknowledges appends");
        std::thread::sleep(Duration::from_millis(rng.random_range(0..500)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let round_acks: Vec<(u64, u64, u64)> = reader.join().unwrap();
        assert!(!round_acks.is_empty(), "round {round}: the child acknowledged nothing");
        acked.extend(round_acks);

        let log = PartitionLog::open(dir.path(), config(), Flusher::start(1), false).unwrap();
        for &(base, last, tag) in &acked {
            assert!(
                log.end_offset() > last,
                "round {round}: acknowledged offset {last} lost"
            );
            let region = log.read(base, 1).unwrap().region.unwrap();
            let batch = RecordBatch::new(region.read_to_vec().unwrap().into())
                .unwrap_or_else(|e| panic!("round {round}: batch at {base} is corrupt: {e}"));
            assert_eq!(batch.header().base_offset as u64, base);
            assert_eq!(batch.header().last_offset() as u64, last);
            let records = batch.records().unwrap();
            for (i, r) in records.iter().enumerate() {
                let want = format!("{tag}:{i}:");
                assert!(
                    r.value.as_ref().unwrap().starts_with(want.as_bytes()),
                    "round {round}: wrong record at {}",
                    r.offset
                );
            }
        }
        eprintln!(
            "round {round}: {} acknowledged batches intact, log end {}",
            acked.len(),
            log.end_offset()
        );
    }
}

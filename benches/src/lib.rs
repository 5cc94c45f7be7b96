//! Shared pieces of Runnel's benchmarks: payload and batch generation.
//!
//! Payloads are random: the disk (and any compressing layer below it) writes zeros faster,
//! which would flatter every figure.

pub mod faults;

use bytes::BytesMut;
use rand::{Rng, RngCore, SeedableRng};
use runnel_protocol::{BatchBuilder, BatchOptions, Compression};

/// A deterministic random generator, so runs are comparable.
pub fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// One batch of about `batch_bytes` holding records of `record_bytes` random bytes each.
pub fn random_batch(
    rng: &mut impl RngCore,
    record_bytes: usize,
    batch_bytes: usize,
    compression: Compression,
) -> BytesMut {
    let mut b = BatchBuilder::with_capacity(
        BatchOptions {
            compression,
            ..BatchOptions::default()
        },
        batch_bytes,
    );
    let mut value = vec![0u8; record_bytes];
    let ts = 1_700_000_000_000i64;
    while b.uncompressed_bytes() + record_bytes + 16 <= batch_bytes || b.is_empty() {
        rng.fill_bytes(&mut value);
        let n = b.len() as i64;
        b.push_parts(ts + n, None, Some(&value), &[]);
    }
    b.finish().expect("non-empty batch")
}

/// Records in a batch built by [`random_batch`].
pub fn records_per_batch(record_bytes: usize, batch_bytes: usize) -> usize {
    let mut r = rng(0);
    let b = random_batch(&mut r, record_bytes, batch_bytes, Compression::None);
    runnel_protocol::BatchHeader::parse(&b).expect("valid").record_count as usize
}

/// A random value in `range`, for picking offsets.
pub fn pick(rng: &mut impl Rng, range: std::ops::Range<u64>) -> u64 {
    rng.random_range(range)
}

/// A log of `segments` segments of `segment_bytes`, filled with batches of about
/// `batch_bytes` of `record_bytes` records, for read benchmarks. `flush.policy=os`.
pub fn build_log(
    dir: &std::path::Path,
    segments: usize,
    segment_bytes: u64,
    record_bytes: usize,
    batch_bytes: usize,
) -> std::sync::Arc<runnel_broker::storage::PartitionLog> {
    use runnel_broker::storage::{FlushPolicy, Flusher, LogConfig, PartitionLog};
    let cfg = LogConfig {
        segment_bytes,
        flush_policy: FlushPolicy::Os,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir, cfg, Flusher::start(1), false).expect("open log");
    let mut r = rng(7);
    let template = random_batch(&mut r, record_bytes, batch_bytes, Compression::None);
    while log.segment_base_offsets().len() <= segments {
        let mut b = template.clone();
        log.append(&mut b).expect("append");
    }
    log
}

/// CPU-seconds (user + system, all threads, living and exited) a process has used, from
/// `/proc/PID/stat`.
pub fn process_cpu_secs(pid: u32) -> Result<f64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("broker pid {pid}: {e}"))?;
    // Fields after the parenthesised command name (which may hold spaces): state is the
    // 3rd field of the stat line, utime the 14th and stime the 15th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or("unreadable /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or("unreadable /proc stat")
    };
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    Ok((ticks(14)? + ticks(15)?) as f64 / hz)
}

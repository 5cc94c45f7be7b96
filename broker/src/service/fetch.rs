//! Fetch: long poll over many partitions; records go out as file regions (`sendfile`).
//!
//! Hot path. A read is lock-free (see `PartitionLog::read`) and returns a file region of
//! whole batches; this only collects regions and their lengths, and the connection's
//! writer sends them from the segment files (`net::reply`).
//!
//! Long poll: if fewer than `min_bytes` are available, the fetch waits on each
//! partition's append notification (registered *before* reading, so no append between
//! read and wait is missed) until enough arrives, `max_wait_ms` passes, or the broker
//! starts shutting down. Nothing sleeps in a loop.
//!
//! Limits as Kafka's (KIP-74): the response holds at most `max_bytes` record bytes and
//! each partition at most its `max_bytes`, except that the first batch of the first
//! partition with records comes whole however large, so a consumer always progresses.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use runnel_protocol::ErrorCode;

use super::{Broker, Failure};

use crate::metrics;
use crate::storage::{FileRegion, PartitionLog};

/// What a fetch asks for.
#[derive(Debug, Clone, Default)]
pub struct Fetch {
    pub max_wait_ms: u32,
    pub min_bytes: u32,
    /// Record bytes for the whole response; 0: the broker's `fetch_max_bytes`.
    pub max_bytes: u32,
    pub topics: Vec<FetchTopic>,
    /// A follower broker's fetch (its node id): read up to the log end, not the high
    /// watermark, and count the offsets as its progress.
    pub replica_id: Option<i32>,
}

#[derive(Debug, Clone, Default)]
pub struct FetchTopic {
    pub name: String,
    pub partitions: Vec<FetchPartition>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct FetchPartition {
    pub partition: u32,
    pub offset: i64,
    /// Record bytes for this partition; 0: the broker's default.
    pub max_bytes: u32,
    /// A follower's view of the leader epoch (checked by the leader).
    pub current_leader_epoch: Option<i32>,
}

/// One partition's answer: its bounds, and the region of whole batches to send.
#[derive(Debug)]
pub struct PartitionRead {
    pub partition: u32,
    pub failure: Option<Failure>,
    /// -1 when the partition is unknown.
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub region: Option<FileRegion>,
    /// Records in `region`.
    pub records: u64,
}

struct Wanted {
    topic: usize,
    partition: u32,
    offset: i64,
    max_bytes: u64,
    log: super::Outcome<Arc<PartitionLog>>,
    /// Consumers read up to the high watermark; followers up to the log end.
    committed_only: bool,
}

/// Each topic's partitions read, in request order.
pub async fn fetch(broker: &Arc<Broker>, req: &Fetch) -> Vec<Vec<PartitionRead>> {
    let cfg = broker.config();
    let total_max = match req.max_bytes {
        0 => cfg.fetch_max_bytes,
        n => n.min(cfg.fetch_max_bytes),
    } as u64;
    let wait_ms = (req.max_wait_ms as u64).min(cfg.fetch_max_wait_ms());
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    let wanted: Vec<Wanted> = req
        .topics
        .iter()
        .enumerate()
        .flat_map(|(ti, t)| {
            t.partitions.iter().map(move |p| Wanted {
                topic: ti,
                partition: p.partition,
                offset: p.offset,
                max_bytes: match p.max_bytes {
                    0 => cfg.fetch_partition_default_bytes as u64,
                    n => n as u64,
                },
                log: match req.replica_id {
                    None => super::cluster::led_partition(broker, &t.name, p.partition),
                    Some(replica) => broker
                        .replication
                        .follower_fetch(&crate::replication::FollowerFetch {
                            replica,
                            topic: &t.name,
                            partition: p.partition,
                            offset: p.offset,
                            current_leader_epoch: p.current_leader_epoch,
                        })
                        .map_err(Failure::from),
                },
                committed_only: req.replica_id.is_none(),
            })
        })
        .collect();

    let any_log = wanted.iter().any(|w| w.log.is_ok());
    // The first read registers nothing: a fetch that finds data (the common case) costs
    // no waiter allocations. Only a read that comes up short registers and reads again.
    let mut waiting = false;
    loop {
        // Register for appends first, then read: an append in between wakes us.
        let mut woken: Vec<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = if waiting {
            wanted
                .iter()
                .filter_map(|w| w.log.as_ref().ok())
                .map(|log| Box::pin(log.appended().notified()) as Pin<Box<dyn Future<Output = ()> + Send>>)
                .collect()
        } else {
            Vec::new()
        };
        let reading = std::time::Instant::now();
        let (reads, bytes, failed) = read_all(&wanted, total_max);
        metrics::add_storage(reading.elapsed());
        let now = tokio::time::Instant::now();
        if bytes >= req.min_bytes as u64 || failed || now >= deadline || !any_log || broker.is_shutting_down() {
            count(broker, req, &reads);
            return by_topic(req, reads);
        }
        drop(reads);
        if !waiting {
            waiting = true;
            continue;
        }
        metrics::waiting(async {
            tokio::select! {
                _ = futures::future::select_all(woken.iter_mut()) => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = broker.shutting_down() => {}
            }
        })
        .await;
    }
}

/// Counts what a fetch sends (records and bytes per topic or partition to consumers, bytes
/// to followers) and the error codes in its answer.
fn count(broker: &Broker, req: &Fetch, reads: &[(usize, PartitionRead)]) {
    for (ti, r) in reads {
        if let Some(f) = &r.failure {
            metrics::note_error(f.code);
        }
        if let Some(region) = &r.region {
            if req.replica_id.is_some() {
                broker.metrics().replica_bytes_out.inc_by(region.len);
                continue;
            }
            let traffic = broker.metrics().traffic(&req.topics[*ti].name, r.partition);
            traffic.records_out.inc_by(r.records);
            traffic.bytes_out.inc_by(region.len);
        }
    }
}

/// Reads every wanted partition within the total budget. Returns the reads (with each
/// one's topic index), the record bytes, and whether any failed.
fn read_all(wanted: &[Wanted], total_max: u64) -> (Vec<(usize, PartitionRead)>, u64, bool) {
    let mut reads = Vec::with_capacity(wanted.len());
    let mut total = 0u64;
    let mut failed = false;
    for w in wanted {
        let mut r = PartitionRead {
            partition: w.partition,
            failure: None,
            high_watermark: -1,
            log_start_offset: -1,
            region: None,
            records: 0,
        };
        match &w.log {
            Err(f) => {
                r.failure = Some(f.clone());
                failed = true;
            }
            Ok(log) => {
                let budget = w.max_bytes.min(total_max.saturating_sub(total));
                if w.offset < 0 {
                    r.failure = Some(Failure::new(
                        ErrorCode::OffsetOutOfRange,
                        format!("negative fetch offset {}", w.offset),
                    ));
                    failed = true;
                } else if budget == 0 {
                    // Out of budget: report the bounds only, so the client knows to ask again.
                    r.high_watermark = log.high_watermark() as i64;
                    r.log_start_offset = log.start_offset() as i64;
                } else {
                    let hw = log.high_watermark();
                    let upto = if w.committed_only { hw } else { u64::MAX };
                    match log.read_upto(w.offset as u64, budget, upto) {
                        Ok(read) => {
                            r.high_watermark = hw as i64;
                            r.log_start_offset = read.start_offset as i64;
                            // A read returns at least one batch, however large; only the
                            // first partition with records may go over the budget that
                            // way (KIP-74), so the response exceeds `max_bytes` by its
                            // first batch at most. A later partition's oversized first
                            // batch waits for a fetch of its own.
                            let over = read.region.as_ref().is_some_and(|g| total > 0 && g.len > budget);
                            if let Some(region) = read.region.filter(|_| !over) {
                                r.records = read.records;
                                total += region.len;
                                r.region = Some(region);
                            }
                        }
                        Err(e) => {
                            r.failure = Some(Failure::from(&e));
                            r.high_watermark = log.high_watermark() as i64;
                            r.log_start_offset = log.start_offset() as i64;
                            failed = true;
                        }
                    }
                }
            }
        }
        reads.push((w.topic, r));
    }
    (reads, total, failed)
}

/// The reads grouped by topic, in request order.
fn by_topic(req: &Fetch, reads: Vec<(usize, PartitionRead)>) -> Vec<Vec<PartitionRead>> {
    let mut topics: Vec<Vec<PartitionRead>> = req
        .topics
        .iter()
        .map(|t| Vec::with_capacity(t.partitions.len()))
        .collect();
    for (ti, r) in reads {
        topics[ti].push(r);
    }
    topics
}

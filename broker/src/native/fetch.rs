//! Fetch: long poll over many partitions; records go out with `sendfile`.
//!
//! Hot path. A read is lock-free (see `PartitionLog::read`) and returns a file region of
//! whole batches; this handler only collects regions and their lengths, and the
//! connection's writer sends them from the segment files (`net::reply`).
//!
//! Long poll: if fewer than `min_bytes` are available, the handler waits on each
//! partition's append notification (registered *before* reading, so no append between
//! read and wait is missed) until enough arrives, `max_wait_ms` passes, or the broker
//! starts shutting down. Nothing sleeps in a loop.

use std::future::Future;
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use runnel_protocol::messages::{FetchPartitionResult, FetchRequest, FetchResponse, FetchTopicResult};
use runnel_protocol::ErrorCode;

use super::code_and_message;
use crate::error::Result;
use crate::metrics;
use crate::service::Broker;
use crate::storage::{FileRegion, PartitionLog};

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

struct Wanted {
    topic: usize,
    partition: u32,
    offset: i64,
    max_bytes: u64,
    log: Result<Arc<PartitionLog>>,
}

pub async fn handle(broker: &Arc<Broker>, req: FetchRequest) -> (FetchResponse, Vec<FileRegion>) {
    let cfg = &broker.config();
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
                offset: p.fetch_offset,
                max_bytes: match p.max_bytes {
                    0 => cfg.fetch_partition_default_bytes as u64,
                    n => n as u64,
                },
                log: broker.storage.partition(&t.name, p.partition),
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
        let (results, regions, bytes, failed) = read_all(&wanted, total_max);
        metrics::add_storage(reading.elapsed());
        let now = tokio::time::Instant::now();
        if bytes >= req.min_bytes as u64 || failed || now >= deadline || !any_log || broker.is_shutting_down() {
            count(broker, &req, &results);
            return (assemble(&req, results), regions);
        }
        drop(regions);
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

/// Counts what a fetch sends (records and bytes per topic or partition) and the error
/// codes in its answer.
fn count(broker: &Broker, req: &FetchRequest, results: &[(usize, FetchPartitionResult, u64)]) {
    for (ti, r, records) in results {
        metrics::note_error_code(r.error_code);
        if r.records_bytes > 0 {
            let traffic = broker.metrics().traffic(&req.topics[*ti].name, r.partition);
            traffic.records_out.inc_by(*records);
            traffic.bytes_out.inc_by(r.records_bytes as u64);
        }
    }
}

/// Per partition: its topic's index in the request, its result, and the records in its
/// region.
type Read = (usize, FetchPartitionResult, u64);

/// Reads every wanted partition within the total budget. Returns the per-partition
/// results, the regions in the same order, the record bytes, and whether any failed.
///
/// Limits as Kafka's (KIP-74): the response holds at most `total_max` record bytes and
/// each partition at most its `max_bytes`, except that the first batch of the first
/// partition with records comes whole however large, so a consumer always progresses.
fn read_all(wanted: &[Wanted], total_max: u64) -> (Vec<Read>, Vec<FileRegion>, u64, bool) {
    let mut results = Vec::with_capacity(wanted.len());
    let mut regions = Vec::new();
    let mut total = 0u64;
    let mut failed = false;
    for w in wanted {
        let mut r = FetchPartitionResult {
            partition: w.partition,
            high_watermark: -1,
            log_start_offset: -1,
            ..Default::default()
        };
        let mut records = 0;
        match &w.log {
            Err(e) => {
                (r.error_code, r.error_message) = code_and_message(e);
                failed = true;
            }
            Ok(log) => {
                let budget = w.max_bytes.min(total_max.saturating_sub(total));
                if w.offset < 0 {
                    r.error_code = ErrorCode::OffsetOutOfRange.code();
                    r.error_message = format!("negative fetch offset {}", w.offset);
                    failed = true;
                } else if budget == 0 {
                    // Out of budget: report the bounds only, so the client knows to ask again.
                    r.high_watermark = log.end_offset() as i64;
                    r.log_start_offset = log.start_offset() as i64;
                } else {
                    match log.read(w.offset as u64, budget) {
                        Ok(read) => {
                            r.high_watermark = read.end_offset as i64;
                            r.log_start_offset = read.start_offset as i64;
                            // A read returns at least one batch, however large; only the
                            // first partition with records may go over the budget that
                            // way (KIP-74), so the response exceeds `max_bytes` by its
                            // first batch at most. A later partition's oversized first
                            // batch waits for a fetch of its own.
                            let over = read.region.as_ref().is_some_and(|g| total > 0 && g.len > budget);
                            if let Some(region) = read.region.filter(|_| !over) {
                                records = read.records;
                                r.records_bytes = region.len as u32;
                                total += region.len;
                                regions.push(region);
                            }
                        }
                        Err(e) => {
                            (r.error_code, r.error_message) = code_and_message(&e);
                            r.high_watermark = log.end_offset() as i64;
                            r.log_start_offset = log.start_offset() as i64;
                            failed = true;
                        }
                    }
                }
            }
        }
        results.push((w.topic, r, records));
    }
    (results, regions, total, failed)
}

fn assemble(req: &FetchRequest, results: Vec<Read>) -> FetchResponse {
    let mut topics: Vec<FetchTopicResult> = req
        .topics
        .iter()
        .map(|t| FetchTopicResult {
            name: t.name.clone(),
            partitions: Vec::with_capacity(t.partitions.len()),
        })
        .collect();
    // `results` is in request order, so each topic's partitions (and the trailer's
    // regions) stay in request order too.
    for (ti, r, _) in results {
        topics[ti].partitions.push(r);
    }
    FetchResponse {
        topics,
        ..Default::default()
    }
}

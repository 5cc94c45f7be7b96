//! Group commit: a small pool of threads that run `fdatasync` for partition logs, off the
//! async runtime.
//!
//! A log is queued at most once at a time. A thread that takes it runs sync passes until
//! no waiter is left: each pass reads the log's end offset, syncs, and completes every
//! waiter at or below it. Appends that arrive while a sync runs wait for the next pass,
//! which covers all of them with one `fdatasync` — so with many concurrent producers the
//! number of syncs per second stays near 1 / (sync latency) while bytes per sync grow.
//!
//! Concurrency: the queue is a `Mutex<VecDeque>` + `Condvar`, held only to push or pop.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::log::PartitionLog;

/// Default number of sync threads. Two keep one slow device sync from stalling every
/// other partition's acknowledgements.
pub const DEFAULT_FLUSH_THREADS: usize = 2;

pub struct Flusher {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Sync and recovery figures of every log this flusher serves (metrics).
    pub stats: StorageStats,
}

/// What storage reports to metrics: fdatasync count and latency, appends each sync made
/// durable (group commit at work), and what recovery cut at start.
#[derive(Debug)]
pub struct StorageStats {
    pub fsyncs: prometheus_client::metrics::counter::Counter,
    pub fsync_seconds: prometheus_client::metrics::histogram::Histogram,
    pub appends_per_fsync: prometheus_client::metrics::histogram::Histogram,
    pub recovery_truncated_bytes: std::sync::atomic::AtomicU64,
}

impl Default for StorageStats {
    fn default() -> Self {
        use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
        StorageStats {
            fsyncs: Default::default(),
            // 50 µs to ~3.3 s.
            fsync_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 17)),
            // 1 to 4096.
            appends_per_fsync: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            recovery_truncated_bytes: Default::default(),
        }
    }
}

struct Shared {
    queue: Mutex<VecDeque<Arc<PartitionLog>>>,
    ready: Condvar,
    stopping: AtomicBool,
}

impl Flusher {
    pub fn start(threads: usize) -> Arc<Flusher> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            stopping: AtomicBool::new(false),
        });
        let handles = (0..threads.max(1))
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("runnel-flush-{i}"))
                    .spawn(move || worker(&shared))
                    .expect("spawn flush thread")
            })
            .collect();
        Arc::new(Flusher {
            shared,
            threads: Mutex::new(handles),
            stats: StorageStats::default(),
        })
    }

    /// Queues `log` for a sync pass. Returns false if the flusher is stopping (the caller
    /// fails its waiters instead).
    pub(crate) fn enqueue(&self, log: Arc<PartitionLog>) -> bool {
        if self.shared.stopping.load(Ordering::Acquire) {
            return false;
        }
        crate::sync::lock(&self.shared.queue).push_back(log);
        self.shared.ready.notify_one();
        true
    }

    /// Finishes queued passes, then stops the threads.
    pub fn shutdown(&self) {
        {
            // Under the queue lock: a worker checks `stopping` under it before waiting, so
            // it either sees the flag or is already waiting when the notify comes.
            let _q = crate::sync::lock(&self.shared.queue);
            self.shared.stopping.store(true, Ordering::Release);
        }
        self.shared.ready.notify_all();
        let handles = std::mem::take(&mut *crate::sync::lock(&self.threads));
        for h in handles {
            // The last reference to the pool can be dropped on one of its own threads (it
            // held the last log); that thread exits by itself once it sees `stopping`.
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn worker(shared: &Shared) {
    loop {
        let log = {
            let mut q = crate::sync::lock(&shared.queue);
            loop {
                if let Some(log) = q.pop_front() {
                    break log;
                }
                if shared.stopping.load(Ordering::Acquire) {
                    return;
                }
                q = shared.ready.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        log.run_sync_passes();
    }
}

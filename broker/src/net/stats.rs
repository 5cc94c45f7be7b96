//! Byte counters of one server, read by tests and (later) metrics. Relaxed atomics:
//! each counter is independent and only ever added to.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct ServerStats {
    /// Bytes written to sockets from user-space buffers (frame headers, protobuf bodies).
    pub bytes_written: AtomicU64,
    /// Record bytes sent from segment files with `sendfile(2)`, never through user space.
    pub bytes_sendfile: AtomicU64,
    /// Record bytes read from segment files into user space to go out through TLS.
    pub bytes_copied: AtomicU64,
    /// TLS handshakes that failed or did not finish in time (the connection closed).
    pub tls_handshake_failures: AtomicU64,
    /// Request bytes read from sockets.
    pub bytes_read: AtomicU64,
    /// Kafka produce record bytes copied out of their request (the frame was still
    /// shared, or small); the rest were stamped and appended where they were read.
    pub kafka_produce_copied_bytes: AtomicU64,
    pub requests: AtomicU64,
    pub connections_accepted: AtomicU64,
    /// Connections closed by the broker for a protocol violation or a limit.
    pub connections_rejected: AtomicU64,
}

impl ServerStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

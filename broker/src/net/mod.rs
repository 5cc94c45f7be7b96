//! The connection machinery both listeners share, with no protocol types: the accept
//! loop and its connection limit ([`listener`]), a connection's reader, request tasks
//! and in-order writer ([`connection`], with its `Protocol` trait that each
//! protocol implements), the per-connection apply order ([`order`]), replies with their
//! `sendfile` regions ([`reply`]), the limits ([`config`]) and byte counters
//! ([`stats`]); [`capture`] copies request frames out for the fuzz corpus when asked to.
//!
//! [`Net`] is what every connection shares: limits, counters, metrics and the shutdown
//! signal. The server owns it; the service layer holds it too (request timeouts, the
//! long poll's shutdown check).

pub mod capture;
pub mod config;
pub mod connection;
pub mod listener;
pub mod order;
pub mod reply;
pub mod stats;

use std::sync::Arc;

use tokio::sync::watch;

pub use config::ServerConfig;
pub use stats::ServerStats;

use crate::metrics::Metrics;

/// Shared by every connection and request. Immutable but for the atomics in `stats`,
/// the metrics' own, and the shutdown signal.
pub struct Net {
    pub config: ServerConfig,
    pub stats: ServerStats,
    pub metrics: Arc<Metrics>,
    shutdown: watch::Sender<bool>,
}

impl Net {
    pub fn new(config: ServerConfig, metrics: Arc<Metrics>) -> Net {
        Net {
            config,
            stats: ServerStats::default(),
            metrics,
            shutdown: watch::channel(false).0,
        }
    }

    /// Resolves once shutdown has begun.
    pub async fn shutting_down(&self) {
        let mut rx = self.shutdown.subscribe();
        let _ = rx.wait_for(|stop| *stop).await;
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Begins shutdown: listeners stop accepting, connections stop reading.
    pub fn stop(&self) {
        // `send_replace`, not `send`: `send` leaves the value unchanged when no receiver
        // happens to exist at this instant, and tasks subscribing later would never stop.
        self.shutdown.send_replace(true);
    }
}

//! The network server: the native protocol over TCP, on tokio.
//!
//! - [`listener`] accepts connections (bounded by a semaphore) until shutdown.
//! - [`connection`] reads frames, runs each request as its own task, and writes the
//!   responses back in request order.
//! - [`dispatch`] checks the API key and version and decodes the body for the handler.
//! - [`handlers`] holds one file per API.
//! - [`reply`] writes responses, sending fetched records with `sendfile`.
//!
//! # Lifecycle
//!
//! [`Server::bind`] binds and starts accepting on the current tokio runtime.
//! [`Server::shutdown`] stops accepting, stops reading new requests, lets every request
//! already read finish and be answered (long-poll fetches answer at once), then closes
//! storage cleanly (sync, checkpoint, clean-shutdown marker).

pub mod config;
pub mod connection;
pub mod dispatch;
pub mod handlers;
pub mod listener;
pub mod reply;
pub mod stats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

pub use config::ServerConfig;
pub use stats::ServerStats;

use crate::error::{Error, Result};
use crate::group::Coordinator;
use crate::metrics::Metrics;
use crate::storage::LogManager;

/// What every connection and handler shares. Owned by the [`Server`]; handlers hold an
/// `Arc`. Immutable but for the atomics in `stats` and the shutdown signal.
pub struct Broker {
    pub storage: Arc<LogManager>,
    /// The consumer-group coordinator (every group, on a single broker).
    pub groups: Arc<Coordinator>,
    pub config: ServerConfig,
    pub stats: ServerStats,
    /// The node id of this broker in Metadata (a single broker is node 0).
    pub node_id: i32,
    pub advertised_host: String,
    pub advertised_port: u16,
    /// The Kafka listener's port (advertised in Kafka Metadata), if it runs.
    pub kafka_port: Option<u16>,
    /// The next idempotent producer id: see [`Broker::new_producer_id`].
    next_producer_id: std::sync::atomic::AtomicI64,
    pub metrics: Arc<Metrics>,
    shutdown: watch::Sender<bool>,
}

impl Broker {
    /// A new idempotent producer id (InitProducerId, native and Kafka):
    /// `(broker start time in ms) << 20` plus a counter, unique across restarts unless
    /// more than a million are handed out per millisecond of uptime.
    pub fn new_producer_id(&self) -> i64 {
        self.next_producer_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Resolves once shutdown has begun.
    pub async fn shutting_down(&self) {
        let mut rx = self.shutdown.subscribe();
        let _ = rx.wait_for(|stop| *stop).await;
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// A running server. Dropping it without [`Server::shutdown`] stops accepting but leaves
/// storage to be closed uncleanly (the next start recovers).
pub struct Server {
    broker: Arc<Broker>,
    local_addr: SocketAddr,
    kafka_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    /// Each connection task holds a clone; `recv` returns `None` once all have ended.
    connections_done: mpsc::Receiver<()>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `config.listen` and starts serving `storage` on the current tokio runtime.
    pub async fn bind(storage: Arc<LogManager>, config: ServerConfig) -> Result<Server> {
        let metrics = Metrics::new(config.metrics_per_partition);
        Server::bind_with_metrics(storage, config, metrics).await
    }

    /// As `bind`, reporting into `metrics` (which a metrics endpoint started before
    /// storage was opened may already serve).
    pub async fn bind_with_metrics(
        storage: Arc<LogManager>,
        config: ServerConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Server> {
        config.validate().map_err(|reason| Error::InvalidConfig {
            key: "server".into(),
            value: String::new(),
            reason,
        })?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Io {
                op: "listen on",
                path: config.listen.to_string().into(),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Io {
            op: "read address of",
            path: config.listen.to_string().into(),
            source,
        })?;
        let kafka_listener = match config.kafka_listen {
            None => None,
            Some(addr) => match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => Some(l),
                Err(e) if config.kafka_listen_is_default && e.kind() == std::io::ErrorKind::AddrInUse => {
                    warn!(
                        "KAFKA LISTENER NOT STARTED: {addr} is already in use (another Kafka broker?); \
                         pick a free port with --kafka-listen HOST:PORT, or --kafka-listen off"
                    );
                    None
                }
                Err(source) => {
                    return Err(Error::Io {
                        op: "listen (Kafka protocol; `--kafka-listen off` disables it) on",
                        path: addr.to_string().into(),
                        source,
                    })
                }
            },
        };
        let kafka_addr = kafka_listener.as_ref().and_then(|l| l.local_addr().ok());
        let metrics_listener = match config.metrics_listen {
            None => None,
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Io {
                op: "listen (metrics; `--metrics-listen off` disables it) on",
                path: addr.to_string().into(),
                source,
            })?),
        };
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        let groups = {
            let storage = storage.clone();
            let cfg = config.group.clone();
            tokio::task::spawn_blocking(move || Coordinator::open(storage, cfg))
                .await
                .map_err(|_| Error::ShuttingDown)??
        };
        let (shutdown, _) = watch::channel(false);
        let mut stop = shutdown.subscribe();
        tokio::spawn(groups.clone().run(async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
        let broker = Arc::new(Broker {
            storage,
            groups,
            advertised_host: config
                .advertised_host
                .clone()
                .unwrap_or_else(|| local_addr.ip().to_string()),
            advertised_port: local_addr.port(),
            kafka_port: kafka_addr.map(|a| a.port()),
            next_producer_id: std::sync::atomic::AtomicI64::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_millis() as i64)
                    << 20,
            ),
            config,
            stats: ServerStats::default(),
            node_id: 0,
            metrics: metrics.clone(),
            shutdown,
        });
        metrics.attach(&broker);
        if let (Some(listener), Some(addr)) = (metrics_listener, metrics_addr) {
            let b = broker.clone();
            tokio::spawn(crate::metrics::http::serve(listener, metrics.clone(), async move {
                b.shutting_down().await
            }));
            info!(listen = %addr, "listening (metrics: /metrics, /health, /ready)");
        }
        let (done_tx, connections_done) = mpsc::channel(1);
        let kafka_done = done_tx.clone();
        let accept_task = tokio::spawn(listener::accept_loop::<connection::Native>(
            broker.clone(),
            listener,
            done_tx,
        ));
        info!(listen = %local_addr, "listening (native protocol)");
        if let (Some(listener), Some(addr)) = (kafka_listener, kafka_addr) {
            tokio::spawn(listener::accept_loop::<crate::kafka::Kafka>(
                broker.clone(),
                listener,
                kafka_done,
            ));
            info!(listen = %addr, "listening (Kafka protocol)");
        }
        metrics.ready.store(true, std::sync::atomic::Ordering::Release);
        Ok(Server {
            broker,
            local_addr,
            kafka_addr,
            metrics_addr,
            connections_done,
            accept_task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The Kafka listener's bound address, if it runs.
    pub fn kafka_addr(&self) -> Option<SocketAddr> {
        self.kafka_addr
    }

    /// The metrics endpoint's bound address, if this server runs one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    pub fn stats(&self) -> &ServerStats {
        &self.broker.stats
    }

    /// Graceful stop: stop accepting, answer every request already read, then close
    /// storage cleanly. Connections still busy after the request timeout are abandoned
    /// (their requests' appends are in the log; they just go unanswered).
    pub async fn shutdown(mut self) -> Result<()> {
        info!("shutting down: no new connections or requests");
        self.broker
            .metrics
            .ready
            .store(false, std::sync::atomic::Ordering::Release);
        // `send_replace`, not `send`: `send` leaves the value unchanged when no receiver
        // happens to exist at this instant, and tasks subscribing later would never stop.
        self.broker.shutdown.send_replace(true);
        let _ = (&mut self.accept_task).await;
        let grace = Duration::from_millis(self.broker.config.request_timeout_ms);
        if tokio::time::timeout(grace, self.connections_done.recv()).await.is_err() {
            warn!("connections still busy after the request timeout; closing storage anyway");
        }
        let storage = self.broker.storage.clone();
        tokio::task::spawn_blocking(move || storage.shutdown())
            .await
            .map_err(|_| Error::ShuttingDown)?
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.broker.shutdown.send_replace(true);
        self.accept_task.abort();
    }
}

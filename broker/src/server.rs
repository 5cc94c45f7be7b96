//! The server: binds the listeners and puts the layers together — the connection
//! machinery ([`crate::net`]) serving the native protocol ([`crate::native`]) and the
//! Kafka protocol ([`crate::kafka`]) against the service layer ([`crate::service`]), with
//! the metrics endpoint beside them.
//!
//! # Lifecycle
//!
//! [`Server::bind`] binds and starts accepting on the current tokio runtime.
//! [`Server::shutdown`] stops accepting, stops reading new requests, lets every request
//! already read finish and be answered (long-poll fetches answer at once), then closes
//! storage cleanly (sync, checkpoint, clean-shutdown marker).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{info, warn};

pub use crate::net::{ServerConfig, ServerStats};
pub use crate::service::Broker;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::group::Coordinator;
use crate::metrics::Metrics;
use crate::native::dispatch::Native;
use crate::net::{listener, Net};
use crate::storage::LogManager;

/// A running server. Dropping it without [`Server::shutdown`] stops accepting but leaves
/// storage to be closed uncleanly (the next start recovers).
pub struct Server {
    broker: Arc<Broker>,
    local_addr: SocketAddr,
    kafka_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    plaintext_addr: Option<SocketAddr>,
    kafka_plaintext_addr: Option<SocketAddr>,
    tls: Option<Arc<crate::tls::Tls>>,
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
    // Long by choice: the start-up sequence (listeners, coordinator, shared state, accept
    // loops, readiness) in the order it must happen.
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
        let tls = config.tls.clone();
        if tls.is_some() {
            if crate::tls::kernel_tls_available() {
                info!("TLS on: kernel TLS is available but not used; fetches over TLS copy through user space");
            } else {
                info!("TLS on: this kernel has no kernel TLS (no tls ULP); fetches over TLS copy through user space");
            }
        }
        let plaintext_listener = bind_extra(config.plaintext_listen, "--plaintext-listen").await?;
        let kafka_plaintext_listener = bind_extra(config.kafka_plaintext_listen, "--kafka-plaintext-listen").await?;
        let groups = {
            let storage = storage.clone();
            let cfg = config.group.clone();
            tokio::task::spawn_blocking(move || Coordinator::open(storage, cfg))
                .await
                .map_err(|_| Error::ShuttingDown)??
        };
        let advertised_host = config
            .advertised_host
            .clone()
            .unwrap_or_else(|| local_addr.ip().to_string());
        let cluster = Cluster::start(
            config.cluster.clone(),
            storage.clone(),
            format!("{advertised_host}:{}", local_addr.port()),
            kafka_addr.map(|a| format!("{advertised_host}:{}", a.port())),
        )
        .await?;
        let replication = {
            let storage = storage.clone();
            let offsets_log = crate::group::store::log_config(&config.group);
            crate::replication::Replication::start(
                cluster.clone(),
                Box::new(move |topic, p| {
                    if topic == crate::group::OFFSETS_LOG {
                        storage.internal_log(&format!("{topic}-{p}"), offsets_log.clone())
                    } else {
                        storage.partition(topic, p)
                    }
                }),
            )
        };
        // The coordinator serves the groups of the offsets-log partitions this broker
        // leads (the metadata says which, and the replica must have taken the leader's
        // role; it follows their moves on its tick).
        let view = Arc::downgrade(&cluster);
        let roles = Arc::downgrade(&replication);
        groups.set_ownership(Box::new(move |p| {
            use crate::group::Leadership;
            let (Some(cluster), Some(roles)) = (view.upgrade(), roles.upgrade()) else {
                return Leadership::Elsewhere;
            };
            if !cluster.registered_in_image() {
                // What the image says this broker leads is an earlier process's: the
                // groups read at start wait for this one's registration.
                return Leadership::Unplaced;
            }
            let image = cluster.image();
            match image.partition(crate::group::OFFSETS_LOG, p) {
                None => Leadership::Unplaced,
                Some(part) if part.leader == cluster.node_id() => match roles.leads_now(crate::group::OFFSETS_LOG, p) {
                    Some(epoch) if epoch == part.leader_epoch => Leadership::Here(epoch),
                    _ => Leadership::Elsewhere,
                },
                Some(_) => Leadership::Elsewhere,
            }
        }));
        let net = Arc::new(Net::new(config, metrics.clone()));
        let stopping = net.clone();
        tokio::spawn(groups.clone().run(async move { stopping.shutting_down().await }));
        let broker = Arc::new(Broker::new(
            storage,
            groups,
            net.clone(),
            replication,
            advertised_host,
            local_addr.port(),
            kafka_addr.map(|a| a.port()),
        ));
        let source: Arc<dyn crate::metrics::ScrapeSource> = broker.clone();
        metrics.attach(Arc::downgrade(&source));
        if let (Some(listener), Some(addr)) = (metrics_listener, metrics_addr) {
            let stopping = net.clone();
            tokio::spawn(crate::metrics::http::serve(
                listener,
                metrics.clone(),
                tls.clone(),
                async move { stopping.shutting_down().await },
            ));
            info!(listen = %addr, tls = tls.is_some(), "listening (metrics: /metrics, /health, /ready)");
        }
        let alone = {
            let c = broker.cluster.config();
            c.voters.len() == 1 && c.voters.contains_key(&c.node_id)
        };
        if alone {
            // Alone (its own quorum): ready once it has elected itself and registered,
            // so that the first request finds a controller (it needs no listener:
            // its Raft and controller calls stay in the process).
            let ready = Duration::from_millis(broker.cluster.config().controller_timeout_ms);
            if tokio::time::timeout(ready, broker.cluster.registered()).await.is_err() {
                warn!("not registered with the metadata quorum yet; admin requests will wait for it");
            } else {
                // Its groups served from the first request, without waiting for a
                // client to ask where they live.
                let call = crate::cluster::controller::ControllerCall::CreateInternalTopic {
                    name: crate::group::OFFSETS_LOG.to_owned(),
                    partitions: crate::group::OFFSETS_PARTITIONS,
                };
                if let Err(r) = broker.cluster.call_controller(call).await {
                    warn!(error = %r.message, "the offsets log is not in the metadata yet; the first FindCoordinator creates it");
                }
            }
        }
        let (done_tx, connections_done) = mpsc::channel(1);
        let kafka_done = done_tx.clone();
        let accept_task = tokio::spawn(listener::accept_loop::<Native>(
            net.clone(),
            broker.clone(),
            listener,
            tls.clone(),
            done_tx.clone(),
        ));
        info!(listen = %local_addr, tls = tls.is_some(), "listening (native protocol)");
        if let (Some(listener), Some(addr)) = (kafka_listener, kafka_addr) {
            tokio::spawn(listener::accept_loop::<crate::kafka::Kafka>(
                net.clone(),
                broker.clone(),
                listener,
                tls.clone(),
                kafka_done,
            ));
            info!(listen = %addr, tls = tls.is_some(), "listening (Kafka protocol)");
        }
        let plaintext_addr = plaintext_listener.as_ref().map(|(_, a)| *a);
        let kafka_plaintext_addr = kafka_plaintext_listener.as_ref().map(|(_, a)| *a);
        if let Some((listener, addr)) = plaintext_listener {
            tokio::spawn(listener::accept_loop::<Native>(
                net.clone(),
                broker.clone(),
                listener,
                None,
                done_tx.clone(),
            ));
            info!(listen = %addr, "listening (native protocol, plaintext)");
        }
        if let Some((listener, addr)) = kafka_plaintext_listener {
            tokio::spawn(listener::accept_loop::<crate::kafka::Kafka>(
                net.clone(),
                broker.clone(),
                listener,
                None,
                done_tx,
            ));
            info!(listen = %addr, "listening (Kafka protocol, plaintext)");
        }

        metrics.ready.store(true, std::sync::atomic::Ordering::Release);
        Ok(Server {
            broker,
            local_addr,
            kafka_addr,
            metrics_addr,
            plaintext_addr,
            kafka_plaintext_addr,
            tls,
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

    /// The plaintext native listener beside a TLS one, if configured.
    pub fn plaintext_addr(&self) -> Option<SocketAddr> {
        self.plaintext_addr
    }

    /// The plaintext Kafka listener beside a TLS one, if configured.
    pub fn kafka_plaintext_addr(&self) -> Option<SocketAddr> {
        self.kafka_plaintext_addr
    }

    /// The listeners' TLS (to reload its files on SIGHUP), if on.
    pub fn tls(&self) -> Option<Arc<crate::tls::Tls>> {
        self.tls.clone()
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    pub fn stats(&self) -> &ServerStats {
        self.broker.stats()
    }

    /// Graceful stop: stop accepting, answer every request already read, then close
    /// storage cleanly. Connections still busy after the request timeout are abandoned
    /// (their requests' appends are in the log; they just go unanswered).
    pub async fn shutdown(mut self) -> Result<()> {
        info!("shutting down: no new connections or requests");
        self.broker
            .metrics()
            .ready
            .store(false, std::sync::atomic::Ordering::Release);
        self.broker.cluster.shutdown().await;
        self.broker.replication.stop();
        self.broker.net.stop();
        let _ = (&mut self.accept_task).await;
        let grace = Duration::from_millis(self.broker.config().request_timeout_ms);
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
        self.broker.net.stop();
        self.accept_task.abort();
    }
}

/// Binds an extra plaintext listener, if asked for: the listener and its address.
async fn bind_extra(
    addr: Option<SocketAddr>,
    flag: &'static str,
) -> Result<Option<(tokio::net::TcpListener, SocketAddr)>> {
    let Some(addr) = addr else { return Ok(None) };
    let io = |source| Error::Io {
        op: flag,
        path: addr.to_string().into(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(io)?;
    let local = listener.local_addr().map_err(io)?;
    Ok(Some((listener, local)))
}

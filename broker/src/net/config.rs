//! The server's limits, in one place. Every limit is bounded and named with its unit.

use std::net::SocketAddr;

use runnel_protocol::frame::DEFAULT_MAX_REQUEST_FRAME_BYTES;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the native listener binds. Port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// The host clients are told to connect to (Metadata); defaults to the bound address.
    pub advertised_host: Option<String>,
    /// Where the Kafka-protocol listener binds; `None` runs none. The daemon's default is
    /// `127.0.0.1:9092`; the library's is `None` (tests bind what they need).
    pub kafka_listen: Option<SocketAddr>,
    /// `kafka_listen` is the daemon's default rather than the user's choice: if that
    /// address is taken (a Kafka broker on 9092, say) the server starts without the Kafka
    /// listener and says so, instead of failing. An address the user gave stays a hard
    /// error.
    pub kafka_listen_is_default: bool,
    /// Where the metrics endpoint (`/metrics`, `/health`, `/ready`) listens; `None` runs
    /// none. The daemon's default is `127.0.0.1:7118`; the library's is `None`.
    pub metrics_listen: Option<SocketAddr>,
    /// Label traffic counters with the partition as well as the topic (more series).
    pub metrics_per_partition: bool,
    /// Requests that take longer than this (long-poll and group waits excluded) are
    /// logged at `warn` with their span fields.
    pub slow_request_ms: u64,
    /// Largest request frame accepted; a longer announced length closes the connection
    /// (the stream cannot be resynchronised without reading it).
    pub max_request_frame_bytes: u32,
    /// Connections beyond this wait in the kernel's accept queue.
    pub max_connections: usize,
    /// A request not answered within this gets REQUEST_TIMED_OUT (its work may still
    /// have happened, as with Kafka). Long-poll waits are capped below it.
    pub request_timeout_ms: u64,
    /// A connection with no request in flight and no bytes received for this long is
    /// closed (Kafka's `connections.max.idle.ms`).
    pub idle_timeout_ms: u64,
    /// Requests read but not yet answered, per connection; beyond it the connection is
    /// not read (TCP backpressure on the client).
    pub max_in_flight_requests: usize,
    /// Request bytes held per connection (read buffer plus requests in flight); at least
    /// `max_request_frame_bytes`.
    pub max_connection_buffer_bytes: usize,
    /// Upper bound on a fetch's total `max_bytes`, whatever the client asks.
    pub fetch_max_bytes: u32,
    /// `max_bytes` of a fetched partition when the request leaves it 0.
    pub fetch_partition_default_bytes: u32,
    /// Consumer groups: session bounds, heartbeat interval, offsets log.
    pub group: crate::group::GroupConfig,
    /// Kafka's `auto.create.topics.enable`: a Metadata request that allows it creates the
    /// topics it names that do not exist (Kafka's default: on).
    pub auto_create_topics_enable: bool,
    /// Kafka's `num.partitions`: partitions of an auto-created topic, and of a created one
    /// that asks for the default (-1).
    pub num_partitions: u32,
    /// Kafka's `default.replication.factor`: replicas of an auto-created topic, and of a
    /// created one that asks for the default (-1).
    pub default_replication_factor: u16,
    /// This broker's node id, the controller voters, session and heartbeat timing.
    pub cluster: crate::cluster::ClusterConfig,
    /// TLS for `listen`, `kafka_listen` and `metrics_listen` (HTTPS), its files already
    /// read ([`crate::tls::Tls::load`]); `None`: plaintext.
    pub tls: Option<std::sync::Arc<crate::tls::Tls>>,
    /// A plaintext native listener beside the TLS one (loopback tools, inter-broker
    /// traffic on a private network), as Kafka's named listeners allow.
    pub plaintext_listen: Option<SocketAddr>,
    /// A plaintext Kafka listener beside the TLS one.
    pub kafka_plaintext_listen: Option<SocketAddr>,
    /// SASL on every Kafka listener (`None`: none; connections are ANONYMOUS, or their
    /// client certificate's subject).
    pub sasl: Option<crate::scram::SaslConfig>,
}

pub const DEFAULT_PORT_ADDR: &str = runnel_protocol::DEFAULT_BROKER_ADDR;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_PORT_ADDR.parse().expect("valid default address"),
            advertised_host: None,
            kafka_listen: None,
            kafka_listen_is_default: false,
            metrics_listen: None,
            metrics_per_partition: false,
            slow_request_ms: 1_000,
            max_request_frame_bytes: DEFAULT_MAX_REQUEST_FRAME_BYTES,
            max_connections: 4096,
            request_timeout_ms: 30_000,
            idle_timeout_ms: 600_000,
            max_in_flight_requests: 128,
            max_connection_buffer_bytes: 2 * DEFAULT_MAX_REQUEST_FRAME_BYTES as usize,
            fetch_max_bytes: 55 * 1024 * 1024,
            fetch_partition_default_bytes: 1024 * 1024,
            group: crate::group::GroupConfig::default(),
            auto_create_topics_enable: true,
            num_partitions: 1,
            default_replication_factor: 1,
            cluster: crate::cluster::ClusterConfig::default(),
            tls: None,
            plaintext_listen: None,
            kafka_plaintext_listen: None,
            sasl: None,
        }
    }
}

impl ServerConfig {
    /// Checks the limits against each other; a one-line reason when they do not fit.
    pub fn validate(&self) -> Result<(), String> {
        if self.tls.is_none() && (self.plaintext_listen.is_some() || self.kafka_plaintext_listen.is_some()) {
            return Err(
                "--plaintext-listen and --kafka-plaintext-listen are for a broker with --tls-cert: \
                        its listeners are all plaintext already"
                    .into(),
            );
        }
        if let Some(sasl) = &self.sasl {
            if sasl.mechanisms.is_empty() {
                return Err("--sasl-mechanisms names no mechanism".into());
            }
            // The native protocol has no authentication yet: with SASL on, its listeners
            // must not be reachable from other machines.
            for addr in [Some(self.listen), self.plaintext_listen].into_iter().flatten() {
                if !addr.ip().is_loopback() {
                    return Err(format!(
                        "--sasl-mechanisms: the native listener {addr} is not on loopback, and the native \
                         protocol does not authenticate yet; bind --listen to 127.0.0.1 (docs/security.md)"
                    ));
                }
            }
        }
        if self.max_request_frame_bytes < 1024 {
            return Err("max_request_frame_bytes must be at least 1024".into());
        }
        if self.max_connection_buffer_bytes < self.max_request_frame_bytes as usize {
            return Err(format!(
                "max_connection_buffer_bytes ({}) must be at least max_request_frame_bytes ({})",
                self.max_connection_buffer_bytes, self.max_request_frame_bytes
            ));
        }
        if self.max_connections == 0 || self.max_in_flight_requests == 0 {
            return Err("max_connections and max_in_flight_requests must be at least 1".into());
        }
        if self.request_timeout_ms < 10 || self.idle_timeout_ms == 0 {
            return Err("request_timeout_ms must be at least 10 and idle_timeout_ms at least 1".into());
        }
        if self.num_partitions == 0 || self.default_replication_factor == 0 {
            return Err("num_partitions and default_replication_factor must be at least 1".into());
        }
        if self.fetch_max_bytes == 0 || self.fetch_partition_default_bytes == 0 {
            return Err("fetch_max_bytes and fetch_partition_default_bytes must be at least 1".into());
        }
        let g = &self.group;
        if g.min_session_timeout_ms == 0 || g.min_session_timeout_ms > g.max_session_timeout_ms {
            return Err(format!(
                "group_min_session_timeout_ms ({}) must be at least 1 and at most group_max_session_timeout_ms ({})",
                g.min_session_timeout_ms, g.max_session_timeout_ms
            ));
        }
        if !(g.min_session_timeout_ms..=g.max_session_timeout_ms).contains(&g.default_session_timeout_ms) {
            return Err(format!(
                "the default session timeout ({} ms) must lie within the session bounds",
                g.default_session_timeout_ms
            ));
        }
        if g.heartbeat_interval_ms == 0 || g.reconcile_heartbeat_interval_ms == 0 || g.tick_ms == 0 {
            return Err("group heartbeat intervals and tick must be at least 1 ms".into());
        }
        if g.offsets_segment_bytes < 1024 {
            return Err("offsets_segment_bytes must be at least 1024".into());
        }
        Ok(())
    }

    /// The longest a long-poll fetch waits: leaves the response time to travel within
    /// the request timeout.
    pub fn fetch_max_wait_ms(&self) -> u64 {
        self.request_timeout_ms * 9 / 10
    }
}

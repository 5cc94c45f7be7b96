//! Metrics (Prometheus / OpenMetrics text, built with `prometheus-client`) and the
//! per-request record that feeds them and the request log.
//!
//! - Counters and histograms updated on the hot paths: traffic per topic (or per
//!   partition, `metrics_per_partition`), requests, errors and latency per API, produce
//!   batch sizes, connections and requests in flight. Traffic handles are cached per
//!   partition, so a produce or fetch costs an atomic add per counter, not a label lookup.
//! - Values read at scrape time (`collect`): per-partition log size, segments and
//!   offsets; per-group committed offsets and lag; fsync and recovery figures from
//!   storage; process memory, file descriptors and CPU.
//! - [`RequestInfo`]: one per request, shared by the task that runs it and the writer
//!   that answers it: what the request is (api, version, correlation id, client id, peer),
//!   when it arrived and started, and the time it spent in storage and in waits (long
//!   polls, group joins). The writer turns it into latency, error counts and the slow
//!   request warning.
//!
//! The hot-path handles live here; the per-request record in `request`, what is read
//! at scrape time in `scrape`.
//!
//! Naming follows Prometheus conventions: `runnel_` prefix, base units in names
//! (`_bytes`, `_seconds`), `_total` on counters. `docs/monitoring.md` lists every metric.

pub mod http;
mod request;
mod scrape;

pub use request::{
    add_storage, identify, in_storage, note_error, note_error_code, scope, waiting, RequestInfo, RequestMeta,
};
use scrape::BrokerCollector;
pub use scrape::{ClusterGauges, ScrapeSource};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use runnel_protocol::ErrorCode;

use crate::group::Coordinator;
use crate::storage::LogManager;

/// Labels of traffic counters: the topic, and the partition when per-partition metrics
/// are on.
pub type TrafficLabels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    pub protocol: &'static str,
    pub api: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub protocol: &'static str,
    pub api: &'static str,
    pub code: &'static str,
}

/// Handle slots per protocol: one per api key (both protocols' keys are at most 1000),
/// and a last one shared by every unknown key.
const API_KEYS: usize = 1002;

#[derive(Debug)]
struct ApiHandles {
    requests: Counter,
    latency: Histogram,
}

/// One partition's traffic counters (handles into the families).
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    pub records_in: Counter,
    pub bytes_in: Counter,
    pub records_out: Counter,
    pub bytes_out: Counter,
}

/// Every metric of the broker. Shared (`Arc`) by the server, every request task and the
/// scrape endpoint; counters and gauges are atomics. Locks: `registry` is taken at
/// registration (start-up, a new topic's first traffic) and by each scrape's encoding;
/// `traffic` is read on every produce and fetch to find a topic's handles (write-locked
/// only to add or remove a topic). Neither is held across I/O or `.await`.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    per_partition: bool,
    records_in: Family<TrafficLabels, Counter>,
    bytes_in: Family<TrafficLabels, Counter>,
    records_out: Family<TrafficLabels, Counter>,
    bytes_out: Family<TrafficLabels, Counter>,
    traffic: RwLock<HashMap<String, Vec<Option<Traffic>>, foldhash::fast::RandomState>>,
    pub requests: Family<ApiLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub latency: Family<ApiLabels, Histogram, fn() -> Histogram>,
    apis: Vec<OnceLock<ApiHandles>>,
    pub produce_batch_bytes: Histogram,
    /// Record batch bytes sent to follower brokers (with `sendfile`), all partitions.
    pub replica_bytes_out: Counter,
    pub connections: Gauge,
    pub in_flight: Gauge,
    pub slow_requests: Counter,
    /// TLS handshakes that failed or timed out (each closed its connection).
    pub tls_handshake_failures: Counter,
    /// Record bytes copied through user space to TLS connections (no `sendfile`).
    pub tls_copied_bytes: Counter,
    /// SASL authentications that failed (wrong credentials, malformed exchanges).
    pub sasl_authentication_failures: Counter,
    /// Recovery finished and the listeners are up (`/ready`).
    pub ready: AtomicBool,
    started: Instant,
    source: OnceLock<Weak<dyn ScrapeSource>>,
}

fn latency_histogram() -> Histogram {
    // 50 µs to ~105 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 22))
}

impl Metrics {
    pub fn new(per_partition: bool) -> Arc<Metrics> {
        let m = Metrics {
            registry: Mutex::new(Registry::with_prefix("runnel")),
            per_partition,
            records_in: Family::default(),
            bytes_in: Family::default(),
            records_out: Family::default(),
            bytes_out: Family::default(),
            traffic: RwLock::new(HashMap::default()),
            requests: Family::default(),
            errors: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            apis: (0..2 * API_KEYS).map(|_| OnceLock::new()).collect(),
            // 64 B to 64 MiB.
            produce_batch_bytes: Histogram::new(exponential_buckets(64.0, 4.0, 11)),
            replica_bytes_out: Counter::default(),
            connections: Gauge::default(),
            in_flight: Gauge::default(),
            slow_requests: Counter::default(),
            tls_handshake_failures: Counter::default(),
            tls_copied_bytes: Counter::default(),
            sasl_authentication_failures: Counter::default(),
            ready: AtomicBool::new(false),
            started: Instant::now(),
            source: OnceLock::new(),
        };
        {
            let mut r = crate::sync::lock(&m.registry);
            r.register(
                "produced_records",
                "Records appended by producers",
                m.records_in.clone(),
            );
            r.register_with_unit(
                "produced",
                "Record batch bytes appended by producers",
                Unit::Bytes,
                m.bytes_in.clone(),
            );
            r.register("fetched_records", "Records sent to consumers", m.records_out.clone());
            r.register_with_unit(
                "fetched",
                "Record batch bytes sent to consumers",
                Unit::Bytes,
                m.bytes_out.clone(),
            );
            r.register_with_unit(
                "replication_fetched",
                "Record batch bytes sent to follower brokers (with sendfile)",
                Unit::Bytes,
                m.replica_bytes_out.clone(),
            );
            r.register(
                "requests",
                "Requests answered, per protocol and API",
                m.requests.clone(),
            );
            r.register(
                "request_errors",
                "Error codes in responses (request-level and per partition), per protocol, API and code",
                m.errors.clone(),
            );
            // Histograms carry their unit in the name only: OpenMetrics parsers differ on
            // whether a histogram may have a UNIT line.
            r.register(
                "request_duration_seconds",
                "Time from a request's arrival to its response written, per protocol and API (long polls included)",
                m.latency.clone(),
            );
            r.register(
                "produce_batch_size_bytes",
                "Size of each record batch produced",
                m.produce_batch_bytes.clone(),
            );
            r.register("connections_open", "Client connections open", m.connections.clone());
            r.register(
                "requests_in_flight",
                "Requests read and not yet answered",
                m.in_flight.clone(),
            );
            r.register(
                "slow_requests",
                "Requests over slow_request_ms (not counting long-poll and group waits)",
                m.slow_requests.clone(),
            );
            r.register(
                "tls_handshake_failures",
                "TLS handshakes that failed or did not finish in time",
                m.tls_handshake_failures.clone(),
            );
            r.register_with_unit(
                "tls_copied",
                "Record bytes fetched over TLS, copied through user space (no sendfile)",
                Unit::Bytes,
                m.tls_copied_bytes.clone(),
            );
            r.register(
                "sasl_authentication_failures",
                "SASL authentications that failed (each closed its connection after a delay)",
                m.sasl_authentication_failures.clone(),
            );
        }
        Arc::new(m)
    }

    /// Starts reading broker state at scrape time.
    pub fn attach(self: &Arc<Self>, source: Weak<dyn ScrapeSource>) {
        if self.source.set(source).is_ok() {
            crate::sync::lock(&self.registry).register_collector(Box::new(BrokerCollector(self.clone())));
        }
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The traffic counters of one partition.
    pub fn traffic(&self, topic: &str, partition: u32) -> Traffic {
        if let Some(t) = crate::sync::read(&self.traffic)
            .get(topic)
            .and_then(|v| v.get(partition as usize))
            .and_then(|t| t.clone())
        {
            return t;
        }
        let mut labels: TrafficLabels = vec![("topic", topic.to_owned())];
        if self.per_partition {
            labels.push(("partition", partition.to_string()));
        }
        let t = Traffic {
            records_in: self.records_in.get_or_create(&labels).clone(),
            bytes_in: self.bytes_in.get_or_create(&labels).clone(),
            records_out: self.records_out.get_or_create(&labels).clone(),
            bytes_out: self.bytes_out.get_or_create(&labels).clone(),
        };
        let mut map = crate::sync::write(&self.traffic);
        let slots = map.entry(topic.to_owned()).or_default();
        if slots.len() <= partition as usize {
            slots.resize(partition as usize + 1, None);
        }
        slots[partition as usize] = Some(t.clone());
        t
    }

    /// Totals of a topic's traffic (all its partitions), for `runnel status`.
    pub fn topic_traffic(&self, topic: &str) -> (u64, u64, u64, u64) {
        let map = crate::sync::read(&self.traffic);
        let mut out = (0, 0, 0, 0);
        if self.per_partition {
            for t in map.get(topic).into_iter().flatten().flatten() {
                out.0 += t.records_in.get();
                out.1 += t.bytes_in.get();
                out.2 += t.records_out.get();
                out.3 += t.bytes_out.get();
            }
        } else if let Some(t) = map.get(topic).into_iter().flatten().flatten().next() {
            // Every partition shares the topic's counters.
            out = (
                t.records_in.get(),
                t.bytes_in.get(),
                t.records_out.get(),
                t.bytes_out.get(),
            );
        }
        out
    }

    /// Forgets a deleted topic's series.
    pub fn remove_topic(&self, topic: &str) {
        if let Some(slots) = crate::sync::write(&self.traffic).remove(topic) {
            for p in 0..slots.len() {
                let mut labels: TrafficLabels = vec![("topic", topic.to_owned())];
                if self.per_partition {
                    labels.push(("partition", p.to_string()));
                }
                for f in [&self.records_in, &self.bytes_in, &self.records_out, &self.bytes_out] {
                    f.remove(&labels);
                }
            }
        }
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = crate::sync::lock(&self.registry);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }

    /// The request counter and latency histogram of one API, created on first use and
    /// then found without a label lookup.
    fn api_handles(&self, protocol: &'static str, key: i16, api: &'static str) -> &ApiHandles {
        let known = api != "Unknown" && (0..API_KEYS as i16 - 1).contains(&key);
        let index = if known { key as usize } else { API_KEYS - 1 };
        let slot = usize::from(protocol == "kafka") * API_KEYS + index;
        self.apis[slot].get_or_init(|| {
            let labels = ApiLabels { protocol, api };
            ApiHandles {
                requests: self.requests.get_or_create(&labels).clone(),
                latency: self.latency.get_or_create(&labels).clone(),
            }
        })
    }
}

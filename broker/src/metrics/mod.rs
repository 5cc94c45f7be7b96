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
//! Naming follows Prometheus conventions: `runnel_` prefix, base units in names
//! (`_bytes`, `_seconds`), `_total` on counters. `docs/monitoring.md` lists every metric.

pub mod http;

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
    pub connections: Gauge,
    pub in_flight: Gauge,
    pub slow_requests: Counter,
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
            connections: Gauge::default(),
            in_flight: Gauge::default(),
            slow_requests: Counter::default(),
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

    /// Counts a finished request: its API, latency and errors; logs it when slow.
    pub fn finish(&self, info: &RequestInfo, written: Instant, slow_after: Duration) {
        let Some(meta) = info.meta.get() else { return };
        let api = self.api_handles(info.protocol, meta.key, meta.api);
        api.requests.inc();
        let total = written.saturating_duration_since(info.arrived);
        api.latency.observe(total.as_secs_f64());
        let errors = std::mem::take(&mut *crate::sync::lock(&info.errors));
        for code in &errors {
            self.errors
                .get_or_create(&ErrorLabels {
                    protocol: info.protocol,
                    api: meta.api,
                    code: code.name(),
                })
                .inc();
        }
        let waited = Duration::from_nanos(info.wait_ns.load(Ordering::Relaxed));
        let started = Duration::from_nanos(info.started_ns.load(Ordering::Relaxed));
        let handled = Duration::from_nanos(info.handled_ns.load(Ordering::Relaxed));
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        if !info.span.is_disabled() {
            // The timings join the request's span (for subscribers that keep spans).
            info.span.record("queued_ms", ms(started));
            info.span.record(
                "storage_ms",
                ms(Duration::from_nanos(info.storage_ns.load(Ordering::Relaxed))),
            );
            info.span.record("waiting_ms", ms(waited));
            info.span.record("write_ms", ms(total.saturating_sub(handled)));
            info.span.record("total_ms", ms(total));
        }
        if total.saturating_sub(waited) > slow_after {
            self.slow_requests.inc();
            info.span.in_scope(|| {
                tracing::warn!(
                    protocol = info.protocol,
                    api = meta.api,
                    version = meta.version,
                    correlation_id = meta.correlation_id,
                    client_id = meta.client_id.as_deref().unwrap_or(""),
                    peer = %info.peer,
                    total_ms = ms(total),
                    queued_ms = ms(started),
                    storage_ms = ms(Duration::from_nanos(info.storage_ns.load(Ordering::Relaxed))),
                    waiting_ms = ms(waited),
                    write_ms = ms(total.saturating_sub(handled)),
                    errors = ?errors,
                    "slow request"
                )
            });
        }
    }
}

/// What a request is; known once its header is decoded.
#[derive(Debug)]
pub struct RequestMeta {
    pub api: &'static str,
    pub key: i16,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
}

/// One request's record, shared by its task and the connection's writer.
#[derive(Debug)]
pub struct RequestInfo {
    pub protocol: &'static str,
    pub peer: SocketAddr,
    pub arrived: Instant,
    pub meta: OnceLock<RequestMeta>,
    /// Nanoseconds after `arrived`: the handler started / the reply was ready.
    pub started_ns: AtomicU64,
    pub handled_ns: AtomicU64,
    pub storage_ns: AtomicU64,
    pub wait_ns: AtomicU64,
    pub errors: Mutex<Vec<ErrorCode>>,
    pub span: tracing::Span,
}

impl RequestInfo {
    pub fn new(protocol: &'static str, peer: SocketAddr, arrived: Instant) -> Arc<RequestInfo> {
        let span = tracing::debug_span!(
            "request",
            protocol,
            api = tracing::field::Empty,
            version = tracing::field::Empty,
            correlation_id = tracing::field::Empty,
            client_id = tracing::field::Empty,
            %peer,
            queued_ms = tracing::field::Empty,
            storage_ms = tracing::field::Empty,
            waiting_ms = tracing::field::Empty,
            write_ms = tracing::field::Empty,
            total_ms = tracing::field::Empty,
        );
        Arc::new(RequestInfo {
            protocol,
            peer,
            arrived,
            meta: OnceLock::new(),
            started_ns: AtomicU64::new(0),
            handled_ns: AtomicU64::new(0),
            storage_ns: AtomicU64::new(0),
            wait_ns: AtomicU64::new(0),
            errors: Mutex::new(Vec::new()),
            span,
        })
    }

    fn since_arrival(&self) -> u64 {
        self.arrived.elapsed().as_nanos() as u64
    }

    pub fn mark_started(&self) {
        self.started_ns.store(self.since_arrival(), Ordering::Relaxed);
    }

    pub fn mark_handled(&self) {
        self.handled_ns.store(self.since_arrival(), Ordering::Relaxed);
    }
}

tokio::task_local! {
    static REQUEST: Arc<RequestInfo>;
}

/// Runs `fut` as the request `info`.
pub async fn scope<F: std::future::Future>(info: Arc<RequestInfo>, fut: F) -> F::Output {
    use tracing::Instrument;
    let span = info.span.clone();
    REQUEST.scope(info, fut.instrument(span)).await
}

/// Names the current request (once its header is decoded).
pub fn identify(api: &'static str, key: i16, version: i16, correlation_id: i32, client_id: Option<&str>) {
    let _ = REQUEST.try_with(|r| {
        r.span.record("api", api);
        r.span.record("version", version);
        r.span.record("correlation_id", correlation_id);
        if let Some(c) = client_id {
            r.span.record("client_id", c);
        }
        let _ = r.meta.set(RequestMeta {
            api,
            key,
            version,
            correlation_id,
            client_id: client_id.map(str::to_owned),
        });
    });
}

/// Notes an error code in the current request's response.
pub fn note_error(code: ErrorCode) {
    if code != ErrorCode::None {
        let _ = REQUEST.try_with(|r| crate::sync::lock(&r.errors).push(code));
    }
}

/// Notes an error code given as a wire number (Kafka handlers).
pub fn note_error_code(code: i32) {
    if code != 0 {
        note_error(ErrorCode::from_i32(code));
    }
}

/// Adds `d` (synchronous storage work) to the current request's storage time.
pub fn add_storage(d: Duration) {
    let _ = REQUEST.try_with(|r| r.storage_ns.fetch_add(d.as_nanos() as u64, Ordering::Relaxed));
}

/// Runs `f` (storage work) and adds its time to the current request's storage time.
pub async fn in_storage<F: std::future::Future>(f: F) -> F::Output {
    let start = Instant::now();
    let out = f.await;
    let ns = start.elapsed().as_nanos() as u64;
    let _ = REQUEST.try_with(|r| r.storage_ns.fetch_add(ns, Ordering::Relaxed));
    out
}

/// Runs `f` (a long poll or a group wait) and adds its time to the request's waits.
pub async fn waiting<F: std::future::Future>(f: F) -> F::Output {
    let start = Instant::now();
    let out = f.await;
    let ns = start.elapsed().as_nanos() as u64;
    let _ = REQUEST.try_with(|r| r.wait_ns.fetch_add(ns, Ordering::Relaxed));
    out
}

/// What a scrape reads from the broker, handed over by the service layer (which owns
/// it): the storage engine, the group coordinator, and counters kept beside them. Held
/// weakly: a scrape after the broker is gone reports the process figures only.
pub trait ScrapeSource: Send + Sync {
    fn storage(&self) -> &Arc<LogManager>;
    fn groups(&self) -> &Arc<Coordinator>;
    fn kafka_produce_copied_bytes(&self) -> u64;
}

/// Values read from the broker at scrape time.
#[derive(Debug)]
struct BrokerCollector(Arc<Metrics>);

/// Labels of a series read at scrape time.
type Labels = Vec<(&'static str, String)>;

/// One series without labels.
fn single<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: M,
) -> Result<(), std::fmt::Error> {
    let metric_type = metric.metric_type();
    metric.encode(encoder.encode_descriptor(name, help, unit, metric_type)?)
}

/// A family of labelled series (nothing when there are none).
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: impl IntoIterator<Item = (Labels, M)>,
) -> Result<(), std::fmt::Error> {
    let mut series = series.into_iter().peekable();
    let Some((_, first)) = series.peek() else { return Ok(()) };
    let mut family = encoder.encode_descriptor(name, help, unit, first.metric_type())?;
    for (labels, m) in series {
        m.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for BrokerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.0;
        single(
            &mut encoder,
            "uptime",
            "Time since the broker started",
            Some(&Unit::Seconds),
            ConstGauge::new(m.uptime().as_secs_f64()),
        )?;
        process_metrics(&mut encoder)?;
        let Some(broker) = m.source.get().and_then(Weak::upgrade) else {
            return Ok(());
        };
        single(
            &mut encoder,
            "kafka_produce_copied_bytes",
            "Record bytes of Kafka produce requests copied before their append (requests under 16 KiB; larger ones are appended where they were read)",
            None,
            ConstCounter::new(broker.kafka_produce_copied_bytes()),
        )?;
        let storage = broker.storage();
        let stats = storage.stats();
        single(
            &mut encoder,
            "fsyncs",
            "Sync passes (fdatasync) on partition logs",
            None,
            ConstCounter::new(stats.fsyncs.get()),
        )?;
        single(
            &mut encoder,
            "fsync_duration_seconds",
            "Time each sync pass (fdatasync) of a partition log took",
            None,
            stats.fsync_seconds.clone(),
        )?;
        single(
            &mut encoder,
            "appends_per_fsync",
            "Appends made durable by each sync pass (group commit: above 1 when syncs are shared)",
            None,
            stats.appends_per_fsync.clone(),
        )?;
        let recovery = storage.recovery();
        single(
            &mut encoder,
            "recovery_duration",
            "Time the last start spent opening and recovering logs",
            Some(&Unit::Seconds),
            ConstGauge::new(recovery.seconds),
        )?;
        single(
            &mut encoder,
            "recovery_truncated",
            "Bytes cut from log tails (torn or corrupt writes) at the last start",
            Some(&Unit::Bytes),
            ConstGauge::new(recovery.truncated_bytes as i64),
        )?;

        if let Ok(fs) = nix::sys::statvfs::statvfs(&storage.config().data_dir) {
            let block = fs.fragment_size() as i64;
            single(
                &mut encoder,
                "data_dir_capacity",
                "Size of the file system holding the data directory",
                Some(&Unit::Bytes),
                ConstGauge::new(fs.blocks() as i64 * block),
            )?;
            single(
                &mut encoder,
                "data_dir_available",
                "Free space (for unprivileged writers) on the data directory's file system",
                Some(&Unit::Bytes),
                ConstGauge::new(fs.blocks_available() as i64 * block),
            )?;
        }

        let topics = storage.topics();
        let parts = || {
            topics.iter().flat_map(|t| {
                t.partitions.iter().enumerate().map(move |(p, log)| {
                    let labels: Labels = vec![("topic", t.name.clone()), ("partition", p.to_string())];
                    (labels, log.clone())
                })
            })
        };
        family(
            &mut encoder,
            "log_size",
            "Bytes in a partition's segments",
            Some(&Unit::Bytes),
            parts().map(|(l, log)| (l, ConstGauge::new(log.size_bytes() as i64))),
        )?;
        family(
            &mut encoder,
            "log_segments",
            "Segments of a partition",
            None,
            parts().map(|(l, log)| (l, ConstGauge::new(log.segment_base_offsets().len() as i64))),
        )?;
        family(
            &mut encoder,
            "log_start_offset",
            "First offset a partition holds",
            None,
            parts().map(|(l, log)| (l, ConstGauge::new(log.start_offset() as i64))),
        )?;
        family(
            &mut encoder,
            "log_end_offset",
            "Offset the next record of a partition gets",
            None,
            parts().map(|(l, log)| (l, ConstGauge::new(log.end_offset() as i64))),
        )?;
        group_metrics(&mut encoder, broker.as_ref())
    }
}

/// Members, committed offsets and lag of every group.
fn group_metrics(encoder: &mut DescriptorEncoder, broker: &dyn ScrapeSource) -> Result<(), std::fmt::Error> {
    let now_ms = crate::storage::log::now_ms();
    let mut committed = Vec::new();
    let mut lag = Vec::new();
    let mut lag_seconds = Vec::new();
    let mut members = Vec::new();
    for g in broker.groups().list() {
        members.push((vec![("group", g.id.clone())], ConstGauge::new(g.members as i64)));
        for (tp, c) in broker.groups().committed(&g.id, None) {
            let labels: Labels = vec![
                ("group", g.id.clone()),
                ("topic", tp.0.clone()),
                ("partition", tp.1.to_string()),
            ];
            committed.push((labels.clone(), ConstGauge::new(c.offset)));
            if let Ok(log) = broker.storage().partition(&tp.0, tp.1) {
                if let Ok(l) = crate::group::lag::lag(&log, Some(c.offset), now_ms) {
                    lag.push((labels.clone(), ConstGauge::new(l.records)));
                    lag_seconds.push((labels, ConstGauge::new(l.ms.max(0) as f64 / 1000.0)));
                }
            }
        }
    }
    family(encoder, "group_members", "Members of a consumer group", None, members)?;
    family(
        encoder,
        "group_committed_offset",
        "A group's committed offset for a partition",
        None,
        committed,
    )?;
    family(
        encoder,
        "group_lag_records",
        "Records between a group's committed offset and the partition's end",
        None,
        lag,
    )?;
    family(
        encoder,
        "group_lag",
        "Age of the oldest record a group has not consumed (0 when caught up)",
        Some(&Unit::Seconds),
        lag_seconds,
    )
}

/// Resident memory, open file descriptors and CPU time of this process, from /proc.
fn process_metrics(encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096);
    if let Some(resident_pages) = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<i64>().ok()))
    {
        single(
            encoder,
            "process_resident_memory",
            "Resident memory of the broker process",
            Some(&Unit::Bytes),
            ConstGauge::new(resident_pages * page),
        )?;
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        single(
            encoder,
            "process_open_fds",
            "Open file descriptors of the broker process",
            None,
            ConstGauge::new(fds.count() as i64),
        )?;
    }
    if let Ok(u) = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF) {
        let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        single(
            encoder,
            "process_cpu",
            "CPU time (user and system) of the broker process",
            Some(&Unit::Seconds),
            ConstCounter::new(secs(u.user_time()) + secs(u.system_time())),
        )?;
    }
    Ok(())
}

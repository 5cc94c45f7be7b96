//! The per-request record ([`RequestInfo`]): what a request is, when it arrived and
//! started, and the time it spent in storage and in waits; the task-local that lets a
//! handler note errors and storage time without passing it around; and the writer's
//! accounting of a finished request (latency, errors, the slow-request warning).

use super::*;

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

impl Metrics {
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

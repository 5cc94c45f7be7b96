//! [`Client`]: one pipelined connection to a broker, reopened when it fails, plus a cache
//! of topic partition counts. Producer, Consumer and Admin each own one, so a consumer's
//! long-poll fetch never holds up a producer's acknowledgements (responses on one
//! connection come back in request order).
//!
//! In a cluster, requests for a partition (produce, fetch, ListOffsets, DeleteRecords) go
//! to its leader, learnt from Metadata, on a connection of its own; everything else goes
//! to the bootstrap broker. NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE,
//! FENCED_LEADER_EPOCH and lost connections refresh the routes ([`Client::refresh_routes`]);
//! a bootstrap broker that is gone is replaced by any other broker the client knows.
//!
//! Group requests go to the group's coordinator (the leader of its offsets-log
//! partition), found with FindCoordinator and cached; NOT_COORDINATOR,
//! COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS and lost connections look it
//! up again and retry ([`Client::call_coordinator`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use runnel_protocol::frame::{ResponseFrame, DEFAULT_MAX_RESPONSE_FRAME_BYTES};
use runnel_protocol::messages::{ApiVersionsRequest, FindCoordinatorRequest, MetadataRequest, MetadataResponse};
use runnel_protocol::{ErrorCode, Request, Response};

use crate::connection::Connection;
use crate::error::{Error, Result};

/// Connection settings shared by [`crate::Producer`], [`crate::Consumer`] and
/// [`crate::Admin`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// How long opening a TCP connection may take. Default 10 s; Kafka's
    /// `socket.connection.setup.timeout.ms`.
    pub connect_timeout: Duration,
    /// How long to wait for any response (a fetch adds its `max_wait` to this). Default
    /// 30 s; Kafka's `request.timeout.ms`.
    pub request_timeout: Duration,
    /// Largest response frame accepted; a larger one closes the connection. Default
    /// 256 MiB (Kafka clients size this from `fetch.max.bytes`).
    pub max_response_frame_bytes: u32,
    /// Sent to the broker in ApiVersions, for its logs. Default `runnel-client VERSION`;
    /// Kafka's `client.id`.
    pub client_id: String,
    /// How often cached partition counts are refreshed from the broker, so producers
    /// and consumers see a topic that grew. Default 5 min; Kafka's `metadata.max.age.ms`.
    pub metadata_max_age: Duration,
    /// Ask the broker to create a topic this client names that does not exist (with
    /// the broker's `num_partitions`, when its `auto_create_topics_enable` is on), as
    /// Kafka's `allow.auto.create.topics`. Default `false`, so a consumer's or admin's
    /// typo never creates a topic; [`crate::ProducerConfig`]'s default turns it on, as
    /// Kafka producers do.
    pub auto_create_topics: bool,
    /// Speak TLS to the brokers, trusting these CAs (and presenting a certificate, for
    /// mutual TLS). Default `None`: plaintext.
    pub tls: Option<crate::TlsConfig>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_response_frame_bytes: DEFAULT_MAX_RESPONSE_FRAME_BYTES,
            client_id: concat!("runnel-client ", env!("CARGO_PKG_VERSION")).into(),
            metadata_max_age: Duration::from_secs(300),
            auto_create_topics: false,
            tls: None,
        }
    }
}

/// A cheap-to-clone handle; clones share the connection.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    addr: String,
    config: ClientConfig,
    conn: tokio::sync::Mutex<Option<Arc<Connection>>>,
    partitions: Mutex<HashMap<String, u32>>,
    /// Bumped whenever `partitions` changes, so others can cache from it cheaply.
    partitions_version: AtomicU64,
    routes: Mutex<Routes>,
    /// Connections to brokers other than the bootstrap one, by address.
    others: tokio::sync::Mutex<HashMap<String, Arc<Connection>>>,
    /// A route refresh is running (at most one at a time).
    refreshing: AtomicBool,
    /// Route refreshes so far: each asks the next broker in turn, so a broker with stale
    /// metadata (one cut off from the cluster) cannot keep the client on a deposed
    /// leader.
    refreshes: AtomicU64,
    /// Bumped (and `routes_changed` notified) whenever a partition's leader changes, so
    /// a producer backing off after a leader error sends again at once.
    routes_version: AtomicU64,
    routes_changed: tokio::sync::Notify,
    /// Group → `host:port` of its coordinator, from FindCoordinator.
    coordinators: Mutex<HashMap<String, Arc<str>>>,
}

/// Where each partition's leader is, from the last Metadata.
#[derive(Default)]
struct Routes {
    /// Broker id → `host:port` of its native listener (shared, so a route costs no copy).
    brokers: HashMap<i32, Arc<str>>,
    /// Topic → each partition's leader's broker id and leader epoch, by partition
    /// (looked up by `&str` on every batch and fetch: no key is built). An answer with an
    /// older epoch than the one held (from a broker whose metadata is behind) does not
    /// replace it (Kafka's KIP-320).
    leaders: HashMap<String, Vec<(i32, i32)>>,
    /// The bootstrap broker's id: its partitions are reached on the bootstrap connection,
    /// whatever address it advertises.
    bootstrap_id: Option<i32>,
}

impl Client {
    /// Connects to the broker at `addr` (`host:port`) and checks that it speaks this
    /// protocol, so a wrong address fails here rather than at the first send.
    /// A host without a port (`localhost`) means the default port, 7117. `addr` may be a
    /// bootstrap list, `host:port,host:port,...`: the first broker that answers is used
    /// (any live broker of a cluster will do).
    pub async fn connect(addr: impl Into<String>, config: ClientConfig) -> Result<Client> {
        let addr = addr.into();
        let candidates: Vec<&str> = addr.split(',').map(str::trim).filter(|a| !a.is_empty()).collect();
        let mut failures = Vec::new();
        for candidate in &candidates {
            match Client::connect_one(candidate, config.clone()).await {
                Ok(c) => return Ok(c),
                Err(e) if candidates.len() == 1 => return Err(e),
                Err(e) => failures.push(e.to_string()),
            }
        }
        Err(Error::Connect {
            addr,
            reason: if failures.is_empty() {
                "no broker address given".into()
            } else {
                format!("no bootstrap broker answered: {}", failures.join("; "))
            },
        })
    }

    async fn connect_one(addr: &str, config: ClientConfig) -> Result<Client> {
        let client = Client {
            inner: Arc::new(Inner {
                addr: with_default_port(addr),
                config,
                conn: tokio::sync::Mutex::new(None),
                partitions: Mutex::new(HashMap::new()),
                partitions_version: AtomicU64::new(0),
                routes: Mutex::new(Routes::default()),
                others: tokio::sync::Mutex::new(HashMap::new()),
                refreshing: AtomicBool::new(false),
                refreshes: AtomicU64::new(0),
                routes_version: AtomicU64::new(0),
                routes_changed: tokio::sync::Notify::new(),
                coordinators: Mutex::new(HashMap::new()),
            }),
        };
        let versions = client
            .call(&ApiVersionsRequest {
                client_software: client.inner.config.client_id.clone(),
            })
            .await
            .map_err(|e| match e {
                // The first exchange failed: the address is wrong rather than a link lost.
                Error::Disconnected { addr, reason } => Error::Connect { addr, reason },
                e => e,
            })?;
        // A Kafka listener answers a native ApiVersions with a frame that happens to
        // parse as an empty one: a Runnel broker always lists its APIs.
        if versions.apis.is_empty() {
            return Err(Error::Connect {
                addr: client.inner.addr.clone(),
                reason: format!(
                    "it answered, but not as a Runnel broker (a Kafka listener?) — the native \
                     protocol is on port {} by default (--broker)",
                    runnel_protocol::DEFAULT_BROKER_PORT
                ),
            });
        }
        tokio::spawn(refresh_partition_counts(
            Arc::downgrade(&client.inner),
            client.inner.config.metadata_max_age,
        ));
        Ok(client)
    }

    /// The broker's address, as connected to (with the default port added).
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// The settings it was made with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    async fn connection(&self) -> Result<Arc<Connection>> {
        let mut conn = self.inner.conn.lock().await;
        if let Some(c) = conn.as_ref().filter(|c| !c.is_dead()) {
            return Ok(c.clone());
        }
        let cfg = &self.inner.config;
        let c = Arc::new(Connection::open(&self.inner.addr, cfg).await?);
        *conn = Some(c.clone());
        Ok(c)
    }

    /// The connection to `addr` (`None`: the bootstrap broker's).
    async fn connection_at(&self, addr: Option<&str>) -> Result<Arc<Connection>> {
        let Some(addr) = addr.filter(|a| *a != self.inner.addr) else {
            return self.connection().await;
        };
        let mut others = self.inner.others.lock().await;
        if let Some(c) = others.get(addr).filter(|c| !c.is_dead()) {
            return Ok(c.clone());
        }
        let cfg = &self.inner.config;
        let c = Arc::new(Connection::open(addr, cfg).await?);
        others.insert(addr.to_owned(), c.clone());
        Ok(c)
    }

    /// The address of `topic`/`partition`'s leader, if Metadata named one.
    pub(crate) fn leader_of(&self, topic: &str, partition: u32) -> Option<Arc<str>> {
        let routes = crate::sync::lock(&self.inner.routes);
        let (id, _) = routes.leaders.get(topic)?.get(partition as usize)?;
        if routes.bootstrap_id == Some(*id) {
            return None;
        }
        routes.brokers.get(id).cloned()
    }

    /// Sends a request about one partition to its leader (the bootstrap broker when the
    /// leader is not known); an answer or error that says the leader moved refreshes the
    /// routes for the next call.
    pub(crate) async fn call_partition<R: Request>(&self, topic: &str, partition: u32, req: &R) -> Result<R::Response> {
        let addr = self.leader_of(topic, partition);
        let result = match self
            .start_call_at(addr.as_deref(), req, Vec::new(), Duration::ZERO)
            .await
        {
            Ok(call) => call.response().await.map(|(r, _)| r),
            Err(e) => Err(e),
        };
        if result.as_ref().err().is_some_and(leader_moved) {
            self.refresh_routes(topic);
        }
        result
    }

    /// Asks for `topic`'s metadata again in the background (one refresh at a time), so
    /// the next requests go to its partitions' current leaders.
    pub(crate) fn refresh_routes(&self, topic: &str) {
        if self.inner.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let client = self.clone();
        let mut topics: Vec<String> = crate::sync::lock(&self.inner.partitions).keys().cloned().collect();
        if !topics.iter().any(|t| t == topic) {
            topics.push(topic.to_owned());
        }
        tokio::spawn(async move {
            let _ = client.refresh_metadata(topics).await;
            client.inner.refreshing.store(false, Ordering::Release);
        });
    }

    /// A broker named `leader` (in `epoch`) as the partition's leader in an error
    /// answer (KIP-951): taken when it is newer than the route held and the client knows
    /// that broker's address; true if the route moved (the next send goes there without
    /// a metadata round trip).
    pub(crate) fn learn_leader(&self, topic: &str, partition: u32, leader: i32, epoch: i32) -> bool {
        let mut routes = crate::sync::lock(&self.inner.routes);
        if !routes.brokers.contains_key(&leader) {
            return false;
        }
        let Some(l) = routes
            .leaders
            .get_mut(topic)
            .and_then(|ls| ls.get_mut(partition as usize))
        else {
            return false;
        };
        if epoch <= l.1 && l.0 >= 0 {
            return false;
        }
        *l = (leader, epoch);
        drop(routes);
        self.inner.routes_version.fetch_add(1, Ordering::AcqRel);
        self.inner.routes_changed.notify_waiters();
        true
    }

    /// Bumped whenever a partition's leader changes in the routes.
    pub(crate) fn routes_version(&self) -> u64 {
        self.inner.routes_version.load(Ordering::Acquire)
    }

    /// Notified whenever `routes_version` moves.
    pub(crate) fn routes_changed(&self) -> &tokio::sync::Notify {
        &self.inner.routes_changed
    }

    /// The broker the next route refresh asks: the bootstrap broker and every other
    /// known broker in turn (`None`: the bootstrap broker).
    fn next_metadata_source(&self) -> Option<Arc<str>> {
        let turn = self.inner.refreshes.fetch_add(1, Ordering::Relaxed);
        let routes = crate::sync::lock(&self.inner.routes);
        let mut others: Vec<(i32, Arc<str>)> = routes
            .brokers
            .iter()
            .filter(|(id, _)| Some(**id) != routes.bootstrap_id)
            .map(|(id, a)| (*id, a.clone()))
            .collect();
        others.sort();
        let k = (turn % (others.len() as u64 + 1)) as usize;
        (k > 0).then(|| others[k - 1].1.clone())
    }

    /// Sends a request and returns its response, or the request-level error it carries.
    pub async fn call<R: Request>(&self, req: &R) -> Result<R::Response> {
        let (resp, _) = self.call_with(req, Vec::new(), Duration::ZERO).await?;
        Ok(resp)
    }

    /// Sends a request with a trailer; returns the response and its trailer. `extra` is
    /// added to the request timeout (a long poll's wait).
    pub(crate) async fn call_with<R: Request>(
        &self,
        req: &R,
        trailer: Vec<Bytes>,
        extra: Duration,
    ) -> Result<(R::Response, Bytes)> {
        self.start_call(req, trailer, extra).await?.response().await
    }

    /// Queues a request on the connection and returns once it is queued (requests leave
    /// in the order they were queued); its response is awaited separately. The request
    /// timeout covers both parts.
    pub(crate) async fn start_call<R: Request>(
        &self,
        req: &R,
        trailer: Vec<Bytes>,
        extra: Duration,
    ) -> Result<PendingCall<R>> {
        self.start_call_at(None, req, trailer, extra).await
    }

    /// As [`Client::start_call`], on the connection to `addr` (`None`: the bootstrap
    /// broker's).
    pub(crate) async fn start_call_at<R: Request>(
        &self,
        addr: Option<&str>,
        req: &R,
        trailer: Vec<Bytes>,
        extra: Duration,
    ) -> Result<PendingCall<R>> {
        let timeout = self.inner.config.request_timeout + extra;
        let deadline = tokio::time::Instant::now() + timeout;
        let queued = async {
            let conn = self.connection_at(addr).await?;
            let rx = conn.enqueue(req, trailer, true).await?.ok_or(Error::Closed)?;
            Ok::<_, Error>((conn, rx))
        };
        let (conn, rx) = match tokio::time::timeout_at(deadline, queued).await {
            Ok(r) => r?,
            Err(_) => return Err(Error::Timeout(timeout)),
        };
        Ok(PendingCall {
            conn,
            rx,
            deadline,
            timeout,
            _response: std::marker::PhantomData,
        })
    }

    /// Sends a request that gets no response (produce with acks none) to `addr` (`None`:
    /// the bootstrap broker).
    pub(crate) async fn send_only_at<R: Request>(
        &self,
        addr: Option<&str>,
        req: &R,
        trailer: Vec<Bytes>,
    ) -> Result<()> {
        let conn = self.connection_at(addr).await?;
        conn.enqueue(req, trailer, false).await.map(|_| ())
    }

    /// Metadata for `topics` (all topics if empty), from the bootstrap broker or, if it
    /// cannot be reached, any other broker the client knows. Updates the routes to each
    /// partition's leader.
    pub async fn metadata(&self, topics: Vec<String>) -> Result<MetadataResponse> {
        let auto_create = self.inner.config.auto_create_topics && !topics.is_empty();
        self.metadata_with(topics, auto_create).await
    }

    /// A background refresh of what the client has cached: it never creates a topic (a
    /// deleted topic stays deleted; Kafka's clients likewise only create on use), and a
    /// topic the broker no longer knows is forgotten.
    async fn refresh_metadata(&self, topics: Vec<String>) -> Result<MetadataResponse> {
        let req = MetadataRequest {
            allow_auto_topic_creation: false,
            topics: topics.clone(),
        };
        let resp = match self.next_metadata_source() {
            Some(addr) => match self.call_at(&addr, &req, Duration::ZERO).await {
                Ok(resp) => {
                    self.learn_routes(&resp);
                    resp
                }
                Err(_) => self.metadata_with(topics, false).await?,
            },
            None => self.metadata_with(topics, false).await?,
        };
        let gone: Vec<&str> = resp
            .topics
            .iter()
            .filter(|t| ErrorCode::from_i32(t.error_code) == ErrorCode::UnknownTopicOrPartition)
            .map(|t| t.name.as_str())
            .collect();
        if !gone.is_empty() {
            let mut routes = crate::sync::lock(&self.inner.routes);
            for t in &gone {
                routes.leaders.remove(*t);
            }
            drop(routes);
            let mut cache = crate::sync::lock(&self.inner.partitions);
            for t in &gone {
                cache.remove(*t);
            }
        }
        Ok(resp)
    }

    async fn metadata_with(&self, topics: Vec<String>, auto_create: bool) -> Result<MetadataResponse> {
        let req = MetadataRequest {
            allow_auto_topic_creation: auto_create,
            topics,
        };
        let (resp, from_bootstrap) = self.call_any(&req).await?;
        if from_bootstrap {
            crate::sync::lock(&self.inner.routes).bootstrap_id = Some(resp.answered_by);
        }
        self.learn_routes(&resp);
        Ok(resp)
    }

    /// Takes brokers and partition leaders from a Metadata answer: a partition's leader
    /// is replaced only by one of the same or a newer leader epoch.
    fn learn_routes(&self, resp: &MetadataResponse) {
        {
            let mut routes = crate::sync::lock(&self.inner.routes);
            for b in &resp.brokers {
                routes
                    .brokers
                    .insert(b.node_id, Arc::from(format!("{}:{}", b.host, b.port)));
            }
            let mut moved = false;
            for t in resp.topics.iter().filter(|t| t.error_code == 0) {
                let held = routes.leaders.remove(&t.name).unwrap_or_default();
                let mut leaders = vec![(-1, -1); t.partitions.len()];
                for p in &t.partitions {
                    let i = p.partition as usize;
                    let Some(l) = leaders.get_mut(i) else { continue };
                    *l = match held.get(i) {
                        Some(&(id, epoch)) if epoch > p.leader_epoch && id >= 0 => (id, epoch),
                        _ => (p.leader_id, p.leader_epoch),
                    };
                    moved |= held.get(i).is_some_and(|h| h.0 != l.0);
                }
                routes.leaders.insert(t.name.clone(), leaders);
            }
            if moved {
                self.inner.routes_version.fetch_add(1, Ordering::AcqRel);
                self.inner.routes_changed.notify_waiters();
            }
        }
        let mut cache = crate::sync::lock(&self.inner.partitions);
        for t in &resp.topics {
            let count = t.partitions.len() as u32;
            if t.error_code == 0 && cache.insert(t.name.clone(), count) != Some(count) {
                self.inner.partitions_version.fetch_add(1, Ordering::Release);
            }
        }
    }

    /// Sends a request any broker can answer to the bootstrap broker or, if it cannot be
    /// reached, to each other broker the client knows in turn. The response, and whether
    /// the bootstrap broker gave it.
    async fn call_any<R: Request>(&self, req: &R) -> Result<(R::Response, bool)> {
        match self.call(req).await {
            Ok(r) => Ok((r, true)),
            Err(e)
                if matches!(
                    e,
                    Error::Connect { .. } | Error::Disconnected { .. } | Error::Timeout(_)
                ) =>
            {
                let known: Vec<Arc<str>> = crate::sync::lock(&self.inner.routes)
                    .brokers
                    .values()
                    .cloned()
                    .collect();
                let mut answer = Err(e);
                for addr in known.iter().filter(|a| ***a != *self.inner.addr) {
                    answer = self.call_at(addr, req, Duration::ZERO).await;
                    if answer.is_ok() {
                        break;
                    }
                }
                answer.map(|r| (r, false))
            }
            Err(e) => Err(e),
        }
    }

    /// As [`Client::call`], falling back to the other known brokers when the bootstrap
    /// broker cannot be reached.
    pub(crate) async fn call_any_broker<R: Request>(&self, req: &R) -> Result<R::Response> {
        self.call_any(req).await.map(|(r, _)| r)
    }

    /// One request to the broker at `addr`, and its response.
    async fn call_at<R: Request>(&self, addr: &str, req: &R, extra: Duration) -> Result<R::Response> {
        let call = self.start_call_at(Some(addr), req, Vec::new(), extra).await?;
        call.response().await.map(|(r, _)| r)
    }

    /// Sends a request of `group` to the group's coordinator and returns its response.
    /// The coordinator is found with FindCoordinator and cached; when the answer says it
    /// moved (or is loading), or its connection is lost, it is looked up again and the
    /// request sent again, with a growing pause, until the request timeout. `extra` is
    /// added to each attempt's timeout (a long poll's wait).
    pub(crate) async fn call_coordinator<R: Request>(
        &self,
        group: &str,
        req: &R,
        extra: Duration,
    ) -> Result<R::Response> {
        let deadline = tokio::time::Instant::now() + self.inner.config.request_timeout;
        let mut pause = Duration::from_millis(50);
        loop {
            let attempt = match self.coordinator_of(group).await {
                Ok(addr) => self.call_at(&addr, req, extra).await,
                Err(e) => Err(e),
            };
            match attempt {
                Err(e) if coordinator_moved(&e) && tokio::time::Instant::now() + pause < deadline => {
                    crate::sync::lock(&self.inner.coordinators).remove(group);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Err(e) => {
                    // A timeout (a paused broker, say): the caller decides whether to
                    // try again, and then it asks where the coordinator is afresh.
                    if e.is_retriable() {
                        crate::sync::lock(&self.inner.coordinators).remove(group);
                    }
                    return Err(e);
                }
                answer => return answer,
            }
        }
    }

    /// The address of `group`'s coordinator (cached; FindCoordinator when unknown).
    async fn coordinator_of(&self, group: &str) -> Result<Arc<str>> {
        if let Some(addr) = crate::sync::lock(&self.inner.coordinators).get(group) {
            return Ok(addr.clone());
        }
        let (resp, _) = self
            .call_any(&FindCoordinatorRequest {
                group_id: group.to_owned(),
            })
            .await?;
        let addr: Arc<str> = Arc::from(format!("{}:{}", resp.host, resp.port));
        crate::sync::lock(&self.inner.coordinators).insert(group.to_owned(), addr.clone());
        Ok(addr)
    }

    /// `host:port` of every live broker, from a fresh Metadata.
    pub(crate) async fn brokers(&self) -> Result<Vec<String>> {
        let resp = self.metadata(Vec::new()).await?;
        Ok(resp.brokers.iter().map(|b| format!("{}:{}", b.host, b.port)).collect())
    }

    /// Sends `req` to the broker at `addr` (a listing each broker answers for itself).
    pub(crate) async fn call_broker<R: Request>(&self, addr: &str, req: &R) -> Result<R::Response> {
        self.call_at(addr, req, Duration::ZERO).await
    }

    /// How many partitions `topic` has (cached after the first lookup).
    pub async fn partition_count(&self, topic: &str) -> Result<u32> {
        if let Some(n) = crate::sync::lock(&self.inner.partitions).get(topic) {
            return Ok(*n);
        }
        let resp = self.metadata(vec![topic.to_owned()]).await?;
        let t = resp
            .topics
            .iter()
            .find(|t| t.name == topic)
            .ok_or_else(|| Error::Protocol(format!("metadata response lacks topic {topic:?}")))?;
        Error::check(t.error_code, &t.error_message)?;
        Ok(t.partitions.len() as u32)
    }

    /// Forgets a topic's cached partition count (after the broker says it is unknown).
    pub(crate) fn forget_topic(&self, topic: &str) {
        crate::sync::lock(&self.inner.partitions).remove(topic);
        self.inner.partitions_version.fetch_add(1, Ordering::Release);
    }

    /// Changes whenever a cached partition count changes or is forgotten.
    pub(crate) fn partitions_version(&self) -> u64 {
        self.inner.partitions_version.load(Ordering::Acquire)
    }
}

/// Every `every`, asks the broker again for the partition counts the client has cached;
/// a count that changed bumps `partitions_version`, which producers check on each send.
/// Ends once the client is gone.
async fn refresh_partition_counts(inner: std::sync::Weak<Inner>, every: Duration) {
    loop {
        tokio::time::sleep(every.max(Duration::from_millis(10))).await;
        let Some(inner) = inner.upgrade() else { return };
        let client = Client { inner };
        let topics: Vec<String> = crate::sync::lock(&client.inner.partitions).keys().cloned().collect();
        if !topics.is_empty() {
            // A failure (broker away) is retried at the next turn; sends see it anyway.
            let _ = client.refresh_metadata(topics).await;
        }
    }
}

/// A request queued by [`Client::start_call`], awaiting its response.
pub(crate) struct PendingCall<R> {
    conn: Arc<Connection>,
    rx: tokio::sync::oneshot::Receiver<Result<ResponseFrame>>,
    deadline: tokio::time::Instant,
    timeout: Duration,
    _response: std::marker::PhantomData<fn() -> R>,
}

impl<R: Request> PendingCall<R> {
    /// The decoded response and its trailer, or the request-level error it carries.
    pub(crate) async fn response(self) -> Result<(R::Response, Bytes)> {
        let frame = match tokio::time::timeout_at(self.deadline, self.conn.response(self.rx)).await {
            Ok(r) => r?,
            Err(_) => return Err(Error::Timeout(self.timeout)),
        };
        let resp = <R::Response as prost::Message>::decode(frame.body)
            .map_err(|e| Error::Protocol(format!("cannot decode {} response: {e}", R::KEY.name())))?;
        Error::check(resp.error_code(), resp.error_message())?;
        Ok((resp, frame.trailer))
    }
}

/// `Ok` or the error of a per-topic/per-partition result.
pub(crate) fn check(code: i32, message: &str) -> Result<()> {
    Error::check(code, message)
}

/// Whether an error says the partition's leader is elsewhere now (or its connection is
/// gone): the routes need refreshing.
pub(crate) fn leader_moved(e: &Error) -> bool {
    matches!(
        e.code(),
        Some(ErrorCode::NotLeaderOrFollower | ErrorCode::LeaderNotAvailable | ErrorCode::FencedLeaderEpoch)
    ) || matches!(
        e,
        Error::Connect { .. } | Error::Disconnected { .. } | Error::Timeout(_)
    )
}

/// The group's coordinator moved, is loading, or could not be reached: find it again.
pub(crate) fn coordinator_moved(e: &Error) -> bool {
    matches!(
        e.code(),
        Some(ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable | ErrorCode::CoordinatorLoadInProgress)
    ) || matches!(e, Error::Connect { .. } | Error::Disconnected { .. })
}

pub(crate) fn is_unknown_topic(e: &Error) -> bool {
    e.code() == Some(ErrorCode::UnknownTopicOrPartition)
}

/// `addr` with the native default port added when it names a host alone (`localhost`,
/// `10.0.0.5`, `[::1]`, `::1`).
pub(crate) fn with_default_port(addr: &str) -> String {
    let port = runnel_protocol::DEFAULT_BROKER_PORT;
    if addr.starts_with('[') {
        return if addr.ends_with(']') {
            format!("{addr}:{port}")
        } else {
            addr.to_owned()
        };
    }
    match addr.matches(':').count() {
        0 => format!("{addr}:{port}"),
        1 => addr.to_owned(),
        // More than one colon and no brackets: an IPv6 address alone.
        _ => format!("[{addr}]:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_default_port;

    #[test]
    fn a_host_alone_means_the_default_port() {
        assert_eq!(with_default_port("localhost"), "localhost:7117");
        assert_eq!(with_default_port("localhost:9000"), "localhost:9000");
        assert_eq!(with_default_port("10.1.2.3"), "10.1.2.3:7117");
        assert_eq!(with_default_port("[::1]"), "[::1]:7117");
        assert_eq!(with_default_port("[::1]:8000"), "[::1]:8000");
        assert_eq!(with_default_port("::1"), "[::1]:7117");
    }
}

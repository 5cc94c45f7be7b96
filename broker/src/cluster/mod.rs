//! The cluster: brokers agree on metadata through a Raft quorum (openraft) of controller
//! voters, and every broker applies the committed metadata log to its in-memory
//! [`Image`]. The Raft leader is the controller, the only writer: brokers send it their
//! registration, heartbeats and topic changes ([`controller`]); it fences brokers that
//! go silent and moves their partition leaderships ([`image`] decides where).
//!
//! With no cluster flags a broker is a one-node cluster, its own quorum: the same code
//! path, with Raft's log on the local disk as the only copy.
//!
//! ```text
//! member (every broker)  --ControllerWrite-->  controller (Raft leader)  --client_write-->  Raft log
//! Raft log (committed)  --apply-->  Image (every broker)  +  local (partition directories)
//! ```

pub mod controller;
pub mod image;
pub mod local;
mod member;
pub mod network;
pub mod peer;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use openraft::BasicNode;
use runnel_protocol::ErrorCode;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::storage::LogManager;
pub use image::{Image, MetaCommand, MetaReply, NodeId, NO_LEADER};

openraft::declare_raft_types!(
    /// The metadata quorum's Raft types: commands are [`MetaCommand`]s.
    pub TypeConfig: D = MetaCommand, R = MetaReply
);

pub type Raft = openraft::Raft<TypeConfig>;

/// Default for `broker_session_timeout_ms`: a broker silent this long is fenced and its
/// partitions get new leaders. Kafka's is 9 s, Redpanda's elections take ~1.5 s; 2 s
/// (four missed heartbeats) keeps a leader's death under the 3 s target for moving its
/// partitions while a heartbeat delayed by a loaded machine does not fence anyone.
pub const DEFAULT_SESSION_TIMEOUT_MS: u64 = 2000;
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 500;
/// The metadata quorum's Raft heartbeat, and its election timeouts (a follower that has
/// not heard from the leader for 0.6–0.9 s stands for election): short, so that a dead
/// controller is replaced in about a second and a half (openraft also waits out the
/// leader's lease before granting votes).
const RAFT_HEARTBEAT_MS: u64 = 150;

/// How long a request that needs the controller waits for one (no quorum: it fails
/// with REQUEST_TIMED_OUT after this).
pub const DEFAULT_CONTROLLER_TIMEOUT_MS: u64 = 5000;
/// Kafka's default `replica.lag.time.max.ms`. A dead follower leaves the ISR sooner, when
/// it is fenced (`broker_session_timeout_ms`); this bounds a live but slow or cut-off one.
pub const DEFAULT_REPLICA_LAG_TIME_MAX_MS: u64 = 30_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This broker's id (Kafka's `node.id`).
    pub node_id: NodeId,
    /// The controller voters: id → native listener `host:port`. Empty: this broker
    /// alone, its own quorum.
    pub voters: BTreeMap<NodeId, String>,
    pub broker_session_timeout_ms: u64,
    pub broker_heartbeat_interval_ms: u64,
    pub controller_timeout_ms: u64,
    /// A follower not caught up for this long leaves the ISR (Kafka's
    /// `replica.lag.time.max.ms`).
    pub replica_lag_time_max_ms: u64,
    /// Peers this broker reaches at another address than the one they registered or
    /// are listed with (`--peer-address ID=HOST:PORT`): through a proxy, say — the fault
    /// tests cut links between brokers that way. Clients are not affected.
    pub peer_addresses: BTreeMap<NodeId, String>,
}

impl Default for ClusterConfig {
    fn default() -> ClusterConfig {
        ClusterConfig {
            node_id: 0,
            voters: BTreeMap::new(),
            broker_session_timeout_ms: DEFAULT_SESSION_TIMEOUT_MS,
            broker_heartbeat_interval_ms: DEFAULT_HEARTBEAT_INTERVAL_MS,
            controller_timeout_ms: DEFAULT_CONTROLLER_TIMEOUT_MS,
            replica_lag_time_max_ms: DEFAULT_REPLICA_LAG_TIME_MAX_MS,
            peer_addresses: BTreeMap::new(),
        }
    }
}

/// Parses `--controller-voters`: `1@host:port,2@host:port,...`.
pub fn parse_voters(s: &str) -> std::result::Result<BTreeMap<NodeId, String>, String> {
    let mut voters = BTreeMap::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (id, addr) = item
            .split_once('@')
            .ok_or_else(|| format!("{item:?}: expected ID@HOST:PORT"))?;
        let id: NodeId = id
            .parse()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| format!("{item:?}: the node id must be a number 0 or more"))?;
        if addr.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
            return Err(format!("{item:?}: expected ID@HOST:PORT"));
        }
        if voters.insert(id, addr.to_owned()).is_some() {
            return Err(format!("node id {id} appears twice"));
        }
    }
    if voters.is_empty() {
        return Err("no voters given".into());
    }
    Ok(voters)
}

/// Parses one `--peer-address`: `ID=HOST:PORT`.
pub fn parse_peer_address(s: &str) -> std::result::Result<(NodeId, String), String> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected ID=HOST:PORT"))?;
    let id: NodeId = id
        .trim()
        .parse()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| format!("{s:?}: the node id must be a number 0 or more"))?;
    if addr.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
        return Err(format!("{s:?}: expected ID=HOST:PORT"));
    }
    Ok((id, addr.trim().to_owned()))
}

/// Why a cluster request was refused: a code both protocols send, and a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub code: i32,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code: code.code(),
            message: message.into(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        ErrorCode::from_i32(self.code)
    }

    fn of(e: &Error) -> Refusal {
        Refusal {
            code: e.code().code(),
            message: e.to_string(),
        }
    }
}

/// What the data directory remembers about the cluster (`__cluster_raft/cluster.json`):
/// a later start with other flags, or the directory of another cluster, is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    node_id: NodeId,
    voters: BTreeMap<NodeId, String>,
    cluster_id: Option<String>,
}

/// This broker's place in the cluster. Shared (`Arc`) by the service layer.
pub struct Cluster {
    cfg: ClusterConfig,
    raft: Raft,
    image: Arc<ArcSwap<Image>>,
    image_changed: Arc<tokio::sync::Notify>,
    storage: Arc<LogManager>,
    dir: std::path::PathBuf,
    /// A random id of this process, so the controller tells a restart from a duplicate.
    incarnation: String,
    native: String,
    kafka: Option<String>,
    /// The cluster id this data directory belongs to, once known (shared with the Raft
    /// network, which sends it with every message).
    cluster_id: Arc<Mutex<Option<String>>>,
    /// Voters that refuse this broker's Raft messages as another cluster's: a quorum of
    /// them means this data directory belongs to another cluster (see `member`).
    refused_by: Arc<Mutex<BTreeMap<u64, String>>>,
    controller: controller::ControllerState,
    peers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<peer::Peer>>>>,
    registered: watch::Sender<bool>,
    /// Set when this broker cannot go on (another live process has its node id, or its
    /// data belongs to another cluster): the daemon exits with this message.
    fatal: watch::Sender<Option<String>>,
    stopping: AtomicBool,
}

impl Cluster {
    /// Opens the Raft state in the data directory and starts this broker's Raft node,
    /// its membership loop (registration, heartbeats) and, when it is the controller,
    /// the controller's loop. `native` and `kafka` are this broker's listener addresses
    /// as others should dial them.
    pub async fn start(
        mut cfg: ClusterConfig,
        storage: Arc<LogManager>,
        native: String,
        kafka: Option<String>,
    ) -> Result<Arc<Cluster>> {
        let dir = storage.config().data_dir.join(store::RAFT_DIR);
        // Checked as given: a broker alone stores no voter list, so it may change its
        // listen address between starts.
        let identity = check_identity(&dir, &cfg)?;
        if cfg.voters.is_empty() {
            cfg.voters.insert(cfg.node_id, native.clone());
        }
        let log = store::LogStore::open(&dir).map_err(Error::io("open the metadata Raft log in", &dir))?;
        let sm = store::StateMachine::open(&dir, local::LocalReplicas::new(storage.clone()))
            .map_err(Error::io("open the metadata snapshot in", &dir))?;
        let image = sm.image.clone();
        let image_changed = sm.changed.clone();
        let raft_config = openraft::Config {
            cluster_name: "runnel".into(),
            heartbeat_interval: RAFT_HEARTBEAT_MS,
            election_timeout_min: 600,
            election_timeout_max: 900,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(1000),
            max_in_snapshot_log_to_keep: 100,
            ..Default::default()
        };
        let raft_config = Arc::new(raft_config.validate().map_err(|e| Error::InvalidConfig {
            key: "raft".into(),
            value: String::new(),
            reason: e.to_string(),
        })?);
        let cluster_id = Arc::new(Mutex::new(identity.cluster_id));
        let refused_by = Arc::new(Mutex::new(BTreeMap::new()));
        let network = network::Network {
            cluster_id: cluster_id.clone(),
            refused_by: refused_by.clone(),
            peer_addresses: cfg.peer_addresses.clone(),
        };
        let raft = Raft::new(raft_id(cfg.node_id), raft_config, network, log, sm)
            .await
            .map_err(|e| Error::Io {
                op: "start the metadata Raft node in",
                path: dir.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
        let voters: BTreeMap<u64, BasicNode> = cfg
            .voters
            .iter()
            .map(|(id, addr)| (raft_id(*id), BasicNode::new(addr)))
            .collect();
        if cfg.voters.contains_key(&cfg.node_id) {
            // Every voter initializes with the same membership; on a node that has a log
            // already this is refused, which is fine.
            if let Err(e) = raft.initialize(voters).await {
                tracing::debug!(error = %e, "metadata quorum already initialized");
            }
        }
        let cluster = Arc::new(Cluster {
            controller: controller::ControllerState::default(),
            cfg,
            raft,
            image,
            image_changed,
            storage,
            dir,
            incarnation: uuid::Uuid::new_v4().to_string(),
            native,
            kafka,
            cluster_id,
            refused_by,
            peers: Mutex::new(HashMap::new()),
            registered: watch::channel(false).0,
            fatal: watch::channel(None).0,
            stopping: AtomicBool::new(false),
        });
        tokio::spawn(member::run(Arc::downgrade(&cluster)));
        tokio::spawn(controller::run(Arc::downgrade(&cluster)));
        info!(
            node_id = cluster.cfg.node_id,
            voters = ?cluster.cfg.voters,
            "metadata quorum started"
        );
        Ok(cluster)
    }

    pub fn node_id(&self) -> NodeId {
        self.cfg.node_id
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.cfg
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The metadata as this broker has applied it.
    pub fn image(&self) -> arc_swap::Guard<Arc<Image>> {
        self.image.load()
    }

    /// Notified whenever the image changes. Create the `notified()` future before reading
    /// the image, so a change in between is not missed.
    pub fn image_changed(&self) -> Arc<tokio::sync::Notify> {
        self.image_changed.clone()
    }

    /// The current controller (Raft leader) as this broker knows it.
    pub fn controller_id(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader.map(node_id)
    }

    pub fn is_controller(&self) -> bool {
        self.controller_id() == Some(self.cfg.node_id)
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.cfg.voters.contains_key(&id)
    }

    /// The last metadata log index applied here.
    pub fn applied_index(&self) -> u64 {
        self.raft.metrics().borrow().last_applied.map_or(0, |l| l.index)
    }

    pub fn cluster_id(&self) -> Option<String> {
        self.image().cluster_id.clone()
    }

    /// Whether this broker may serve `topic`/`partition` as its leader: refused with
    /// NOT_LEADER_OR_FOLLOWER when another broker leads it, LEADER_NOT_AVAILABLE when
    /// none does. A partition the image does not know is left to storage to answer.
    pub fn check_leader(&self, topic: &str, partition: u32) -> std::result::Result<(), Refusal> {
        let image = self.image();
        match image.partition(topic, partition) {
            // Not before this process's registration is in the image: until then the
            // image's leaderships are an earlier incarnation's (its registration moves
            // them, with a raised epoch), and an append acknowledged now could be lost.
            Some(p) if p.leader == self.cfg.node_id && !self.registered_in_image() => Err(Refusal::new(
                ErrorCode::NotLeaderOrFollower,
                format!(
                    "broker {} is starting: it leads {topic}-{partition} once its registration is applied",
                    self.cfg.node_id
                ),
            )),
            Some(p) if p.leader == self.cfg.node_id => Ok(()),
            Some(p) if p.leader == NO_LEADER => Err(Refusal::new(
                ErrorCode::LeaderNotAvailable,
                format!("{topic}-{partition} has no leader: every replica is offline"),
            )),
            Some(p) => Err(Refusal::new(
                ErrorCode::NotLeaderOrFollower,
                format!(
                    "broker {} does not lead {topic}-{partition}; broker {} does (epoch {})",
                    self.cfg.node_id, p.leader, p.leader_epoch
                ),
            )),
            // Not before its registration either: a process that has just started may
            // not have applied the metadata log yet, and its image may not know the
            // topic at all, while its storage holds the partition (the fault campaign
            // lost records a restarted broker acknowledged 40 ms after it started, as an
            // unreplicated leader, before its image said who leads).
            None if !self.registered_in_image() => Err(Refusal::new(
                ErrorCode::NotLeaderOrFollower,
                format!(
                    "broker {} is starting: it serves {topic}-{partition} once its registration is applied",
                    self.cfg.node_id
                ),
            )),
            None => Ok(()),
        }
    }

    /// Whether the image holds this process's registration, unfenced: until then its
    /// leaderships in the image belong to an earlier incarnation (a restart re-elects
    /// them, with a raised epoch).
    pub fn registered_in_image(&self) -> bool {
        self.image()
            .brokers
            .get(&self.cfg.node_id)
            .is_some_and(|b| !b.fenced && b.incarnation == self.incarnation)
    }

    /// Resolves once this broker is registered with the controller (the first time).
    pub async fn registered(&self) {
        let mut rx = self.registered.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Resolves with a message if this broker must stop (see `fatal`).
    pub async fn failed(&self) -> String {
        let mut rx = self.fatal.subscribe();
        let failed = rx.wait_for(|f| f.is_some()).await.map(|f| f.clone());
        match failed {
            Ok(f) => f.unwrap_or_default(),
            Err(_) => std::future::pending().await,
        }
    }

    fn fail(&self, message: String) {
        tracing::error!("{message}");
        self.fatal.send_replace(Some(message));
    }

    /// Controlled shutdown: asks the controller to move this broker's leaderships
    /// elsewhere (bounded by the controller timeout), then stops the Raft node.
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        let others_alive = self.image().live_brokers().iter().any(|b| *b != self.cfg.node_id);
        let registered = *self.registered.borrow() && self.fatal.borrow().is_none();
        if others_alive && registered {
            let started = Instant::now();
            match self
                .call_controller(controller::ControllerCall::ControlledShutdown {
                    id: self.cfg.node_id,
                    incarnation: self.incarnation.clone(),
                })
                .await
            {
                Ok(_) => {
                    info!(
                        ms = started.elapsed().as_millis() as u64,
                        "controlled shutdown: leaderships moved to other brokers"
                    );
                    self.hand_over_metadata().await;
                }
                Err(e) => warn!(error = %e.message, "controlled shutdown: could not move leaderships"),
            }
        }
        if let Err(e) = self.raft.shutdown().await {
            warn!(error = %e, "metadata Raft node did not stop cleanly");
        }
    }

    /// When this broker is the controller and stopping, waits (at most a heartbeat
    /// interval or two) until every live voter holds the whole metadata log: the fence
    /// that moved this broker's leaderships is committed here, but a voter that has not
    /// received it yet would otherwise learn it only after a new election, seconds later,
    /// and go on following the old leaders meanwhile.
    async fn hand_over_metadata(&self) {
        let m = self.raft.metrics().borrow().clone();
        if m.current_leader != Some(raft_id(self.cfg.node_id)) {
            return;
        }
        let Some(last) = m.last_log_index else { return };
        let live: Vec<u64> = self
            .image()
            .live_brokers()
            .into_iter()
            .filter(|id| *id != self.cfg.node_id && self.is_voter(*id))
            .map(raft_id)
            .collect();
        let wait = Duration::from_millis(2 * self.cfg.broker_heartbeat_interval_ms);
        let held = self
            .raft
            .wait(Some(wait))
            .metrics(
                |m| {
                    m.replication.as_ref().is_some_and(|r| {
                        live.iter()
                            .all(|id| r.get(id).is_some_and(|l| l.is_some_and(|l| l.index >= last)))
                    })
                },
                "every live voter holds the metadata log",
            )
            .await;
        match held {
            // They hold the records; the next Raft heartbeat tells them they are
            // committed.
            Ok(_) => tokio::time::sleep(Duration::from_millis(RAFT_HEARTBEAT_MS)).await,
            Err(_) => warn!(
                "stopping before every live voter received the last metadata records; they learn them at the next election"
            ),
        }
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Sends `call` to the controller (itself if it is the controller), retrying while
    /// there is none or it moves, up to the controller timeout; then waits until this
    /// broker has applied what the controller committed, so a change is visible here
    /// when the call returns.
    pub async fn call_controller(
        &self,
        call: controller::ControllerCall,
    ) -> std::result::Result<Vec<std::result::Result<(), Refusal>>, Refusal> {
        let timeout = Duration::from_millis(self.cfg.controller_timeout_ms);
        let deadline = Instant::now() + timeout;
        let mut last_error;
        let mut attempt_no = 0usize;
        // A broker this one took for the controller that said it is not (this broker's
        // view is stale, or that one has not heard of the election yet): ask the voters
        // in turn instead while the view says the same.
        let mut refused_by: Option<NodeId> = None;
        loop {
            attempt_no += 1;
            let believed = self.controller_id().filter(|id| Some(*id) != refused_by);
            let target = match believed {
                Some(id) => Some(id),
                None => {
                    // This broker knows no controller (it is not a voter, or its Raft
                    // node has not heard from the leader): ask the voters in turn, who
                    // pass the call on to the controller they know.
                    let others: Vec<NodeId> = self
                        .cfg
                        .voters
                        .keys()
                        .copied()
                        .filter(|v| *v != self.cfg.node_id)
                        .collect();
                    others.get(attempt_no % others.len().max(1)).copied()
                }
            };
            let attempt = match target {
                Some(id) if id == self.cfg.node_id => controller::handle(self, call.clone()).await,
                Some(id) => {
                    let r = self.forward(id, &call, deadline, false).await;
                    if believed == Some(id) && r.as_ref().err().is_some_and(|e| e.code() == ErrorCode::NotController) {
                        refused_by = Some(id);
                    }
                    r
                }
                None => Err(Refusal::new(ErrorCode::NotController, "no controller elected")),
            };
            match attempt {
                Ok(answer) => {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    let _ = self
                        .raft
                        .wait(Some(wait))
                        .applied_index_at_least(Some(answer.index), "metadata change applied here")
                        .await;
                    return Ok(answer.results);
                }
                Err(r) if r.code() == ErrorCode::NotController || r.code() == ErrorCode::RequestTimedOut => {
                    last_error = r.message;
                }
                Err(r) => return Err(r),
            }
            if Instant::now() >= deadline {
                return Err(Refusal::new(
                    ErrorCode::RequestTimedOut,
                    format!(
                        "no controller quorum within controller_timeout_ms={} ({last_error}); \
                         are a majority of the controller voters running?",
                        self.cfg.controller_timeout_ms
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn forward(
        &self,
        controller: NodeId,
        call: &controller::ControllerCall,
        deadline: Instant,
        forwarded: bool,
    ) -> std::result::Result<controller::Answer, Refusal> {
        let Some(addr) = self.address_of(controller) else {
            return Err(Refusal::new(
                ErrorCode::NotController,
                format!("no address for controller {controller}"),
            ));
        };
        let peer = {
            let mut peers = crate::sync::lock(&self.peers);
            peers
                .entry(addr.clone())
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(peer::Peer::new(addr.clone()))))
                .clone()
        };
        let payload = serde_json::to_vec(call).map_err(|e| Refusal::new(ErrorCode::InvalidRequest, e.to_string()))?;
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        let mut peer = peer.lock().await;
        match peer
            .call(
                &runnel_protocol::messages::ControllerWriteRequest { payload, forwarded },
                wait,
            )
            .await
        {
            Ok(resp) => serde_json::from_slice(&resp.payload)
                .map_err(|e| Refusal::new(ErrorCode::UnknownServerError, format!("controller's answer: {e}"))),
            Err(peer::PeerError::Refused { code, message, .. }) => Err(Refusal::new(code, message)),
            Err(e) => Err(Refusal::new(ErrorCode::NotController, e.to_string())),
        }
    }

    /// Where this broker dials broker `id`'s native listener: `--peer-address` if given,
    /// else the address it registered, else (a voter not yet registered) the voter list's.
    pub fn address_of(&self, id: NodeId) -> Option<String> {
        if let Some(a) = self.cfg.peer_addresses.get(&id) {
            return Some(a.clone());
        }
        self.image()
            .brokers
            .get(&id)
            .map(|b| b.native.clone())
            .or_else(|| self.cfg.voters.get(&id).cloned())
    }

    /// Remembers the cluster id in the data directory once the image has one; a
    /// directory that remembers another is refused at registration (see `member`).
    fn remember_cluster_id(&self, id: &str) -> std::io::Result<()> {
        let mut known = crate::sync::lock(&self.cluster_id);
        if known.as_deref() == Some(id) {
            return Ok(());
        }
        *known = Some(id.to_owned());
        let path = self.dir.join("cluster.json");
        let stored: Option<Identity> = store::read_json(&path)?;
        let identity = Identity {
            cluster_id: Some(id.to_owned()),
            ..stored.unwrap_or(Identity {
                node_id: self.cfg.node_id,
                voters: BTreeMap::new(),
                cluster_id: None,
            })
        };
        store::write_atomic(&self.dir, "cluster.json", &identity, true)
    }
}

fn raft_id(id: NodeId) -> u64 {
    id as u64
}

fn node_id(id: u64) -> NodeId {
    id as NodeId
}

/// Checks the flags against what the data directory remembers (first start: writes it).
fn check_identity(dir: &Path, cfg: &ClusterConfig) -> Result<Identity> {
    crate::storage::io::create_dir_durable(dir).map_err(Error::io("create", dir))?;
    let path = dir.join("cluster.json");
    let stored: Option<Identity> = store::read_json(&path).map_err(Error::io("read", &path))?;
    let refuse = |reason: String| Error::InvalidConfig {
        key: "cluster".into(),
        value: path.display().to_string(),
        reason,
    };
    match stored {
        Some(s) if s.node_id != cfg.node_id => Err(refuse(format!(
            "this data directory belongs to node {}, not --node-id {}",
            s.node_id, cfg.node_id
        ))),
        Some(s) if s.voters != cfg.voters => Err(refuse(format!(
            "--controller-voters {} differs from the voters this data directory was started with ({}); \
             changing the quorum is not supported",
            voters_or_alone(&cfg.voters),
            voters_or_alone(&s.voters)
        ))),
        Some(s) => Ok(s),
        None => {
            let identity = Identity {
                node_id: cfg.node_id,
                voters: cfg.voters.clone(),
                cluster_id: None,
            };
            store::write_atomic(dir, "cluster.json", &identity, true).map_err(Error::io("write", &path))?;
            Ok(identity)
        }
    }
}

fn voters_or_alone(voters: &BTreeMap<NodeId, String>) -> String {
    if voters.is_empty() {
        "none (a broker alone)".into()
    } else {
        voters_text(voters)
    }
}

pub fn voters_text(voters: &BTreeMap<NodeId, String>) -> String {
    voters
        .iter()
        .map(|(id, addr)| format!("{id}@{addr}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voter_lists() {
        let v = parse_voters("1@127.0.0.1:7001, 2@localhost:7002").unwrap();
        assert_eq!(v[&1], "127.0.0.1:7001");
        assert_eq!(v[&2], "localhost:7002");
        for bad in ["", "1", "1@host", "x@h:1", "1@h:1,1@h:2", "-1@h:1", "1@h:99999"] {
            assert!(parse_voters(bad).is_err(), "{bad}");
        }
    }
}

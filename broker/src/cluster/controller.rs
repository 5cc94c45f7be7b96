//! The controller: the Raft leader's side of the cluster. It answers brokers'
//! [`ControllerCall`]s (registration, heartbeats, controlled shutdown, topic changes) by
//! validating them against the image and proposing [`MetaCommand`]s, and its loop fences
//! brokers whose heartbeats stop. Heartbeats are held in memory, not logged: a new
//! controller gives every broker a full session timeout before fencing it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use runnel_protocol::messages::{ControllerWriteRequest, ControllerWriteResponse};
use runnel_protocol::ErrorCode;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::image::{place, MetaCommand, NodeId};
use super::{Cluster, Refusal};
use crate::scram::{Mechanism, ScramCredential};
use crate::storage::{LogConfig, NewTopic};

/// A request to the controller (JSON in a `ControllerWrite` request).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerCall {
    Register {
        id: NodeId,
        native: String,
        kafka: Option<String>,
        incarnation: String,
        /// The cluster id the broker's data directory belongs to, if it knows one.
        cluster_id: Option<String>,
    },
    Heartbeat {
        id: NodeId,
        incarnation: String,
    },
    /// The broker is stopping: move its leaderships away first.
    ControlledShutdown {
        id: NodeId,
        incarnation: String,
    },
    CreateTopics {
        topics: Vec<TopicCreate>,
    },
    /// Creates an internal topic (the offsets log) if the cluster has none of that name:
    /// no name check, replication factor `min(INTERNAL_REPLICATION_FACTOR, live brokers)`.
    CreateInternalTopic {
        name: String,
        partitions: u32,
    },
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        name: String,
        count: i64,
    },
    SetTopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// SASL users' SCRAM credentials set (`Some`) or removed (`None`), one result each.
    SetScramCredentials {
        changes: Vec<(String, Mechanism, Option<ScramCredential>)>,
    },
    /// A partition's leader shrinks or grows its ISR (Kafka's AlterPartition).
    AlterPartition {
        topic: String,
        partition: u32,
        leader: NodeId,
        leader_epoch: i32,
        isr: Vec<NodeId>,
        /// See `MetaCommand::SetIsr`.
        #[serde(default)]
        from: Option<Vec<NodeId>>,
        #[serde(default)]
        joining: Vec<(NodeId, i64)>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicCreate {
    pub name: String,
    pub partitions: i64,
    pub replication_factor: i64,
    pub configs: BTreeMap<String, String>,
}

/// The controller's answer: one result per item of the call (per topic; one for the
/// others), and the log index the caller waits for before answering its client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    pub results: Vec<Result<(), Refusal>>,
    pub index: u64,
}

/// What the controller remembers between calls (in memory only).
#[derive(Default)]
pub struct ControllerState {
    /// Last heartbeat (or registration) heard from each broker, with its incarnation.
    heard: Mutex<HashMap<NodeId, (Instant, String)>>,
    /// The Raft term this broker leads in and since when: before a full session has
    /// passed in its term, it fences no one (it has not heard from everyone yet).
    term: Mutex<Option<(u64, Instant)>>,
    /// Where placement starts next, so leaders of successive topics rotate.
    cursor: AtomicUsize,
    /// The controller this broker last saw, while another broker was it.
    last_leader: Mutex<Option<NodeId>>,
    /// The controller before this broker's current term, if another broker.
    previous: Mutex<Option<NodeId>>,
}

/// Serves a `ControllerWrite` request from another broker.
pub async fn serve(cluster: &Cluster, req: ControllerWriteRequest) -> ControllerWriteResponse {
    let call: ControllerCall = match serde_json::from_slice(&req.payload) {
        Ok(c) => c,
        Err(e) => {
            return ControllerWriteResponse {
                error_code: ErrorCode::InvalidRequest.code(),
                error_message: format!("undecodable controller call: {e}"),
                ..Default::default()
            }
        }
    };
    let mut result = handle(cluster, call.clone()).await;
    if let (Err(r), false, Some(controller)) = (&result, req.forwarded, cluster.controller_id()) {
        // Not the controller, but this broker knows who is (the caller does not): one hop.
        if r.code() == ErrorCode::NotController && controller != cluster.node_id() {
            let deadline = Instant::now() + Duration::from_millis(cluster.cfg.controller_timeout_ms);
            result = cluster.forward(controller, &call, deadline, true).await;
        }
    }
    match result {
        Ok(answer) => ControllerWriteResponse {
            payload: serde_json::to_vec(&answer).unwrap_or_default(),
            ..Default::default()
        },
        Err(r) => ControllerWriteResponse {
            error_code: r.code,
            error_message: r.message,
            ..Default::default()
        },
    }
}

fn one(r: Result<(), Refusal>, index: u64) -> Answer {
    Answer {
        results: vec![r],
        index,
    }
}

/// Handles a call on the controller; NOT_CONTROLLER elsewhere.
pub async fn handle(cluster: &Cluster, call: ControllerCall) -> Result<Answer, Refusal> {
    if !cluster.is_controller() {
        return Err(Refusal::new(
            ErrorCode::NotController,
            format!("broker {} is not the controller", cluster.node_id()),
        ));
    }
    let session = Duration::from_millis(cluster.cfg.broker_session_timeout_ms);
    match call {
        ControllerCall::Register {
            id,
            native,
            kafka,
            incarnation,
            cluster_id,
        } => {
            let image = cluster.image();
            if let (Some(theirs), Some(ours)) = (&cluster_id, &image.cluster_id) {
                if theirs != ours {
                    return Err(Refusal::new(
                        ErrorCode::InconsistentClusterId,
                        format!("broker {id}'s data directory belongs to cluster {theirs}, this is cluster {ours}"),
                    ));
                }
            }
            let live_elsewhere = {
                let heard = crate::sync::lock(&cluster.controller.heard);
                heard
                    .get(&id)
                    .is_some_and(|(at, inc)| *inc != incarnation && at.elapsed() < session)
            };
            if live_elsewhere && image.live(id) {
                return Err(Refusal::new(
                    ErrorCode::DuplicateBrokerRegistration,
                    format!("node id {id} is registered by another live broker process"),
                ));
            }
            let current = image.brokers.get(&id);
            let unchanged = current
                .is_some_and(|b| !b.fenced && b.incarnation == incarnation && b.native == native && b.kafka == kafka);
            drop(image);
            crate::sync::lock(&cluster.controller.heard).insert(id, (Instant::now(), incarnation.clone()));
            if unchanged {
                return Ok(one(Ok(()), cluster.applied_index()));
            }
            if !cluster.is_voter(id) {
                ensure_learner(cluster, id, &native).await?;
            }
            let reply = propose(
                cluster,
                MetaCommand::RegisterBroker {
                    id,
                    native,
                    kafka,
                    incarnation,
                },
            )
            .await?;
            info!(broker = id, "broker registered");
            Ok(one(Ok(()), reply))
        }
        ControllerCall::Heartbeat { id, incarnation } => {
            let image = cluster.image();
            match image.brokers.get(&id) {
                Some(b) if b.incarnation == incarnation => {
                    let fenced = b.fenced;
                    drop(image);
                    crate::sync::lock(&cluster.controller.heard).insert(id, (Instant::now(), incarnation));
                    if fenced {
                        // Back after being fenced (a pause, a cut link): unfenced by
                        // registering again.
                        let b = cluster.image().brokers[&id].clone();
                        let index = propose(
                            cluster,
                            MetaCommand::RegisterBroker {
                                id,
                                native: b.native,
                                kafka: b.kafka,
                                incarnation: b.incarnation,
                            },
                        )
                        .await?;
                        info!(broker = id, "broker unfenced: heartbeats resumed");
                        return Ok(one(Ok(()), index));
                    }
                    Ok(one(Ok(()), 0))
                }
                _ => Err(Refusal::new(
                    ErrorCode::UnknownMemberId,
                    format!("broker {id} is not registered in this incarnation; register again"),
                )),
            }
        }
        ControllerCall::ControlledShutdown { id, incarnation } => {
            let current = cluster
                .image()
                .brokers
                .get(&id)
                .is_some_and(|b| b.incarnation == incarnation);
            if !current || !cluster.image().live(id) {
                // Not the registered process (a duplicate that was refused), or already
                // fenced: nothing to move.
                return Ok(one(Ok(()), cluster.applied_index()));
            }
            crate::sync::lock(&cluster.controller.heard).remove(&id);
            let index = propose(cluster, MetaCommand::FenceBroker { id }).await?;
            info!(broker = id, "controlled shutdown: broker fenced, its leaderships moved");
            Ok(one(Ok(()), index))
        }
        ControllerCall::CreateTopics { topics } => create_topics(cluster, topics).await,
        ControllerCall::CreateInternalTopic { name, partitions } => {
            create_internal_topic(cluster, name, partitions).await
        }
        ControllerCall::DeleteTopic { name } => {
            if name.starts_with("__") {
                return Ok(one(Err(internal_topic(&name)), 0));
            }
            if !cluster.image().topics.contains_key(&name) {
                return Ok(one(Err(unknown_topic(&name)), 0));
            }
            let index = propose(cluster, MetaCommand::DeleteTopic { name }).await?;
            Ok(one(Ok(()), index))
        }
        ControllerCall::CreatePartitions { name, .. } | ControllerCall::SetTopicConfigs { name, .. }
            if name.starts_with("__") =>
        {
            Ok(one(Err(internal_topic(&name)), 0))
        }
        ControllerCall::CreatePartitions { name, count } => {
            let image = cluster.image();
            let Some(t) = image.topics.get(&name) else {
                return Ok(one(Err(unknown_topic(&name)), 0));
            };
            if let Err(e) = cluster.storage.check_partitions_increase(&name, count) {
                return Ok(one(Err(Refusal::of(&e)), 0));
            }
            let current = t.partitions.len() as u32;
            let rf = t.partitions.first().map_or(1, |p| p.replicas.len());
            let Some(assignment) = place(&image.live_brokers(), current, count as u32 - current, rf) else {
                return Ok(one(Err(too_few_brokers(rf as i64, image.live_brokers().len())), 0));
            };
            drop(image);
            let index = propose(cluster, MetaCommand::AddPartitions { name, assignment }).await?;
            Ok(one(Ok(()), index))
        }
        ControllerCall::SetTopicConfigs { name, configs } => {
            if !cluster.image().topics.contains_key(&name) {
                return Ok(one(Err(unknown_topic(&name)), 0));
            }
            if let Err(e) = LogConfig::with_overrides(&cluster.storage.config().log_defaults, &configs) {
                return Ok(one(Err(Refusal::of(&e)), 0));
            }
            let index = propose(cluster, MetaCommand::SetTopicConfigs { name, configs }).await?;
            Ok(one(Ok(()), index))
        }
        ControllerCall::SetScramCredentials { changes } => {
            let mut results = Vec::with_capacity(changes.len());
            let mut index = 0;
            for (user, mechanism, credential) in changes {
                let exists = cluster
                    .image()
                    .users
                    .get(&user)
                    .is_some_and(|m| m.contains_key(&mechanism));
                if credential.is_none() && !exists {
                    results.push(Err(Refusal::new(
                        ErrorCode::ResourceNotFound,
                        format!("user '{user}' has no {} credential", mechanism.name()),
                    )));
                    continue;
                }
                index = propose(
                    cluster,
                    MetaCommand::SetScramCredential {
                        user: user.clone(),
                        mechanism,
                        credential,
                    },
                )
                .await?;
                info!(%user, mechanism = mechanism.name(), "SCRAM credential changed");
                results.push(Ok(()));
            }
            Ok(Answer { results, index })
        }
        ControllerCall::AlterPartition {
            topic,
            partition,
            leader,
            leader_epoch,
            isr,
            from,
            joining,
        } => {
            let current = cluster.image().partition(&topic, partition).cloned();
            let Some(p) = current else {
                return Ok(one(Err(unknown_topic(&topic)), 0));
            };
            if p.leader != leader || p.leader_epoch != leader_epoch {
                return Ok(one(
                    Err(Refusal::new(
                        ErrorCode::FencedLeaderEpoch,
                        format!(
                            "{topic}-{partition} is led by {} in epoch {}, not by {leader} in epoch {leader_epoch}",
                            p.leader, p.leader_epoch
                        ),
                    )),
                    0,
                ));
            }
            let reply = propose_checked(
                cluster,
                MetaCommand::SetIsr {
                    name: topic.clone(),
                    partition,
                    leader_epoch,
                    isr: isr.clone(),
                    from,
                    joining,
                },
            )
            .await?;
            if reply.is_ok() {
                info!(topic = %topic, partition, ?isr, "ISR changed");
            }
            let index = reply.as_ref().map_or(0, |i| *i);
            Ok(one(reply.map(|_| ()), index))
        }
    }
}

/// A broker that is not a voter receives the metadata log as a Raft learner: added (or
/// its address updated) when it registers.
async fn ensure_learner(cluster: &Cluster, id: NodeId, native: &str) -> Result<(), Refusal> {
    let known = {
        let m = cluster.raft.metrics().borrow().membership_config.clone();
        let found = m
            .nodes()
            .any(|(n, node)| *n == super::raft_id(id) && node.addr == native);
        found
    };
    if known {
        return Ok(());
    }
    cluster
        .raft
        .add_learner(super::raft_id(id), openraft::BasicNode::new(native), false)
        .await
        .map_err(write_refusal)?;
    info!(
        broker = id,
        addr = native,
        "broker added as a metadata learner (not a voter)"
    );
    Ok(())
}

fn unknown_topic(name: &str) -> Refusal {
    Refusal::new(
        ErrorCode::UnknownTopicOrPartition,
        format!("topic '{name}' does not exist"),
    )
}

fn internal_topic(name: &str) -> Refusal {
    Refusal::new(
        ErrorCode::InvalidTopic,
        format!("topic '{name}' is internal to the cluster and cannot be changed by clients"),
    )
}

/// Copies of an internal topic's partitions where the cluster has that many brokers
/// (Kafka's `offsets.topic.replication.factor`, 3; fewer brokers get fewer copies rather
/// than no groups).
pub const INTERNAL_REPLICATION_FACTOR: usize = 3;

/// Creates internal topic `name` unless it exists, placed like any topic (rotating
/// round-robin over the live brokers).
async fn create_internal_topic(cluster: &Cluster, name: String, partitions: u32) -> Result<Answer, Refusal> {
    let image = cluster.image();
    if image.topics.contains_key(&name) {
        return Ok(one(Ok(()), cluster.applied_index()));
    }
    let live = image.live_brokers();
    if live.is_empty() {
        return Err(Refusal::new(
            ErrorCode::CoordinatorNotAvailable,
            "no broker has registered with the controller yet; retry shortly",
        ));
    }
    let rf = live.len().min(INTERNAL_REPLICATION_FACTOR);
    let start = cluster.controller.cursor.fetch_add(1, Ordering::Relaxed) + 1;
    let rotated: Vec<NodeId> = (0..live.len()).map(|k| live[(k + start) % live.len()]).collect();
    let assignment = place(&rotated, 0, partitions, rf).expect("rf is at most the live brokers");
    drop(image);
    let cmd = MetaCommand::CreateTopic {
        name: name.clone(),
        id: uuid::Uuid::new_v4().to_string(),
        configs: BTreeMap::new(),
        assignment,
    };
    match write(cluster, cmd).await {
        Ok(w) => {
            info!(topic = %name, partitions, replication_factor = rf, "created an internal topic");
            Ok(one(Ok(()), w.log_id.index))
        }
        // Another call created it first.
        Err(_) if cluster.image().topics.contains_key(&name) => Ok(one(Ok(()), cluster.applied_index())),
        Err(r) => Err(r),
    }
}

fn too_few_brokers(rf: i64, live: usize) -> Refusal {
    Refusal::of(&crate::error::Error::InvalidReplicationFactor {
        asked: rf,
        brokers: live,
    })
}

/// Validates each topic (name, partitions, configs, replication factor against the live
/// brokers), places its replicas round-robin, and proposes all of them at once (Raft
/// batches them into shared log writes).
async fn create_topics(cluster: &Cluster, topics: Vec<TopicCreate>) -> Result<Answer, Refusal> {
    let image = cluster.image();
    let live = image.live_brokers();
    if live.is_empty() {
        // The cluster is starting: no broker has registered yet.
        return Err(Refusal::new(
            ErrorCode::LeaderNotAvailable,
            "no broker has registered with the controller yet; retry shortly",
        ));
    }
    let mut results: Vec<Option<Result<(), Refusal>>> = vec![None; topics.len()];
    let mut commands = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, t) in topics.iter().enumerate() {
        let checked = cluster.storage.check_new_topic(&NewTopic {
            name: &t.name,
            id: None,
            partitions: t.partitions,
            overrides: &t.configs,
        });
        let refused = if let Err(e) = checked {
            Some(Refusal::of(&e))
        } else if image.topics.contains_key(&t.name) || !seen.insert(t.name.clone()) {
            Some(Refusal::new(
                ErrorCode::TopicAlreadyExists,
                format!("topic '{}' already exists", t.name),
            ))
        } else if t.replication_factor < 1 || t.replication_factor > live.len() as i64 {
            Some(too_few_brokers(t.replication_factor, live.len()))
        } else {
            let start = cluster.controller.cursor.fetch_add(1, Ordering::Relaxed) + 1;
            // Successive topics start at successive brokers, so their first
            // partitions have different leaders.
            let rotated: Vec<NodeId> = (0..live.len()).map(|k| live[(k + start) % live.len()]).collect();
            match place(&rotated, 0, t.partitions as u32, t.replication_factor as usize) {
                Some(assignment) => {
                    commands.push((
                        i,
                        MetaCommand::CreateTopic {
                            name: t.name.clone(),
                            id: uuid::Uuid::new_v4().to_string(),
                            configs: t.configs.clone(),
                            assignment,
                        },
                    ));
                    None
                }
                None => Some(too_few_brokers(t.replication_factor, live.len())),
            }
        };
        if let Some(r) = refused {
            results[i] = Some(Err(r));
        }
    }
    drop(image);
    let proposals = commands.into_iter().map(|(i, cmd)| async move {
        let name = match &cmd {
            MetaCommand::CreateTopic { name, .. } => name.clone(),
            _ => String::new(),
        };
        (i, name, write(cluster, cmd).await)
    });
    let mut index = 0;
    for (i, name, written) in futures::future::join_all(proposals).await {
        results[i] = Some(match written {
            Ok(w) => {
                index = index.max(w.log_id.index);
                match w.data.error {
                    None => Ok(()),
                    Some(_) => Err(Refusal::new(
                        ErrorCode::TopicAlreadyExists,
                        format!("topic '{name}' already exists"),
                    )),
                }
            }
            Err(r) => Err(r),
        });
    }
    Ok(Answer {
        results: results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect(),
        index,
    })
}

fn write_refusal(
    e: openraft::error::RaftError<u64, openraft::error::ClientWriteError<u64, openraft::BasicNode>>,
) -> Refusal {
    match e {
        openraft::error::RaftError::APIError(openraft::error::ClientWriteError::ForwardToLeader(_)) => {
            Refusal::new(ErrorCode::NotController, "the controller moved")
        }
        other => Refusal::new(ErrorCode::RequestTimedOut, format!("metadata write failed: {other}")),
    }
}

/// Proposes one command and waits until it is committed and applied here; its index.
async fn propose(cluster: &Cluster, cmd: MetaCommand) -> Result<u64, Refusal> {
    let written = write(cluster, cmd).await?;
    Ok(written.log_id.index)
}

/// Proposes a command whose apply may refuse it (the image moved on since it was
/// checked): `Err` inside says why, with the index it was logged at.
async fn propose_checked(cluster: &Cluster, cmd: MetaCommand) -> Result<Result<u64, Refusal>, Refusal> {
    let written = write(cluster, cmd).await?;
    Ok(match written.data.error {
        None => Ok(written.log_id.index),
        Some(why) => Err(Refusal::new(ErrorCode::FencedLeaderEpoch, why)),
    })
}

/// A metadata write, bounded by the controller timeout: a controller that lost its
/// quorum (the others gone, or refusing it) answers REQUEST_TIMED_OUT instead of waiting
/// for ever.
async fn write(
    cluster: &Cluster,
    cmd: MetaCommand,
) -> Result<openraft::raft::ClientWriteResponse<super::TypeConfig>, Refusal> {
    let limit = Duration::from_millis(cluster.cfg.controller_timeout_ms);
    match tokio::time::timeout(limit, cluster.raft.client_write(cmd)).await {
        Ok(written) => written.map_err(write_refusal),
        Err(_) => Err(Refusal::new(
            ErrorCode::RequestTimedOut,
            format!(
                "the metadata write was not committed within controller_timeout_ms={} (no quorum?)",
                cluster.cfg.controller_timeout_ms
            ),
        )),
    }
}

/// The controller's loop, on every broker (it acts only while this broker leads):
/// starts a new cluster (its id; an existing single-node directory's topics imported)
/// and fences brokers silent past the session timeout.
pub async fn run(cluster: Weak<Cluster>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(cluster) = cluster.upgrade() else { return };
        if cluster.stopping() {
            return;
        }
        let (leader, term) = {
            let m = cluster.raft.metrics().borrow().clone();
            (m.current_leader, m.current_term)
        };
        if leader != Some(super::raft_id(cluster.node_id())) {
            *crate::sync::lock(&cluster.controller.term) = None;
            if let Some(l) = leader {
                *crate::sync::lock(&cluster.controller.last_leader) = Some(super::node_id(l));
            }
            continue;
        }
        let (since, new_term) = {
            let mut t = crate::sync::lock(&cluster.controller.term);
            match *t {
                Some((held, since)) if held == term => (since, false),
                _ => {
                    info!(term, "this broker is the controller");
                    *t = Some((term, Instant::now()));
                    (Instant::now(), true)
                }
            }
        };
        if new_term {
            // The previous controller gets 1.5 heartbeat intervals, not a full session,
            // to be heard from in this term: the quorum elected a new leader because it
            // stopped hearing from that broker (dead, paused or cut off), and a full
            // session on top of the election would leave its partitions leaderless for
            // both. Alive, it heartbeats well within that.
            let previous = crate::sync::lock(&cluster.controller.last_leader).take();
            *crate::sync::lock(&cluster.controller.previous) = previous.filter(|p| *p != cluster.node_id());
        }
        if cluster.image().cluster_id.is_none() {
            if let Err(e) = start_cluster(&cluster).await {
                warn!(error = %e.message, "could not start the cluster's metadata; retrying");
            }
            continue;
        }
        fence_silent(&cluster, since).await;
    }
}

/// The first records of a new cluster: its id and, when the data directory already
/// held topics (a single broker from before clusters), those topics, on this broker.
async fn start_cluster(cluster: &Arc<Cluster>) -> Result<(), Refusal> {
    let id = uuid::Uuid::new_v4().to_string();
    let mut commands = vec![MetaCommand::InitCluster { cluster_id: id.clone() }];
    for t in cluster.storage.topics() {
        if cluster.image().topics.contains_key(&t.name) {
            continue;
        }
        commands.push(MetaCommand::CreateTopic {
            name: t.name.clone(),
            id: t.id.clone(),
            configs: t.overrides.clone(),
            assignment: vec![vec![cluster.node_id()]; t.partitions.len()],
        });
    }
    let imported = commands.len() - 1;
    for cmd in commands {
        propose(cluster, cmd).await?;
    }
    info!(cluster_id = %id, imported_topics = imported, "new cluster started");
    Ok(())
}

async fn fence_silent(cluster: &Cluster, since: Instant) {
    let session = Duration::from_millis(cluster.cfg.broker_session_timeout_ms);
    let previous = *crate::sync::lock(&cluster.controller.previous);
    let previous_grace = Duration::from_millis(3 * cluster.cfg.broker_heartbeat_interval_ms / 2).min(session);
    let silent: Vec<NodeId> = {
        let image = cluster.image();
        let heard = crate::sync::lock(&cluster.controller.heard);
        image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .filter(|b| {
                let last = heard.get(&b.id).map_or(since, |(at, _)| (*at).max(since));
                let limit = if Some(b.id) == previous && last == since {
                    previous_grace
                } else {
                    session
                };
                last.elapsed() > limit
            })
            .map(|b| b.id)
            .collect()
    };
    for id in silent {
        match propose(cluster, MetaCommand::FenceBroker { id }).await {
            Ok(_) => warn!(
                broker = id,
                session_timeout_ms = cluster.cfg.broker_session_timeout_ms,
                "broker fenced: no heartbeat within its session timeout; its leaderships moved"
            ),
            Err(e) => warn!(broker = id, error = %e.message, "could not fence a silent broker"),
        }
    }
}

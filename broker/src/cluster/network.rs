//! openraft's network over the native protocol: each Raft message is one `Raft` request
//! (JSON inside a protobuf `bytes` field) to the target voter's native listener, and the
//! receiving broker hands it to its Raft node ([`serve`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use runnel_protocol::messages::{RaftRequest, RaftResponse};
use runnel_protocol::ErrorCode;
use serde::{de::DeserializeOwned, Serialize};

use super::peer::{Peer, PeerError};
use super::TypeConfig;

const VOTE: u32 = 0;
const APPEND: u32 = 1;
const SNAPSHOT: u32 = 2;

/// Retry pauses towards an unreachable voter: 20 ms, doubling to 200 ms. openraft's
/// default (500 ms each) kept a restarted broker from hearing the metadata log for half
/// a second, during which it followed stale leaders while the controller already
/// counted it in sync; reconnecting costs one refused connect per pause.
const UNREACHABLE_BACKOFF_MS: (u64, u64) = (20, 200);

/// Makes a [`RaftPeer`] per target voter; every message carries this broker's cluster
/// id (`cluster_id`, shared with [`super::Cluster`]) once it knows one.
pub struct Network {
    pub cluster_id: Arc<Mutex<Option<String>>>,
    /// Voters that refused this broker's messages as another cluster's (last answer per
    /// voter), and why.
    pub refused_by: Arc<Mutex<std::collections::BTreeMap<u64, String>>>,
    /// Peers reached at another address than their own (`--peer-address`).
    pub peer_addresses: std::collections::BTreeMap<super::NodeId, String>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = RaftPeer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> RaftPeer {
        RaftPeer {
            target,
            peer: Peer::new(
                self.peer_addresses
                    .get(&super::node_id(target))
                    .cloned()
                    .unwrap_or_else(|| node.addr.clone()),
            ),
            cluster_id: self.cluster_id.clone(),
            refused_by: self.refused_by.clone(),
        }
    }
}

pub struct RaftPeer {
    target: u64,
    peer: Peer,
    cluster_id: Arc<Mutex<Option<String>>>,
    refused_by: Arc<Mutex<std::collections::BTreeMap<u64, String>>>,
}

impl RaftPeer {
    async fn send<Req: Serialize, Resp: DeserializeOwned, E: std::error::Error + DeserializeOwned>(
        &mut self,
        kind: u32,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<u64, BasicNode, RaftError<u64, E>>> {
        let payload = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let timeout = option.hard_ttl().max(Duration::from_millis(100));
        let cluster_id = crate::sync::lock(&self.cluster_id).clone().unwrap_or_default();
        let resp = self
            .peer
            .call(
                &RaftRequest {
                    kind,
                    payload,
                    cluster_id,
                },
                timeout,
            )
            .await;
        {
            let mut refused = crate::sync::lock(&self.refused_by);
            match &resp {
                Err(PeerError::Refused { code, message, .. }) if *code == ErrorCode::InconsistentClusterId => {
                    refused.insert(self.target, message.clone());
                }
                Err(_) => {}
                Ok(_) => {
                    refused.remove(&self.target);
                }
            }
        }
        let resp = resp.map_err(|e| match e {
            PeerError::Refused { .. } => RPCError::Network(NetworkError::new(&e)),
            _ => RPCError::Unreachable(Unreachable::new(&e)),
        })?;
        let answer: Result<Resp, RaftError<u64, E>> =
            serde_json::from_slice(&resp.payload).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for RaftPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.send(APPEND, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>> {
        self.send(SNAPSHOT, &rpc, &option).await
    }

    fn backoff(&self) -> Backoff {
        let (first, max) = UNREACHABLE_BACKOFF_MS;
        Backoff::new((0..).map(move |i: u32| Duration::from_millis((first << i.min(8)).min(max))))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.send(VOTE, &rpc, &option).await
    }
}

/// Hands a `Raft` request to this broker's Raft node; its answer (or Raft error) goes
/// back JSON-encoded. A message from a broker of another cluster (both know their
/// cluster ids and they differ) is refused.
pub async fn serve(cluster: &super::Cluster, req: RaftRequest) -> RaftResponse {
    let ours = crate::sync::lock(&cluster.cluster_id)
        .clone()
        .or_else(|| cluster.image().cluster_id.clone());
    if let Some(ours) = ours.filter(|o| !req.cluster_id.is_empty() && *o != req.cluster_id) {
        return RaftResponse {
            error_code: ErrorCode::InconsistentClusterId.code(),
            error_message: format!(
                "a Raft message from cluster {}; this broker belongs to cluster {ours}",
                req.cluster_id
            ),
            ..Default::default()
        };
    }
    let raft = cluster.raft();
    fn answer<T: Serialize>(v: &T) -> RaftResponse {
        match serde_json::to_vec(v) {
            Ok(payload) => RaftResponse {
                payload,
                ..Default::default()
            },
            Err(e) => bad(e),
        }
    }
    fn bad(e: impl std::fmt::Display) -> RaftResponse {
        RaftResponse {
            error_code: ErrorCode::InvalidRequest.code(),
            error_message: format!("undecodable Raft message: {e}"),
            ..Default::default()
        }
    }
    match decode_payload(req.kind, &req.payload) {
        Ok(Rpc::Vote(rpc)) => answer(&raft.vote(rpc).await),
        Ok(Rpc::Append(rpc)) => answer(&raft.append_entries(rpc).await),
        Ok(Rpc::Snapshot(rpc)) => answer(&raft.install_snapshot(rpc).await),
        Err(e) => bad(e),
    }
}

/// A Raft message, decoded.
pub enum Rpc {
    Vote(VoteRequest<u64>),
    Append(AppendEntriesRequest<TypeConfig>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
}

/// Decodes a `Raft` request's JSON payload of `kind`.
pub fn decode_payload(kind: u32, payload: &[u8]) -> Result<Rpc, String> {
    let e = |e: serde_json::Error| e.to_string();
    match kind {
        VOTE => serde_json::from_slice(payload).map(Rpc::Vote).map_err(e),
        APPEND => serde_json::from_slice(payload).map(Rpc::Append).map_err(e),
        SNAPSHOT => serde_json::from_slice(payload).map(Rpc::Snapshot).map_err(e),
        other => Err(format!("unknown kind {other}")),
    }
}

//! openraft's network over the native protocol: each Raft message is one `Raft` request
//! (JSON inside a protobuf `bytes` field) to the target voter's native listener, and the
//! receiving broker hands it to its Raft node ([`serve`]).

use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use runnel_protocol::messages::{RaftRequest, RaftResponse};
use runnel_protocol::ErrorCode;
use serde::{de::DeserializeOwned, Serialize};

use super::peer::{Peer, PeerError};
use super::{Raft, TypeConfig};

const VOTE: u32 = 0;
const APPEND: u32 = 1;
const SNAPSHOT: u32 = 2;

pub struct Network;

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = RaftPeer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> RaftPeer {
        RaftPeer {
            target,
            peer: Peer::new(node.addr.clone()),
        }
    }
}

pub struct RaftPeer {
    target: u64,
    peer: Peer,
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
        let resp = self
            .peer
            .call(&RaftRequest { kind, payload }, timeout)
            .await
            .map_err(|e| match e {
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

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.send(VOTE, &rpc, &option).await
    }
}

/// Hands a `Raft` request to this broker's Raft node; its answer (or Raft error) goes
/// back JSON-encoded.
pub async fn serve(raft: &Raft, req: RaftRequest) -> RaftResponse {
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
    match req.kind {
        VOTE => match serde_json::from_slice(&req.payload) {
            Ok(rpc) => answer(&raft.vote(rpc).await),
            Err(e) => bad(e),
        },
        APPEND => match serde_json::from_slice(&req.payload) {
            Ok(rpc) => answer(&raft.append_entries(rpc).await),
            Err(e) => bad(e),
        },
        SNAPSHOT => match serde_json::from_slice(&req.payload) {
            Ok(rpc) => answer(&raft.install_snapshot(rpc).await),
            Err(e) => bad(e),
        },
        other => bad(format!("unknown kind {other}")),
    }
}

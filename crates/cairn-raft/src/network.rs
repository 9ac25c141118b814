//! openraft's network for one Raft group, over the node's shared [`PeerTransport`]. A group
//! never opens a connection of its own: every call names the group and goes through the one
//! link per peer, which coalesces the calls of all groups. Encoding is `crate::wire`.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use crate::commit_bound::CommitBound;
use crate::transport::{PeerTransport, RpcKind, TransportError};
use crate::types::{GroupId, NodeId, PeerNode};
use crate::wire::{self, CairnRaftConfig, WireError};

/// Builds the per-peer clients openraft asks for; all of them share `transport`.
#[derive(Clone)]
pub struct GroupNetwork {
    transport: Arc<dyn PeerTransport>,
    group: GroupId,
    commit_bound: Option<CommitBound>,
}

impl GroupNetwork {
    /// The network of group `group` over `transport`.
    pub fn new(transport: Arc<dyn PeerTransport>, group: GroupId) -> GroupNetwork {
        GroupNetwork {
            transport,
            group,
            commit_bound: None,
        }
    }

    /// The same network, telling followers no entry committed past what `bound` allows (this
    /// node's durable entries): the half of `CairnLogStorage::shipping_before_flush` that
    /// lives here.
    #[must_use]
    pub fn bounding_commit(mut self, bound: CommitBound) -> GroupNetwork {
        self.commit_bound = Some(bound);
        self
    }
}

/// One group's client for one peer.
pub struct PeerClient {
    transport: Arc<dyn PeerTransport>,
    group: GroupId,
    target: NodeId,
    commit_bound: Option<CommitBound>,
}

impl<C: CairnRaftConfig> RaftNetworkFactory<C> for GroupNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, _node: &PeerNode) -> PeerClient {
        PeerClient {
            transport: Arc::clone(&self.transport),
            group: self.group,
            target,
            commit_bound: self.commit_bound.clone(),
        }
    }
}

/// A decode failure of an answer is the peer's fault, not the link's: report it as a network
/// error so openraft retries rather than backing off as from a dead node.
fn bad_answer<E: std::error::Error>(e: WireError) -> RPCError<NodeId, PeerNode, E> {
    RPCError::Network(NetworkError::new(&e))
}

fn transport_error<E: std::error::Error>(e: TransportError) -> RPCError<NodeId, PeerNode, E> {
    match e {
        TransportError::Unreachable { .. } | TransportError::UnknownPeer(_) => {
            RPCError::Unreachable(Unreachable::new(&e))
        }
        TransportError::Timeout { .. } | TransportError::Refused { .. } => {
            RPCError::Network(NetworkError::new(&e))
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl PeerClient {
    async fn call<E: std::error::Error>(
        &self,
        kind: RpcKind,
        payload: bytes::Bytes,
        option: &RPCOption,
    ) -> Result<bytes::Bytes, RPCError<NodeId, PeerNode, E>> {
        self.transport
            .call(
                self.target,
                self.group,
                kind,
                payload,
                millis(option.hard_ttl()),
            )
            .await
            .map_err(transport_error)
    }
}

impl<C: CairnRaftConfig> RaftNetwork<C> for PeerClient {
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, PeerNode, RaftError<NodeId>>> {
        if let Some(bound) = &self.commit_bound {
            rpc.leader_commit = bound.clamp(rpc.leader_commit);
        }
        let answer = self
            .call(RpcKind::AppendEntries, wire::encode_append(&rpc), &option)
            .await?;
        wire::decode_append_response(answer).map_err(bad_answer)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<C>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, PeerNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let answer = self
            .call(
                RpcKind::InstallSnapshot,
                wire::encode_snapshot(&rpc),
                &option,
            )
            .await?;
        wire::decode_snapshot_response(answer).map_err(bad_answer)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, PeerNode, RaftError<NodeId>>> {
        let answer = self
            .call(RpcKind::Vote, wire::encode_vote(&rpc), &option)
            .await?;
        wire::decode_vote_response(answer).map_err(bad_answer)
    }

    fn backoff(&self) -> Backoff {
        // A dead peer is retried every 500 ms (openraft's default) for a thousand groups at
        // once; the transport already fails those calls without a network round trip.
        Backoff::new(std::iter::repeat(Duration::from_millis(500)))
    }
}

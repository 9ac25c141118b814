//! The node-to-node network as a contract. A Raft group sends one call (append entries, vote,
//! install snapshot) to one group on one peer; the implementation (tonic, in `cairn-server`)
//! shares one connection per peer and coalesces the calls of all groups into frames, so a node
//! holding a thousand groups does not open a thousand connections or send a thousand separate
//! heartbeats. Payloads are opaque bytes here: `cairn-raft` encodes openraft's messages itself.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use crate::types::{GroupId, NodeId};

/// Which Raft RPC a call carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RpcKind {
    /// AppendEntries, heartbeats included.
    AppendEntries,
    /// RequestVote.
    Vote,
    /// InstallSnapshot (one chunk).
    InstallSnapshot,
    /// A proposal forwarded to the group's leader by a node that is not (an admin call made on
    /// any node reaches the controller leader this way); the answer is the applied result.
    Propose,
    /// A node-level liveness probe, one per node pair and interval whatever the number of
    /// groups; answered by the node, not by a group (the group id is ignored).
    Ping,
    /// The group's leader, about to stop, asks this replica to stand for election now (a
    /// leadership handover, `crate::handover`). The replica stands only while it follows that
    /// leader in that term with the log the leader names, so a late request changes nothing.
    Campaign,
    /// A replica that found a damaged batch in its committed range asks a peer for the
    /// committed entries it lost (`crate::fetch`); the peer answers from its own log, never past
    /// what it has applied, and the asker checks every batch's CRC.
    FetchEntries,
}

impl RpcKind {
    /// The wire code of the kind.
    pub fn code(self) -> u32 {
        match self {
            RpcKind::AppendEntries => 1,
            RpcKind::Vote => 2,
            RpcKind::InstallSnapshot => 3,
            RpcKind::Propose => 4,
            RpcKind::Ping => 5,
            RpcKind::Campaign => 6,
            RpcKind::FetchEntries => 7,
        }
    }

    /// The kind a wire code names, if any.
    pub fn from_code(code: u32) -> Option<RpcKind> {
        match code {
            1 => Some(RpcKind::AppendEntries),
            2 => Some(RpcKind::Vote),
            3 => Some(RpcKind::InstallSnapshot),
            4 => Some(RpcKind::Propose),
            5 => Some(RpcKind::Ping),
            6 => Some(RpcKind::Campaign),
            7 => Some(RpcKind::FetchEntries),
            _ => None,
        }
    }
}

/// Why a call did not get an answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The peer is not in this node's address book.
    #[error("node {0} is not a known peer")]
    UnknownPeer(NodeId),
    /// The peer could not be reached or the connection broke before the answer came; openraft
    /// retries on its own schedule.
    #[error("node {node} unreachable: {reason}")]
    Unreachable {
        /// The peer.
        node: NodeId,
        /// What the connection reported.
        reason: String,
    },
    /// No answer within the call's deadline.
    #[error("call to node {node} timed out after {millis} ms")]
    Timeout {
        /// The peer.
        node: NodeId,
        /// The deadline that passed.
        millis: u64,
    },
    /// The peer answered, but not with a result: it holds no such group, or refused the call.
    #[error("node {node} refused the call: {reason}")]
    Refused {
        /// The peer.
        node: NodeId,
        /// The peer's reason.
        reason: String,
    },
}

/// A boxed, sendable future (the trait is used as `dyn`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Sends Raft calls to peers. Implementations share one connection per peer and may put the calls
/// of many groups in one frame; each call still gets its own answer, and one slow call (a follower
/// waiting for its fsync) must not hold back the answers of others.
pub trait PeerTransport: Send + Sync + 'static {
    /// Sends `payload` to group `group` on node `target`, and resolves to the group's encoded
    /// answer. `timeout_ms` bounds the wait.
    fn call(
        &self,
        target: NodeId,
        group: GroupId,
        kind: RpcKind,
        payload: Bytes,
        timeout_ms: u64,
    ) -> BoxFuture<'static, Result<Bytes, TransportError>>;

    /// Reaches `node` at `addr` from now on: a node added to the cluster, or one that moved.
    /// Transports with a fixed address book (in-memory and simulated ones) ignore it.
    fn set_peer_address(&self, node: NodeId, addr: &str) {
        let _ = (node, addr);
    }

    /// Forgets `node`: it left the cluster. Transports with a fixed address book ignore it.
    fn forget_peer(&self, node: NodeId) {
        let _ = node;
    }
}

/// Where a node hands the calls its peers sent it: the registry of the groups it hosts. The
/// answer is the group's encoded reply; an `Err` is a refusal the transport carries back as
/// [`TransportError::Refused`] (no such group here, a payload that does not decode).
pub trait InboundCalls: Send + Sync + 'static {
    /// Handles one call from node `from`.
    fn handle(
        &self,
        from: NodeId,
        group: GroupId,
        kind: RpcKind,
        payload: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, String>>;
}

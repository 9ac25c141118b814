//! [`PeerLinks`]: this node's [`PeerTransport`], the address book of its peers and one
//! [`Link`] per peer. Every Raft group of the node calls through it, so the calls of a thousand
//! groups to one peer share one connection and one stream, and leave in shared frames.

use std::collections::{BTreeMap, HashMap};
use std::future::ready;
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;
use cairn_raft::transport::BoxFuture;
use cairn_raft::{GroupId, NodeId, PeerTransport, RpcKind, TransportError};

use super::identity::NodeIdentity;
use super::limits::PeerLimits;
use super::link::Link;
use super::metrics::PeerMetrics;
use crate::tls::TlsState;

/// This node's links to its peers (see the module doc). Addresses are `host:port` of each
/// peer's gRPC listener (an `http://` URI is taken as is).
#[derive(Debug)]
pub struct PeerLinks {
    identity: Arc<NodeIdentity>,
    limits: PeerLimits,
    metrics: Arc<PeerMetrics>,
    tls: Option<TlsState>,
    links: RwLock<HashMap<NodeId, Arc<Link>>>,
}

impl PeerLinks {
    /// Links to `peers` (node id -> address; this node's own entry, if present, is a link to
    /// itself like any other). Nothing is opened until a call needs it.
    pub fn new(
        identity: Arc<NodeIdentity>,
        peers: BTreeMap<NodeId, String>,
        limits: PeerLimits,
        metrics: Arc<PeerMetrics>,
    ) -> Self {
        Self::new_with_tls(identity, peers, limits, metrics, None)
    }

    /// As [`PeerLinks::new`]; with `tls`, every link is TLS 1.3 with this node's certificate
    /// as its client certificate, and verifies each peer's certificate against the client CA
    /// and the host of the peer's address.
    pub fn new_with_tls(
        identity: Arc<NodeIdentity>,
        peers: BTreeMap<NodeId, String>,
        limits: PeerLimits,
        metrics: Arc<PeerMetrics>,
        tls: Option<TlsState>,
    ) -> Self {
        let links = Self {
            identity,
            limits,
            metrics,
            tls,
            links: RwLock::new(HashMap::new()),
        };
        links.set_peers(peers);
        links
    }

    /// Replaces the address book. Peers whose address is unchanged keep their link and its
    /// stream; removed peers, and peers whose address changed, lose theirs: their calls in
    /// flight fail with `Unreachable`.
    pub fn set_peers(&self, peers: BTreeMap<NodeId, String>) {
        let mut links = self.links.write().unwrap_or_else(PoisonError::into_inner);
        links.retain(|node, link| peers.get(node).is_some_and(|addr| addr == link.addr()));
        for (node, addr) in peers {
            links
                .entry(node)
                .or_insert_with(|| Arc::new(self.link(node, addr)));
        }
    }

    /// Adds peer `node` at `addr`, or moves it there (its old link closes).
    pub fn set_peer(&self, node: NodeId, addr: String) {
        let mut links = self.links.write().unwrap_or_else(PoisonError::into_inner);
        if links.get(&node).is_some_and(|link| link.addr() == addr) {
            return;
        }
        links.insert(node, Arc::new(self.link(node, addr)));
    }

    /// Removes peer `node`; its calls in flight fail with `Unreachable`, later calls with
    /// `UnknownPeer`.
    pub fn remove_peer(&self, node: NodeId) {
        self.links
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&node);
    }

    /// The address book: node id -> address.
    pub fn peers(&self) -> BTreeMap<NodeId, String> {
        self.links
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(node, link)| (*node, link.addr().to_string()))
            .collect()
    }

    /// This node's identity, as its links present it.
    pub fn identity(&self) -> &Arc<NodeIdentity> {
        &self.identity
    }

    fn link(&self, node: NodeId, addr: String) -> Link {
        Link::new(
            node,
            addr,
            Arc::clone(&self.identity),
            self.limits,
            self.metrics.peer(node),
            self.tls.clone(),
        )
    }
}

impl PeerTransport for PeerLinks {
    /// Queues the call on the peer's link; it leaves in the next frame. Fails at once with
    /// `UnknownPeer` for a node not in the address book, with `Unreachable` while the link is
    /// down (within its reconnection pause), and with `Refused` for a payload over
    /// [`PeerLimits::max_call_payload_bytes`].
    fn call(
        &self,
        target: NodeId,
        group: GroupId,
        kind: RpcKind,
        payload: Bytes,
        timeout_ms: u64,
    ) -> BoxFuture<'static, Result<Bytes, TransportError>> {
        let link = self
            .links
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&target)
            .cloned();
        match link {
            Some(link) => link.call(group, kind, payload, timeout_ms),
            None => Box::pin(ready(Err(TransportError::UnknownPeer(target)))),
        }
    }

    fn set_peer_address(&self, node: NodeId, addr: &str) {
        self.set_peer(node, addr.to_string());
    }

    fn forget_peer(&self, node: NodeId) {
        self.remove_peer(node);
    }
}

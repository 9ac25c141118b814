//! A transport that hands each call straight to the target node's registry, in process, and
//! counts calls. A node can be cut off (calls to and from it fail as unreachable), and calls of
//! one kind can be dropped network-wide (to make one protocol step fail, such as a handover's
//! campaign request, or to keep a damaged replica from healing while a test watches it).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::groups::GroupRegistry;
use crate::transport::{BoxFuture, InboundCalls, PeerTransport, RpcKind, TransportError};
use crate::types::{GroupId, NodeId};

/// The in-process network: every node's registry, and which nodes are cut off.
#[derive(Default)]
pub struct MemNetwork {
    nodes: Mutex<BTreeMap<NodeId, Arc<GroupRegistry>>>,
    down: Mutex<BTreeSet<NodeId>>,
    dropped_kinds: Mutex<HashSet<RpcKind>>,
    calls: AtomicU64,
}

impl MemNetwork {
    /// An empty network.
    pub fn new() -> Arc<MemNetwork> {
        Arc::new(MemNetwork::default())
    }

    /// Adds node `id` with its registry.
    pub fn add_node(&self, id: NodeId, registry: Arc<GroupRegistry>) {
        self.nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, registry);
    }

    /// Cuts node `id` off (`true`) or reconnects it (`false`).
    pub fn set_down(&self, id: NodeId, down: bool) {
        let mut set = self.down.lock().unwrap_or_else(|e| e.into_inner());
        if down {
            set.insert(id);
        } else {
            set.remove(&id);
        }
    }

    /// Drops every call of `kind` (`true`: it fails as unreachable) or lets them through again
    /// (`false`).
    pub fn set_dropped(&self, kind: RpcKind, dropped: bool) {
        let mut set = self.dropped_kinds.lock().unwrap_or_else(|e| e.into_inner());
        if dropped {
            set.insert(kind);
        } else {
            set.remove(&kind);
        }
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The transport node `from` sends through.
    pub fn transport(self: &Arc<Self>, from: NodeId) -> Arc<dyn PeerTransport> {
        Arc::new(MemTransport {
            net: Arc::clone(self),
            from,
        })
    }
}

struct MemTransport {
    net: Arc<MemNetwork>,
    from: NodeId,
}

impl PeerTransport for MemTransport {
    fn call(
        &self,
        target: NodeId,
        group: GroupId,
        kind: RpcKind,
        payload: Bytes,
        _timeout_ms: u64,
    ) -> BoxFuture<'static, Result<Bytes, TransportError>> {
        self.net.calls.fetch_add(1, Ordering::Relaxed);
        let down = {
            let set = self.net.down.lock().unwrap_or_else(|e| e.into_inner());
            set.contains(&target) || set.contains(&self.from)
        } || self
            .net
            .dropped_kinds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&kind);
        let registry = self
            .net
            .nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&target)
            .cloned();
        let from = self.from;
        Box::pin(async move {
            let Some(registry) = registry else {
                return Err(TransportError::UnknownPeer(target));
            };
            if down {
                return Err(TransportError::Unreachable {
                    node: target,
                    reason: "cut off".to_string(),
                });
            }
            registry
                .handle(from, group, kind, payload)
                .await
                .map_err(|reason| TransportError::Refused {
                    node: target,
                    reason,
                })
        })
    }
}

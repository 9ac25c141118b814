//! Node commands: bootstrap from the static peer list, register a node, set where clients reach
//! it, mark it alive or fenced.

use std::collections::{BTreeMap, BTreeSet};

use crate::action::Action;
use crate::command::PeerSpec;
use crate::error::ControllerError;
use crate::ids::NodeId;
use crate::metadata::ClusterMetadata;
use crate::node::{NodeMeta, NodeState};
use crate::reply::{Outcome, Reply};

impl ClusterMetadata {
    pub(super) fn bootstrap(
        &mut self,
        cluster_id: String,
        peers: Vec<PeerSpec>,
        at_ms: i64,
    ) -> Result<Reply, ControllerError> {
        if let Some(held) = &self.cluster_id {
            // Any node may propose the bootstrap after a restart without knowing whether an
            // earlier one committed; the same cluster's bootstrap is therefore a no-op.
            return if *held == cluster_id {
                Ok(Reply::bare(Outcome::AlreadyBootstrapped))
            } else {
                Err(ControllerError::ClusterIdMismatch {
                    held: held.clone(),
                    proposed: cluster_id,
                })
            };
        }
        if cluster_id.is_empty() {
            return Err(ControllerError::EmptyClusterId);
        }
        check_peer_list(&peers)?;

        let node_count = peers.len();
        self.nodes = peers
            .into_iter()
            .map(|peer| (peer.node, alive_node(peer.addr, at_ms)))
            .collect();
        self.cluster_id = Some(cluster_id);
        Ok(Reply::bare(Outcome::Bootstrapped { node_count }))
    }

    pub(super) fn register_node(
        &mut self,
        node: NodeId,
        addr: String,
        at_ms: i64,
    ) -> Result<Reply, ControllerError> {
        if addr.is_empty() {
            return Err(ControllerError::EmptyNodeAddress { node });
        }
        if let Some((other, _)) = self
            .nodes
            .iter()
            .find(|(id, meta)| **id != node && meta.addr == addr)
        {
            return Err(ControllerError::DuplicateNodeAddress {
                addr,
                first: *other,
                second: node,
            });
        }

        let new = !self.nodes.contains_key(&node);
        let outcome = Outcome::NodeRegistered { node, new };
        match self.nodes.get_mut(&node) {
            Some(meta) if meta.addr == addr => return Ok(Reply::bare(outcome)),
            Some(meta) => meta.addr.clone_from(&addr),
            None => {
                self.nodes.insert(node, alive_node(addr.clone(), at_ms));
            }
        }
        Ok(Reply {
            outcome,
            actions: vec![Action::PeerAddressChanged { peer: node, addr }],
        })
    }

    pub(super) fn advertise_node(
        &mut self,
        node: NodeId,
        client_addr: Option<String>,
    ) -> Result<Reply, ControllerError> {
        if client_addr.as_deref() == Some("") {
            return Err(ControllerError::EmptyNodeAddress { node });
        }
        let meta = self
            .nodes
            .get_mut(&node)
            .ok_or(ControllerError::UnknownNode { node })?;
        meta.client_addr = client_addr;
        Ok(Reply::bare(Outcome::NodeAdvertised { node }))
    }

    pub(super) fn set_node_state(
        &mut self,
        node: NodeId,
        state: NodeState,
        at_ms: i64,
    ) -> Result<Reply, ControllerError> {
        let meta = self
            .nodes
            .get_mut(&node)
            .ok_or(ControllerError::UnknownNode { node })?;
        if meta.state != state {
            meta.state = state;
            meta.state_changed_at_ms = at_ms;
        }
        Ok(Reply::bare(Outcome::NodeStateSet { node, state }))
    }
}

/// A peer list is refused if it is empty, names a node twice, or gives a node an empty address
/// or another node's address: each would make a cluster whose nodes cannot reach each other.
fn check_peer_list(peers: &[PeerSpec]) -> Result<(), ControllerError> {
    if peers.is_empty() {
        return Err(ControllerError::EmptyPeerList);
    }
    let mut ids = BTreeSet::new();
    let mut addrs: BTreeMap<&str, NodeId> = BTreeMap::new();
    for peer in peers {
        if !ids.insert(peer.node) {
            return Err(ControllerError::DuplicateNodeId { node: peer.node });
        }
        if peer.addr.is_empty() {
            return Err(ControllerError::EmptyNodeAddress { node: peer.node });
        }
        if let Some(first) = addrs.insert(&peer.addr, peer.node) {
            return Err(ControllerError::DuplicateNodeAddress {
                addr: peer.addr.clone(),
                first,
                second: peer.node,
            });
        }
    }
    Ok(())
}

fn alive_node(addr: String, at_ms: i64) -> NodeMeta {
    NodeMeta {
        addr,
        state: NodeState::Alive,
        registered_at_ms: at_ms,
        state_changed_at_ms: at_ms,
        client_addr: None,
    }
}

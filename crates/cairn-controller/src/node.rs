//! What the metadata records about one node: its address and whether placement may use it.
//! Liveness here is a decision the controller log recorded (a `SetNodeState` command), never a
//! clock reading, so every node agrees on it.

use serde::{Deserialize, Serialize};

/// Whether a node takes new replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// The node is up as far as the controller knows; placement puts replicas on it.
    Alive,
    /// The node was marked dead or taken out (by an operator or a failure detector that proposes
    /// `SetNodeState`). Its existing replicas stay assigned (Raft copes with a missing member);
    /// new replicas are placed elsewhere.
    Fenced,
    /// The node is being removed (`RemoveNode`): it takes no new replicas, its replicas are
    /// being moved away, and once it hosts none it leaves the controller group and the metadata.
    Leaving,
}

/// One registered node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMeta {
    /// `host:port` of the node's gRPC listener (clients and node-to-node traffic).
    pub addr: String,
    /// Whether placement may use it.
    pub state: NodeState,
    /// When the node was first registered, in ms since the Unix epoch, as the command said.
    pub registered_at_ms: i64,
    /// When `state` last changed (or the registration time), in ms since the Unix epoch.
    pub state_changed_at_ms: i64,
    /// Where clients reach the node (its `--advertised-address`) when that is not `addr`, as
    /// behind NAT or a container's published port; `None`: at `addr`. Absent from metadata
    /// written before it existed, which therefore reads as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
}

impl NodeMeta {
    /// The address clients are given for this node: its advertised address, else `addr`.
    pub fn client_address(&self) -> &str {
        self.client_addr.as_deref().unwrap_or(&self.addr)
    }
}

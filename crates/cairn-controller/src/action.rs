//! [`Action`]: what applying a command asks nodes to do. Every node applies every command and gets
//! the same list; each acts on the entries [`Action::is_for`] itself.
//!
//! Actions are derived from state, so they come again when a node replays the log after a
//! restart: acting on one must be idempotent (hosting a replica already hosted, or dropping one
//! already gone, does nothing). A node that starts up reconciles with
//! [`ClusterMetadata::replicas_of`](crate::ClusterMetadata::replicas_of) instead of trusting that
//! it saw every action.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{GroupId, NodeId, TopicId};

/// One replica a node must host: which partition, its group and the group's members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaAssignment {
    /// The partition's Raft group.
    pub group: GroupId,
    /// The topic's name.
    pub topic: String,
    /// The topic's id (tells a recreated topic from the old one of the same name).
    pub topic_id: TopicId,
    /// The partition's index in the topic.
    pub partition: u32,
    /// The group's members; the first is the preferred leader. Addresses are in
    /// [`ClusterMetadata::nodes`](crate::ClusterMetadata::nodes).
    pub replicas: Vec<NodeId>,
    /// The topic's configs.
    pub configs: BTreeMap<String, String>,
}

/// What a node must do after a command is applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// `node` must open (or create) this replica and run its Raft group.
    HostReplica {
        /// The node that hosts it.
        node: NodeId,
        /// The replica.
        assignment: ReplicaAssignment,
    },
    /// `node` must stop this replica's group and delete its data (its topic was deleted).
    DropReplica {
        /// The node that hosted it.
        node: NodeId,
        /// The partition's group.
        group: GroupId,
        /// The topic's name.
        topic: String,
        /// The topic's id.
        topic_id: TopicId,
        /// The partition's index.
        partition: u32,
    },
    /// `node` hosts replicas of `topic` and must apply its new configs to them.
    ConfigChanged {
        /// A node hosting at least one of the topic's replicas.
        node: NodeId,
        /// The topic's name.
        topic: String,
        /// The topic's id.
        topic_id: TopicId,
        /// All of the topic's configs after the change.
        configs: BTreeMap<String, String>,
    },
    /// Every node must reach `peer` at `addr` from now on (a node joined or moved).
    PeerAddressChanged {
        /// The node whose address changed.
        peer: NodeId,
        /// Its new address.
        addr: String,
    },
}

impl Action {
    /// True if the node `me` must act on this.
    pub fn is_for(&self, me: NodeId) -> bool {
        match self {
            Action::HostReplica { node, .. }
            | Action::DropReplica { node, .. }
            | Action::ConfigChanged { node, .. } => *node == me,
            Action::PeerAddressChanged { .. } => true,
        }
    }
}

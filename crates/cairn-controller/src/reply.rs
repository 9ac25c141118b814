//! [`Reply`]: what applying an accepted command answers: the outcome for the proposer and the
//! actions for the nodes. Serde, because the controller group's Raft response carries it.

use serde::{Deserialize, Serialize};

use crate::action::Action;
use crate::ids::{GroupId, NodeId, ProducerIdBlock, TopicId};
use crate::node::NodeState;

/// The result of an accepted command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// What happened, for the proposer's answer to its caller.
    pub outcome: Outcome,
    /// What nodes must do, in a deterministic order (see [`Action::is_for`]).
    pub actions: Vec<Action>,
}

/// What an accepted command did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The cluster was bootstrapped with this many nodes.
    Bootstrapped {
        /// Nodes registered.
        node_count: usize,
    },
    /// `Bootstrap` came again for the same cluster; nothing changed.
    AlreadyBootstrapped,
    /// A node was added (`new`) or its address changed or stayed.
    NodeRegistered {
        /// The node.
        node: NodeId,
        /// True if it was not registered before.
        new: bool,
    },
    /// A node's client address is now as `AdvertiseNode` said (or already was).
    NodeAdvertised {
        /// The node.
        node: NodeId,
    },
    /// A node's state is now `state`.
    NodeStateSet {
        /// The node.
        node: NodeId,
        /// Its state.
        state: NodeState,
    },
    /// A topic was created; its partitions' groups are `first_group..first_group + count`.
    TopicCreated {
        /// The new topic's id.
        topic_id: TopicId,
        /// The group of partition 0.
        first_group: GroupId,
    },
    /// A topic was deleted.
    TopicDeleted {
        /// The deleted topic's id.
        topic_id: TopicId,
    },
    /// Topic configs were altered; `changed` is false if the command set what was already set.
    ConfigsAltered {
        /// The topic's id.
        topic_id: TopicId,
        /// True if any config changed.
        changed: bool,
    },
    /// Partitions were added; the topic now has `partition_count`.
    PartitionsAdded {
        /// The topic's id.
        topic_id: TopicId,
        /// The new total.
        partition_count: u32,
    },
    /// The leader report was recorded.
    LeaderRecorded,
    /// The leader report was older than what is held, and ignored.
    StaleLeaderReport {
        /// The epoch held, above the report's.
        held_epoch: u64,
    },
    /// A producer-id block was handed out.
    ProducerIds(ProducerIdBlock),
    /// `AddNode` registered the node.
    NodeAdded {
        /// The node.
        node: NodeId,
    },
    /// `RemoveNode` marked the node leaving and started moving its replicas.
    NodeRemoving {
        /// The node.
        node: NodeId,
        /// Partitions whose copy on it is moving.
        moving: usize,
    },
    /// `ForgetNode` dropped the node from the metadata.
    NodeForgotten {
        /// The node.
        node: NodeId,
    },
    /// `ReassignPartitions` accepted the plan.
    ReassignmentStarted {
        /// Partitions whose replica set changes (their groups change membership).
        moving: usize,
        /// Partitions whose replicas stay but are reordered (a new preferred leader), recorded
        /// at once.
        reordered: usize,
    },
    /// `UpsertUser` stored the credential; `created` is false if it replaced one.
    UserUpserted {
        /// True if the user is new.
        created: bool,
    },
    /// `DeleteUser` removed the user.
    UserDeleted,
    /// `CreateAcls` added this many new ACLs (the others were there already).
    AclsCreated {
        /// New ACLs.
        added: usize,
    },
    /// `DeleteAcls` removed this many ACLs (the others were not there).
    AclsDeleted {
        /// Removed ACLs.
        removed: usize,
    },
    /// `SetQuota` stored the limits.
    QuotaSet,
    /// `RemoveQuota` removed the entity's limits.
    QuotaRemoved,
    /// `RecordTopicCreator` or `ForgetTopicCreator` updated the creation ledger.
    TopicCreatorRecorded,
    /// `CompleteReassignment` recorded the group's new replica set.
    ReassignmentCompleted {
        /// The group.
        group: GroupId,
    },
}

impl Reply {
    pub(crate) fn bare(outcome: Outcome) -> Reply {
        Reply {
            outcome,
            actions: Vec::new(),
        }
    }
}

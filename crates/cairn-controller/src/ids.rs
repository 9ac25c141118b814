//! The numbers the controller hands out and refers to. Each kind that must not be mixed with
//! another has its own type; none of them is ever handed out twice, even after the thing it named
//! is deleted, so a late message about an old topic or group can never reach a new one.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A node's id in the cluster (`--node-id`). The same integer as `cairn_raft::NodeId`; this crate
/// does not depend on `cairn-raft`, so it names its own alias.
pub type NodeId = u64;

/// A Raft group's id. [`GroupId::CONTROLLER`] (0) is the controller's own group; every partition
/// gets a fresh id above 0 when it is created. Converts to `cairn_raft::GroupId` through its
/// `u64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GroupId(pub u64);

impl GroupId {
    /// The controller group, present on every node and never given to a partition.
    pub const CONTROLLER: GroupId = GroupId(0);
    /// The first id a partition group can get.
    pub const FIRST_PARTITION: GroupId = GroupId(1);
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group {}", self.0)
    }
}

/// A topic's id: a topic deleted and created again under the same name gets a new one, so a
/// replica left over from the old topic is told apart from the new topic's by id, not by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TopicId(pub u64);

impl TopicId {
    /// The first id a topic gets (0 is never used, so a zeroed field never names a topic).
    pub const FIRST: TopicId = TopicId(1);
}

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "topic id {}", self.0)
    }
}

/// A range of idempotent-producer ids handed to one node: `[first, first + len)`. The node gives
/// them out to producers without asking the controller again until the block runs out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProducerIdBlock {
    /// The first id of the block.
    pub first: u64,
    /// How many ids the block holds (at least 1).
    pub len: u64,
}

impl ProducerIdBlock {
    /// The id after the block's last one.
    pub fn end(&self) -> u64 {
        self.first.saturating_add(self.len)
    }

    /// True if `id` is in the block.
    pub fn contains(&self, id: u64) -> bool {
        id >= self.first && id < self.end()
    }
}

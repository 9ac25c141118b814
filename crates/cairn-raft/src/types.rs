//! The identifiers and openraft type configuration shared by every Raft group of a node.

use std::fmt;
use std::io::Cursor;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A node's id in the cluster (`--node-id`), stable for the life of its data directory.
pub type NodeId = u64;

/// Which Raft group a message belongs to. [`GroupId::CONTROLLER`] is the metadata group; every
/// partition group gets its own id from the controller when its replicas are placed, never reused,
/// so a topic deleted and created again under the same name never mixes with the old one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupId(pub u64);

impl GroupId {
    /// The controller group, present on every node.
    pub const CONTROLLER: GroupId = GroupId(0);
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group {}", self.0)
    }
}

/// What a group's membership records about a node: the address peers and clients reach it on.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PeerNode {
    /// `host:port` of the node's gRPC listener.
    pub addr: String,
}

impl fmt::Display for PeerNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.addr)
    }
}

/// The payload of a normal Raft entry: one encoded record batch (Kafka RecordBatch v2, its
/// header included). The log stamps the base offset and the partitionLeaderEpoch (the entry's
/// term) when it stores the batch; neither is covered by the batch CRC.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchData(pub Bytes);

/// What applying a committed partition entry answers: where its records landed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedBatch {
    /// The first offset of the batch (for an entry without records: the next offset).
    pub base_offset: i64,
    /// The offset after the batch's last record: the high watermark once it is committed.
    pub next_offset: i64,
}

openraft::declare_raft_types!(
    /// The openraft type configuration of a replicated partition.
    pub PartitionRaft:
        D = BatchData,
        R = AppliedBatch,
        NodeId = NodeId,
        Node = PeerNode,
        Entry = openraft::Entry<PartitionRaft>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

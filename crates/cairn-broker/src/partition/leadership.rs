//! Who leads a partition and which nodes hold it, as a partition answers: the facts behind
//! `GetMetadata` and behind a [`crate::BrokerError::NotLeader`]'s hint.
//!
//! A partition answers in node ids only; the broker, which knows the nodes, adds addresses.
//! Node ids are `i32`, as the API and Kafka carry them.

use cairn_codec::LeaderEpoch;

/// Where a client should send what this node refused because it does not lead the partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderHint {
    /// The leader's node id (or, during an election, the likeliest winner's).
    pub node_id: i32,
    /// The leader's client address ("host:port"), when this node knows it.
    pub address: Option<String>,
}

/// A partition's leader, epoch and replica set as one replica sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leadership {
    /// The leader's node id; `None` while there is none (an election is under way).
    pub leader: Option<i32>,
    /// The leader's epoch (the Raft term once replicated; 0 on a single node).
    pub leader_epoch: LeaderEpoch,
    /// Node ids holding a copy, leader first.
    pub replicas: Vec<i32>,
    /// Node ids whose copy is caught up with the leader (Kafka's ISR), leader first.
    pub in_sync_replicas: Vec<i32>,
}

//! The node as a member of a cluster: the controller Raft group that holds the cluster's
//! metadata, and (to come) the replica manager that hosts this node's share of partition
//! replicas. A node started without peers is a cluster of one and uses none of this: its
//! partitions keep the local, single-replica implementation.
//!
//! - `controller`: [`Controller`], this node's member of the controller group: start-up,
//!   proposals (forwarded to the leader from any node), the published metadata.
//! - `runtime`: [`ClusterRuntime`], the controller member plus the tasks that follow the
//!   metadata (bootstrap, leader reports, reconcile); `broker_cluster`: the broker's side
//!   (joining, holding this node's share of partitions, admin calls through the controller);
//!   `directory`: leaders of partitions held elsewhere, from the metadata; `liveness`: one
//!   probe per node pair, and elections steered to one survivor per group when a peer dies.
//! - `handover`: a clean stop hands this node's leaderships (controller, then partitions) to
//!   caught-up followers first ([`HandoverReport`]); `proposal_gate`: how the controller stops
//!   proposing from a leaving node; `leader_balance`: leaderships this node holds go back to
//!   their preferred replicas, on a timer and on demand ([`LeaderBalanceReport`]).
//! - `describe`: [`ClusterDescription`], `DescribeCluster` as this node sees the cluster;
//!   `replication_status`: [`ReplicationStatus`], the replication figures `/metrics` reports
//!   (leaderships, under-replicated and offline partitions, follower lag, peers reached).
//! - `membership`: the controller leader makes registered nodes controller voters and takes
//!   removed ones out (then forgets them); `reassignment`: a partition's group leader moves the
//!   group to its reassignment target (learners first, then the membership change);
//!   `replica_set`: this node opens the copies it gains and releases those it loses.
//! - `advertise`: this node's client address (`--advertised-address`) in the metadata.
//! - `controller_entry`: a controller command as a Raft entry (a one-record batch).
//! - `controller_sm`: the controller group's openraft state machine over
//!   [`cairn_controller::ClusterMetadata`], publishing each new version and this node's actions.

mod advertise;
mod broker_cluster;
pub mod controller;
pub mod controller_entry;
pub mod controller_sm;
pub mod describe;
pub mod directory;
pub mod handover;
pub mod leader_balance;
pub(crate) mod liveness;
mod membership;
mod membership_admin;
mod proposal_gate;
mod reassignment;
mod replica_set;
pub mod replication_status;
pub mod runtime;

pub use controller::{ClusterError, Controller};
pub use controller_entry::{ControllerEntryError, decode_command, encode_command};
pub use controller_sm::{
    ControllerEvent, ControllerRaft, ControllerResponse, ControllerStateMachine,
};
pub use describe::{ClusterDescription, NodeDescription, Reachability};
pub use handover::{HANDOVER_TIMEOUT_ELECTIONS, HandoverReport};
pub use leader_balance::{
    LeaderBalanceReport, LeaderBalanceStatus, LeaderMove, LeaderNotMoved, MOVES_IN_FLIGHT,
    NotMovedReason,
};
pub use membership_admin::PartitionPlan;
pub use replication_status::{ControllerRole, FollowerLag, NodeUp, ReplicationStatus};
pub use runtime::ClusterRuntime;

#[cfg(test)]
mod tests;

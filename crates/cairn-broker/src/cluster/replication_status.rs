//! [`ReplicationStatus`]: the replication figures of this node in a cluster, read at once for
//! `/metrics` (the `cairn_cluster_*` series): partitions it leads, leads short of an in-sync
//! copy, holds without a known leader, each follower's lag behind it (in entries and in time),
//! the elections it won, its controller member's state (leader known, role, term, metadata
//! applied), and which nodes its probes reach.
//!
//! Cheap enough to read on every scrape of a node with a thousand partitions: one look at each
//! held group's published openraft metrics, under the topic locks' read side, with no I/O and
//! one allocation per follower of a partition led here (a reference count, not a copy, for the
//! topic's name). A single node has none of this and reports `None`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use openraft::ServerState;

use crate::broker::Broker;

/// This node's replication figures at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicationStatus {
    /// Partitions whose Raft group this node leads.
    pub leader_count: u64,
    /// Partitions led here with fewer in-sync replicas than replicas (a follower more than
    /// the in-sync limit behind, or on a node the liveness probes cannot reach).
    pub under_replicated_count: u64,
    /// Partitions held here whose group knows no leader (an election under way, or no
    /// majority of its replicas up).
    pub offline_count: u64,
    /// Times a group on this node became leader since the process started (each term won
    /// counts once).
    pub elections_total: u64,
    /// Damaged spans of committed entries this node's copies rewrote with a peer's good
    /// copies since the process started (`partition::heal`).
    pub heals_total: u64,
    /// The controller leader's node id as this node knows it; `None` while there is none.
    pub controller_leader: Option<i32>,
    /// This node's role in the controller group.
    pub controller_role: ControllerRole,
    /// The controller group's term as this node knows it: it grows by one or more with each
    /// controller election.
    pub controller_term: u64,
    /// Raft index of the last metadata entry this node applied; `None` before the first.
    /// Nodes whose figures differ for long publish different metadata.
    pub controller_applied_index: Option<u64>,
    /// Every node of the cluster's peer list, by node id, with whether this node's probes
    /// reach it (this node itself is always up).
    pub nodes_up: Vec<NodeUp>,
    /// How far each follower of each partition led here is behind, by topic and partition in
    /// the broker's order.
    pub follower_lags: Vec<FollowerLag>,
}

/// A node's role in the controller Raft group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ControllerRole {
    /// Receives the metadata log but does not vote.
    Learner,
    /// Votes and follows a leader (or waits for one).
    #[default]
    Follower,
    /// Standing for election.
    Candidate,
    /// The active controller: every metadata change is proposed through it.
    Leader,
    /// The group stopped on this node (a storage failure); the node must restart.
    Shutdown,
}

impl ControllerRole {
    /// Every role, in the order `/metrics` lists them.
    pub const ALL: [ControllerRole; 5] = [
        ControllerRole::Leader,
        ControllerRole::Follower,
        ControllerRole::Candidate,
        ControllerRole::Learner,
        ControllerRole::Shutdown,
    ];

    /// The role's name as a metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ControllerRole::Learner => "learner",
            ControllerRole::Follower => "follower",
            ControllerRole::Candidate => "candidate",
            ControllerRole::Leader => "leader",
            ControllerRole::Shutdown => "shutdown",
        }
    }

    fn from_raft(state: ServerState) -> ControllerRole {
        match state {
            ServerState::Learner => ControllerRole::Learner,
            ServerState::Follower => ControllerRole::Follower,
            ServerState::Candidate => ControllerRole::Candidate,
            ServerState::Leader => ControllerRole::Leader,
            ServerState::Shutdown => ControllerRole::Shutdown,
        }
    }
}

/// Whether one node answers this node's liveness probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeUp {
    /// The node id.
    pub node_id: i32,
    /// `false` once it has been silent past the election timeout's lower end.
    pub up: bool,
}

/// One follower of a partition led here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowerLag {
    /// The partition's topic.
    pub topic: Arc<str>,
    /// The partition's index.
    pub partition: u32,
    /// The follower's node id.
    pub follower: i32,
    /// The leader's last log index minus the follower's matched index (Raft entries, not
    /// records: a batch is one entry).
    pub lag_entries: u64,
    /// How long the follower has been behind, in milliseconds: since the leader's log first
    /// grew past the end of the follower's copy, 0 while it holds everything the leader has
    /// (Kafka's time since the follower was last caught up). Counted from when this node
    /// became leader at the earliest; may overstate, never understate, by a small fraction.
    pub lag_ms: u64,
}

impl Broker {
    /// This node's replication figures now; `None` on a single node (no cluster machinery).
    pub fn replication_status(&self) -> Option<ReplicationStatus> {
        let runtime = self.runtime()?;
        let mut status = {
            // One look at the controller's metrics, so leader, role and term agree.
            let metrics = runtime.controller.raft().metrics();
            let m = metrics.borrow();
            ReplicationStatus {
                elections_total: runtime.ctx.elections.load(Ordering::Relaxed),
                heals_total: runtime.ctx.heals.load(Ordering::Relaxed),
                controller_leader: m
                    .current_leader
                    .map(|id| i32::try_from(id).unwrap_or(i32::MAX)),
                controller_role: ControllerRole::from_raft(m.state),
                controller_term: m.current_term,
                controller_applied_index: m.last_applied.map(|l| l.index),
                ..ReplicationStatus::default()
            }
        };
        let me = runtime.spec.node_id();
        let reachability = runtime.ctx.reachability.snapshot();
        let metadata = runtime.directory.current();
        let nodes: Vec<cairn_raft::NodeId> = if metadata.nodes().is_empty() {
            runtime.spec.peers().keys().copied().collect()
        } else {
            metadata.nodes().keys().copied().collect()
        };
        status.nodes_up = nodes
            .iter()
            .map(|node| NodeUp {
                node_id: i32::try_from(*node).unwrap_or(i32::MAX),
                up: *node == me || !reachability.get(node).copied().unwrap_or(false),
            })
            .collect();
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        for topic in topics.values() {
            let partitions = topic.partitions.read().unwrap_or_else(|e| e.into_inner());
            for partition in partitions.iter() {
                partition.add_replication(&mut status);
            }
        }
        Some(status)
    }
}

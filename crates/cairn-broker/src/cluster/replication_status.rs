//! [`ReplicationStatus`]: the replication figures of this node in a cluster, read at once for
//! `/metrics` (the `cairn_cluster_*` series): partitions it leads, leads short of an in-sync
//! copy, holds without a known leader, each follower's lag behind it, the elections it won,
//! the controller leader it knows, and which nodes its probes reach.
//!
//! Cheap enough to read on every scrape of a node with a thousand partitions: one look at each
//! held group's published openraft metrics, under the topic locks' read side, with no I/O and
//! one allocation per follower of a partition led here (a reference count, not a copy, for the
//! topic's name). A single node has none of this and reports `None`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

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
    /// The controller leader's node id as this node knows it; `None` while there is none.
    pub controller_leader: Option<i32>,
    /// Every node of the cluster's peer list, by node id, with whether this node's probes
    /// reach it (this node itself is always up).
    pub nodes_up: Vec<NodeUp>,
    /// How far each follower of each partition led here is behind, by topic and partition in
    /// the broker's order.
    pub follower_lags: Vec<FollowerLag>,
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
}

impl Broker {
    /// This node's replication figures now; `None` on a single node (no cluster machinery).
    pub fn replication_status(&self) -> Option<ReplicationStatus> {
        let runtime = self.runtime()?;
        let mut status = ReplicationStatus {
            elections_total: runtime.ctx.elections.load(Ordering::Relaxed),
            controller_leader: runtime
                .controller
                .leader()
                .map(|id| i32::try_from(id).unwrap_or(i32::MAX)),
            ..ReplicationStatus::default()
        };
        let me = runtime.spec.node_id();
        let reachability = runtime.ctx.reachability.snapshot();
        status.nodes_up = runtime
            .spec
            .peers()
            .keys()
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

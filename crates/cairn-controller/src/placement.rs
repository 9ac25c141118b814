//! Replica placement: which nodes host a new partition, and which of them is its preferred
//! leader. Pure and deterministic: the same metadata gives the same placement on every node.
//!
//! The rule, per partition, over the alive nodes and the replicas and preferred leaderships they
//! already hold (all existing topics counted):
//! 1. The replica set is always taken from the least-loaded nodes: every node whose replica
//!    count is below the `R`-th lowest count is in, and the rest come from the nodes at that
//!    count. Starting from a cluster whose counts differ by at most 1 (a fresh one: all 0), they
//!    still do afterwards, whatever `R` each topic uses.
//! 2. Within what rule 1 allows, the preferred leader (the first replica) is the node with the
//!    fewest preferred leaderships, then the fewest replicas, then the lowest id.
//! 3. The other members are the least-loaded by replicas; among equals, those with the *most*
//!    leaderships go first. That keeps the nodes with few leaderships among the least-loaded ones
//!    for the next partitions, where rule 2 wants them. With this, leaderships also differ by at
//!    most 1 across the cluster when every topic has the same replication factor (checked by a
//!    property test). With mixed factors the leadership bound can break: some states allow no
//!    choice that keeps both (replicas 1, 2, 2 and leaderships 1, 0, 1 on three nodes, then an
//!    `R = 1` partition), and replicas win, since they are what fills disks.
//! 4. The followers are listed in node-id order, wrapping, starting after the leader, so the
//!    second choice of leader spreads too.
//!
//! This is Kafka's idea (spread replicas round the nodes, rotate the first) driven by load
//! counts instead of a random start index, so it balances across topics, not only within one.
//! Fenced nodes take no new replicas and are not counted.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use crate::error::ControllerError;
use crate::ids::NodeId;
use crate::metadata::ClusterMetadata;
use crate::node::NodeState;

/// What a node already holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Load {
    replica_count: u64,
    leader_count: u64,
}

/// The alive nodes and their loads, updated as partitions are placed.
pub(crate) struct Placer {
    /// Sorted by node id (the key order), which is the ring of rule 4.
    loads: BTreeMap<NodeId, Load>,
}

impl Placer {
    /// Counts the replicas and preferred leaderships that `metadata` puts on each alive node.
    pub(crate) fn new(metadata: &ClusterMetadata) -> Placer {
        let mut loads: BTreeMap<NodeId, Load> = metadata
            .nodes()
            .iter()
            .filter(|(_, meta)| meta.state == NodeState::Alive)
            .map(|(id, _)| (*id, Load::default()))
            .collect();
        for topic in metadata.topics().values() {
            for partition in &topic.partitions {
                for (idx, node) in partition.replicas.iter().enumerate() {
                    if let Some(load) = loads.get_mut(node) {
                        load.replica_count += 1;
                        if idx == 0 {
                            load.leader_count += 1;
                        }
                    }
                }
            }
        }
        Placer { loads }
    }

    /// Places `partition_count` partitions of `replication_factor` replicas each.
    ///
    /// # Errors
    /// [`ControllerError::InvalidReplicationFactor`] for 0,
    /// [`ControllerError::ReplicationFactorTooLarge`] for more than the alive nodes.
    pub(crate) fn place(
        &mut self,
        replication_factor: u16,
        partition_count: u32,
        registered_node_count: usize,
    ) -> Result<Vec<Vec<NodeId>>, ControllerError> {
        let factor = usize::from(replication_factor);
        if factor == 0 {
            return Err(ControllerError::InvalidReplicationFactor);
        }
        if factor > self.loads.len() {
            return Err(ControllerError::ReplicationFactorTooLarge {
                requested: replication_factor,
                alive_node_count: self.loads.len(),
                registered_node_count,
            });
        }
        Ok((0..partition_count)
            .map(|_| self.place_one(factor))
            .collect())
    }

    /// Places one partition; `factor` is in `1..=self.loads.len()`.
    fn place_one(&mut self, factor: usize) -> Vec<NodeId> {
        let leader = self.pick_leader(factor);
        let mut followers: Vec<NodeId> = self
            .loads
            .keys()
            .copied()
            .filter(|n| *n != leader)
            .collect();
        followers.sort_by_key(|n| {
            let load = self.load(*n);
            (load.replica_count, Reverse(load.leader_count), *n)
        });
        followers.truncate(factor - 1);
        // Rule 4: ring order after the leader. Ids above the leader's come first, then the wrap.
        followers.sort_by_key(|n| (*n < leader, *n));

        let mut replicas = Vec::with_capacity(factor);
        replicas.push(leader);
        replicas.extend(followers);
        for node in &replicas {
            if let Some(load) = self.loads.get_mut(node) {
                load.replica_count += 1;
            }
        }
        if let Some(load) = self.loads.get_mut(&leader) {
            load.leader_count += 1;
        }
        debug_assert_eq!(
            replicas.len(),
            factor,
            "placed {replicas:?}, wanted {factor}"
        );
        replicas
    }

    /// Rules 1 and 2: the leader is one of the nodes a least-loaded replica set can hold, those
    /// whose replica count is at most the `factor`-th lowest count.
    fn pick_leader(&self, factor: usize) -> NodeId {
        let mut counts: Vec<u64> = self.loads.values().map(|l| l.replica_count).collect();
        counts.sort_unstable();
        let ceiling = counts.get(factor - 1).copied().unwrap_or(u64::MAX);
        self.loads
            .iter()
            .filter(|(_, load)| load.replica_count <= ceiling)
            .min_by_key(|(node, load)| (load.leader_count, load.replica_count, **node))
            .map(|(node, _)| *node)
            .expect("place checked that at least one node is alive")
    }

    /// The alive node to take over a copy from a node being removed: the one with the fewest
    /// replicas (then the lowest id) among those not in `exclude` (the partition's other
    /// replicas and the leaving node). Its count goes up, so the next replacement spreads.
    pub(crate) fn replacement(&mut self, exclude: &[NodeId]) -> Option<NodeId> {
        let chosen = self
            .loads
            .iter()
            .filter(|(node, _)| !exclude.contains(node))
            .min_by_key(|(node, load)| (load.replica_count, **node))
            .map(|(node, _)| *node)?;
        if let Some(load) = self.loads.get_mut(&chosen) {
            load.replica_count += 1;
        }
        Some(chosen)
    }

    fn load(&self, node: NodeId) -> Load {
        self.loads.get(&node).copied().unwrap_or_default()
    }
}

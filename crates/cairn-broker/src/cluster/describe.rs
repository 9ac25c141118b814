//! `DescribeCluster` (Kafka's DescribeCluster): the cluster as this node sees it. The cluster
//! id, the controller leader, and every node with its address, whether this node's liveness
//! probes reach it, and its share of partition replicas and leaderships from the committed
//! metadata.
//!
//! It answers from this node's state alone and proposes nothing, so it works without a
//! controller majority (then with the metadata as last applied here). Reachability is this
//! node's view, not the cluster's: another node may see it differently. Leaderships are the
//! leaders last reported to the controller, so a dead leader keeps its count until a new
//! leader's report commits.

use std::collections::BTreeMap;

use cairn_controller::ClusterMetadata;
use cairn_raft::NodeId;

use crate::broker::Broker;

/// The cluster as one node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterDescription {
    /// The cluster id (32 hex digits); `None` before the cluster has formed and on a single
    /// node.
    pub cluster_id: Option<String>,
    /// The controller leader as the answering node knows it; `None` while there is none, and
    /// always on a single node (a cluster of one runs no controller group).
    pub controller_id: Option<i32>,
    /// The node that answered.
    pub answering_node_id: i32,
    /// Every node, by node id.
    pub nodes: Vec<NodeDescription>,
}

/// Whether the answering node reaches a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reachability {
    /// It answers the liveness probes (the answering node is always alive to itself).
    Alive,
    /// It has been silent past the election timeout's lower end.
    Unreachable,
}

/// One node of a [`ClusterDescription`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeDescription {
    /// The node id.
    pub node_id: i32,
    /// Its client address, `host:port`.
    pub address: String,
    /// Whether the answering node reaches it.
    pub reachability: Reachability,
    /// Whether it leads the controller group, as the answering node knows.
    pub is_controller: bool,
    /// Partition replicas the metadata places on it (every topic, internal ones too).
    pub replica_count: u32,
    /// Partitions whose last reported leader is this node.
    pub leader_count: u32,
    /// Whether it is being removed: its replicas are moving away.
    pub leaving: bool,
}

impl Broker {
    /// Describes the cluster as this node sees it (see the module docs). A single node answers
    /// a cluster of one: no id, no controller, itself alive, holding a replica and the
    /// leadership of every partition of every topic it has.
    pub fn describe_cluster(&self) -> ClusterDescription {
        let Some(runtime) = self.runtime() else {
            return self.describe_single_node();
        };
        let reachability = runtime.ctx.reachability.snapshot();
        describe_metadata(
            &runtime.directory.current(),
            runtime.spec.peers(),
            runtime.spec.node_id(),
            runtime.controller.leader(),
            |node| reachability.get(&node).copied().unwrap_or(false),
        )
    }

    fn describe_single_node(&self) -> ClusterDescription {
        let partition_count: u32 = self
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|topic| topic.partition_count().get())
            .fold(0u32, u32::saturating_add);
        let node = self.node();
        ClusterDescription {
            cluster_id: None,
            controller_id: None,
            answering_node_id: node.node_id,
            nodes: vec![NodeDescription {
                node_id: node.node_id,
                address: node.advertised_address.clone(),
                reachability: Reachability::Alive,
                is_controller: false,
                replica_count: partition_count,
                leader_count: partition_count,
                leaving: false,
            }],
        }
    }
}

fn node_i32(node: NodeId) -> i32 {
    i32::try_from(node).unwrap_or(i32::MAX)
}

/// The description from facts a node holds: the committed `metadata`, its `peers` list (used
/// until the metadata has nodes, that is before the cluster forms), its own id `me`, the
/// controller leader it knows, and which peers its probes find `unreachable`.
pub(crate) fn describe_metadata(
    metadata: &ClusterMetadata,
    peers: &BTreeMap<NodeId, String>,
    me: NodeId,
    controller: Option<NodeId>,
    unreachable: impl Fn(NodeId) -> bool,
) -> ClusterDescription {
    let mut counts: BTreeMap<NodeId, (u32, u32)> = BTreeMap::new();
    for topic in metadata.topics().values() {
        for partition in &topic.partitions {
            for replica in &partition.hosts() {
                let count = counts.entry(*replica).or_default();
                count.0 = count.0.saturating_add(1);
            }
            if let Some(leader) = partition.leader {
                let count = counts.entry(leader).or_default();
                count.1 = count.1.saturating_add(1);
            }
        }
    }
    let addresses: Vec<(NodeId, &str)> = if metadata.nodes().is_empty() {
        peers
            .iter()
            .map(|(id, addr)| (*id, addr.as_str()))
            .collect()
    } else {
        metadata
            .nodes()
            .iter()
            .map(|(id, meta)| (*id, meta.client_address()))
            .collect()
    };
    let nodes = addresses
        .into_iter()
        .map(|(id, address)| {
            let (replica_count, leader_count) = counts.get(&id).copied().unwrap_or_default();
            NodeDescription {
                node_id: node_i32(id),
                address: address.to_string(),
                reachability: if id != me && unreachable(id) {
                    Reachability::Unreachable
                } else {
                    Reachability::Alive
                },
                is_controller: controller == Some(id),
                replica_count,
                leader_count,
                leaving: metadata
                    .node(id)
                    .is_some_and(|n| n.state == cairn_controller::NodeState::Leaving),
            }
        })
        .collect();
    ClusterDescription {
        cluster_id: metadata.cluster_id().map(str::to_string),
        controller_id: controller.map(node_i32),
        answering_node_id: node_i32(me),
        nodes,
    }
}

#[cfg(test)]
mod tests {
    use cairn_controller::{Command, PeerSpec};

    use super::*;

    fn peers() -> BTreeMap<NodeId, String> {
        (1..=3).map(|n| (n, format!("127.0.0.1:70{n}0"))).collect()
    }

    /// A formed cluster of three with `orders` (3 partitions, 2 copies each).
    fn formed() -> ClusterMetadata {
        let mut metadata = ClusterMetadata::new();
        metadata
            .apply(Command::Bootstrap {
                cluster_id: "c1".to_string(),
                peers: peers()
                    .into_iter()
                    .map(|(node, addr)| PeerSpec { node, addr })
                    .collect(),
                at_ms: 1,
            })
            .expect("bootstraps");
        metadata
            .apply(Command::CreateTopic {
                name: "orders".to_string(),
                partition_count: 3,
                replication_factor: 2,
                configs: BTreeMap::new(),
            })
            .expect("creates");
        metadata
    }

    #[test]
    fn counts_every_replica_and_each_reported_leader_once() {
        let mut metadata = formed();
        let partitions = metadata
            .topic("orders")
            .expect("created")
            .partitions
            .clone();
        let first = &partitions[0];
        metadata
            .apply(Command::ReportLeader {
                group: first.group,
                leader: first.replicas[1],
                epoch: 2,
                isr: first.replicas.clone(),
            })
            .expect("reports");
        let described = describe_metadata(&metadata, &peers(), 1, Some(2), |n| n == 3);
        let replicas: u32 = described.nodes.iter().map(|n| n.replica_count).sum();
        let leaders: u32 = described.nodes.iter().map(|n| n.leader_count).sum();
        assert_eq!(replicas, 6, "3 partitions x 2 copies: {described:?}");
        assert_eq!(leaders, 1, "one leader reported: {described:?}");
        let leader = node_i32(first.replicas[1]);
        let node = described
            .nodes
            .iter()
            .find(|n| n.node_id == leader)
            .expect("listed");
        assert_eq!(node.leader_count, 1);
        for node in &described.nodes {
            let expected = partitions
                .iter()
                .filter(|p| {
                    p.replicas
                        .contains(&u64::try_from(node.node_id).expect("positive"))
                })
                .count();
            assert_eq!(
                node.replica_count as usize, expected,
                "node {}",
                node.node_id
            );
        }
    }

    #[test]
    fn marks_the_controller_and_unreachable_peers_but_never_itself() {
        let described = describe_metadata(&formed(), &peers(), 3, Some(2), |_| true);
        assert_eq!(described.cluster_id.as_deref(), Some("c1"));
        assert_eq!(described.controller_id, Some(2));
        assert_eq!(described.answering_node_id, 3);
        let states: Vec<(i32, Reachability, bool)> = described
            .nodes
            .iter()
            .map(|n| (n.node_id, n.reachability, n.is_controller))
            .collect();
        assert_eq!(
            states,
            vec![
                (1, Reachability::Unreachable, false),
                (2, Reachability::Unreachable, true),
                (3, Reachability::Alive, false),
            ]
        );
    }

    #[test]
    fn before_the_cluster_forms_lists_the_peers_with_nothing_placed() {
        let described = describe_metadata(&ClusterMetadata::new(), &peers(), 1, None, |_| false);
        assert_eq!(described.cluster_id, None);
        assert_eq!(described.controller_id, None);
        let addresses: Vec<&str> = described.nodes.iter().map(|n| n.address.as_str()).collect();
        assert_eq!(
            addresses,
            vec!["127.0.0.1:7010", "127.0.0.1:7020", "127.0.0.1:7030"]
        );
        assert!(
            described
                .nodes
                .iter()
                .all(|n| n.replica_count == 0 && n.leader_count == 0)
        );
    }
}

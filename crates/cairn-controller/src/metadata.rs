//! [`ClusterMetadata`]: the controller's state, and the read-only queries nodes make of it.
//! Commands change it only through [`ClusterMetadata::apply`] (in `apply/`), so its fields are
//! private and every invariant listed in `invariants.rs` holds between commands.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::action::ReplicaAssignment;
use crate::ids::{GroupId, NodeId, ProducerIdBlock, TopicId};
use crate::node::NodeMeta;
use crate::security::Security;
use crate::topic::{PartitionMeta, TopicMeta};

/// The whole cluster metadata, as every node computes it from the committed controller log.
/// Maps are `BTreeMap`s so iteration, and therefore actions and snapshot bytes, come in the same
/// order on every node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterMetadata {
    pub(crate) cluster_id: Option<String>,
    pub(crate) nodes: BTreeMap<NodeId, NodeMeta>,
    pub(crate) topics: BTreeMap<String, TopicMeta>,
    /// Above every topic id ever given.
    pub(crate) next_topic_id: TopicId,
    /// Above every partition group id ever given.
    pub(crate) next_group_id: GroupId,
    /// Above every producer id ever handed out.
    pub(crate) next_producer_id: u64,
    /// The last block handed to each node.
    pub(crate) producer_id_blocks: BTreeMap<NodeId, ProducerIdBlock>,
    /// Users and ACLs. Absent from snapshots written before they existed (and from new ones
    /// while empty), hence the default.
    #[serde(default, skip_serializing_if = "Security::is_empty")]
    pub(crate) security: Security,
}

/// One partition found by its group, with the topic it belongs to.
#[derive(Clone, Copy, Debug)]
pub struct PartitionRef<'a> {
    /// The topic's name.
    pub topic: &'a str,
    /// The topic.
    pub topic_meta: &'a TopicMeta,
    /// The partition's index in the topic.
    pub partition: u32,
    /// The partition.
    pub meta: &'a PartitionMeta,
}

impl Default for ClusterMetadata {
    fn default() -> Self {
        ClusterMetadata::new()
    }
}

impl ClusterMetadata {
    /// The state before the first command: no cluster id, no nodes, no topics.
    pub fn new() -> ClusterMetadata {
        ClusterMetadata {
            cluster_id: None,
            nodes: BTreeMap::new(),
            topics: BTreeMap::new(),
            next_topic_id: TopicId::FIRST,
            next_group_id: GroupId::FIRST_PARTITION,
            next_producer_id: 0,
            producer_id_blocks: BTreeMap::new(),
            security: Security::new(),
        }
    }

    /// The cluster's id, once bootstrapped. A node compares it with the id in its data
    /// directory to refuse another cluster's data.
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    /// True once a `Bootstrap` command was applied.
    pub fn is_bootstrapped(&self) -> bool {
        self.cluster_id.is_some()
    }

    /// The registered nodes by id.
    pub fn nodes(&self) -> &BTreeMap<NodeId, NodeMeta> {
        &self.nodes
    }

    /// One registered node.
    pub fn node(&self, node: NodeId) -> Option<&NodeMeta> {
        self.nodes.get(&node)
    }

    /// The topics by name.
    pub fn topics(&self) -> &BTreeMap<String, TopicMeta> {
        &self.topics
    }

    /// One topic by name.
    pub fn topic(&self, name: &str) -> Option<&TopicMeta> {
        self.topics.get(name)
    }

    /// The partition whose Raft group is `group`, if one is. A linear scan: the controller is
    /// asked this once per leader report, and a second index would be a second truth to keep.
    pub fn partition_of_group(&self, group: GroupId) -> Option<PartitionRef<'_>> {
        self.topics.iter().find_map(|(topic, topic_meta)| {
            (0u32..)
                .zip(&topic_meta.partitions)
                .find(|(_, meta)| meta.group == group)
                .map(|(partition, meta)| PartitionRef {
                    topic,
                    topic_meta,
                    partition,
                    meta,
                })
        })
    }

    /// Every replica `node` must host (a reassignment's new members included), in group order. A node calls this at start-up (and after
    /// installing a controller snapshot) to open what it should host and drop what it should
    /// not, instead of relying on having seen every action.
    pub fn replicas_of(&self, node: NodeId) -> Vec<ReplicaAssignment> {
        let mut assignments: Vec<ReplicaAssignment> = self
            .topics
            .iter()
            .flat_map(|(topic, topic_meta)| {
                (0u32..)
                    .zip(&topic_meta.partitions)
                    .filter(|(_, meta)| meta.is_hosted_on(node))
                    .map(move |(partition, meta)| assignment(topic, topic_meta, partition, meta))
            })
            .collect();
        assignments.sort_by_key(|a| a.group);
        assignments
    }

    /// The id the next created topic gets.
    pub fn next_topic_id(&self) -> TopicId {
        self.next_topic_id
    }

    /// The id the next created partition group gets.
    pub fn next_group_id(&self) -> GroupId {
        self.next_group_id
    }

    /// The first producer id of the next block to be handed out.
    pub fn next_producer_id(&self) -> u64 {
        self.next_producer_id
    }

    /// The users and ACLs.
    pub fn security(&self) -> &Security {
        &self.security
    }

    /// The last producer-id block handed to `node`, if any.
    pub fn producer_id_block(&self, node: NodeId) -> Option<ProducerIdBlock> {
        self.producer_id_blocks.get(&node).copied()
    }
}

/// The assignment of one partition, as a node hosting it needs it.
pub(crate) fn assignment(
    topic: &str,
    topic_meta: &TopicMeta,
    partition: u32,
    meta: &PartitionMeta,
) -> ReplicaAssignment {
    ReplicaAssignment {
        group: meta.group,
        topic: topic.to_string(),
        topic_id: topic_meta.id,
        partition,
        replicas: meta.replicas.clone(),
        configs: topic_meta.configs.clone(),
    }
}

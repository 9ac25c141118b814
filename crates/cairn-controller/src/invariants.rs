//! The invariants [`ClusterMetadata`] keeps between commands, as one check. A decoded snapshot
//! must pass it before it is used, and the property tests run it after every command.

use std::collections::BTreeSet;

use crate::apply::MAX_PRODUCER_ID;
use crate::metadata::ClusterMetadata;
use crate::topic::{MAX_PARTITIONS_PER_TOPIC, TopicMeta, check_topic_name};

impl ClusterMetadata {
    /// Checks every invariant: nothing exists before bootstrap and a bootstrapped cluster has
    /// nodes, each with its own non-empty address; topic names are valid; replica sets are of the
    /// topic's replication factor (at least 1), with no node twice and only registered nodes; a
    /// reported leader and the in-sync replicas are replicas; topic and group ids are unique, above
    /// 0 and below the next id to give; producer-id blocks are non-empty, disjoint, held by
    /// registered nodes and below the next free id.
    ///
    /// # Errors
    /// A sentence naming the first invariant found broken.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.cluster_id.is_none() && (!self.nodes.is_empty() || !self.topics.is_empty()) {
            return Err("nodes or topics exist before bootstrap".into());
        }
        if self.cluster_id.is_some() && self.nodes.is_empty() {
            return Err("a bootstrapped cluster without nodes".into());
        }
        self.security.check_invariants()?;
        let mut addrs = BTreeSet::new();
        for (node, meta) in &self.nodes {
            if meta.addr.is_empty() || !addrs.insert(meta.addr.as_str()) {
                return Err(format!(
                    "node {node}'s address {:?} is empty or shared",
                    meta.addr
                ));
            }
        }
        let mut topic_ids = BTreeSet::new();
        let mut groups = BTreeSet::new();
        for (name, topic) in &self.topics {
            check_topic_name(name).map_err(|rule| format!("topic name {name:?}: {rule}"))?;
            if topic.id >= self.next_topic_id || !topic_ids.insert(topic.id) {
                return Err(format!(
                    "topic {name:?}: {} reused or not yet given",
                    topic.id
                ));
            }
            for partition in &topic.partitions {
                let group = partition.group;
                if group.0 == 0 || group >= self.next_group_id || !groups.insert(group) {
                    return Err(format!("topic {name:?}: {group} reused or not yet given"));
                }
            }
            self.check_topic(name, topic)?;
        }
        if self.next_producer_id > MAX_PRODUCER_ID.saturating_add(1) {
            return Err(format!(
                "next producer id {} is past the end",
                self.next_producer_id
            ));
        }
        self.check_producer_id_blocks()
    }

    /// Blocks are non-empty, lie below the next free id, belong to registered nodes and never
    /// overlap.
    fn check_producer_id_blocks(&self) -> Result<(), String> {
        let mut blocks: Vec<_> = self.producer_id_blocks.iter().collect();
        blocks.sort_by_key(|(_, block)| block.first);
        let mut end_before = 0;
        for (node, block) in blocks {
            if block.len == 0
                || block.end() > self.next_producer_id
                || block.first < end_before
                || !self.nodes.contains_key(node)
            {
                return Err(format!(
                    "node {node}'s producer-id block {block:?} is invalid"
                ));
            }
            end_before = block.end();
        }
        Ok(())
    }

    fn check_topic(&self, name: &str, topic: &TopicMeta) -> Result<(), String> {
        if topic.replication_factor == 0 {
            return Err(format!("topic {name:?} has replication factor 0"));
        }
        let count = topic.partitions.len();
        if count == 0 || count > MAX_PARTITIONS_PER_TOPIC as usize {
            return Err(format!("topic {name:?} has {count} partitions"));
        }
        for (idx, partition) in topic.partitions.iter().enumerate() {
            let at = format!("topic {name:?} partition {idx}");
            let replicas = &partition.replicas;
            if replicas.len() != usize::from(topic.replication_factor) {
                return Err(format!(
                    "{at}: {} replicas, replication factor {}",
                    replicas.len(),
                    topic.replication_factor
                ));
            }
            let distinct: BTreeSet<_> = replicas.iter().collect();
            if distinct.len() != replicas.len() {
                return Err(format!("{at}: a node appears twice in {replicas:?}"));
            }
            if let Some(node) = replicas.iter().find(|n| !self.nodes.contains_key(n)) {
                return Err(format!("{at}: replica {node} is not a registered node"));
            }
            if let Some(target) = &partition.target {
                let targets: BTreeSet<_> = target.iter().collect();
                if target.len() != usize::from(topic.replication_factor)
                    || targets.len() != target.len()
                    || targets == distinct
                {
                    return Err(format!(
                        "{at}: reassignment target {target:?} is not a new set of {} nodes",
                        topic.replication_factor
                    ));
                }
                if let Some(node) = target.iter().find(|n| !self.nodes.contains_key(n)) {
                    return Err(format!("{at}: target {node} is not a registered node"));
                }
            }
            let hosts = partition.hosts();
            if let Some(leader) = partition.leader.filter(|l| !hosts.contains(l)) {
                return Err(format!("{at}: leader {leader} is not a replica"));
            }
            let hosts: BTreeSet<_> = hosts.iter().collect();
            let isr: BTreeSet<_> = partition.isr.iter().collect();
            if isr.len() != partition.isr.len() || !isr.is_subset(&hosts) {
                return Err(format!(
                    "{at}: in-sync replicas {:?} are not a set of replicas",
                    partition.isr
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::command::{Command, PeerSpec};
    use crate::ids::{GroupId, ProducerIdBlock, TopicId};
    use crate::metadata::ClusterMetadata;

    /// Three nodes, topic "t" with two partitions of two replicas, a block for node 1.
    fn built() -> ClusterMetadata {
        let mut metadata = ClusterMetadata::new();
        let peers = (1..=3)
            .map(|node| PeerSpec {
                node,
                addr: format!("h{node}"),
            })
            .collect();
        let commands = [
            Command::Bootstrap {
                cluster_id: "c".into(),
                peers,
                at_ms: 0,
            },
            Command::CreateTopic {
                name: "t".into(),
                partition_count: 2,
                replication_factor: 2,
                configs: BTreeMap::new(),
            },
            Command::AllocateProducerIds {
                node: 1,
                block_len: 10,
            },
        ];
        for command in commands {
            metadata.apply(command).unwrap();
        }
        metadata.check_invariants().unwrap();
        metadata
    }

    /// One way to break a state built by commands.
    type Damage = Box<dyn FnOnce(&mut ClusterMetadata)>;

    fn broken(damage: impl FnOnce(&mut ClusterMetadata)) -> String {
        let mut metadata = built();
        damage(&mut metadata);
        metadata.check_invariants().unwrap_err()
    }

    fn partition(metadata: &mut ClusterMetadata) -> &mut crate::topic::PartitionMeta {
        &mut metadata.topics.get_mut("t").unwrap().partitions[0]
    }

    #[test]
    fn each_broken_invariant_is_named() {
        let cases: Vec<(&str, Damage)> = vec![
            ("twice", Box::new(|m| partition(m).replicas = vec![1, 1])),
            ("1 replicas", Box::new(|m| partition(m).replicas = vec![1])),
            (
                "not a registered",
                Box::new(|m| partition(m).replicas[1] = 9),
            ),
            ("leader 9", Box::new(|m| partition(m).leader = Some(9))),
            ("in-sync", Box::new(|m| partition(m).isr = vec![9])),
            (
                "reassignment target",
                Box::new(|m| partition(m).target = Some(vec![3])),
            ),
            (
                "reassignment target",
                Box::new(|m| {
                    let same = partition(m).replicas.clone();
                    partition(m).target = Some(same);
                }),
            ),
            (
                "target 9",
                Box::new(|m| {
                    let mut moved = partition(m).replicas.clone();
                    moved[0] = 9;
                    partition(m).target = Some(moved);
                }),
            ),
            ("reused", Box::new(|m| partition(m).group = GroupId(2))),
            ("not yet given", Box::new(|m| m.next_group_id = GroupId(2))),
            ("group 0", Box::new(|m| partition(m).group = GroupId(0))),
            ("topic id", Box::new(|m| m.next_topic_id = TopicId(1))),
            (
                "0 partitions",
                Box::new(|m| m.topics.get_mut("t").unwrap().partitions.clear()),
            ),
            (
                "factor 0",
                Box::new(|m| m.topics.get_mut("t").unwrap().replication_factor = 0),
            ),
            (
                "shared",
                Box::new(|m| m.nodes.get_mut(&2).unwrap().addr = "h1".into()),
            ),
            ("block", Box::new(|m| m.next_producer_id = 5)),
            (
                "block",
                Box::new(|m| {
                    let overlapping = ProducerIdBlock { first: 5, len: 5 };
                    m.producer_id_blocks.insert(2, overlapping);
                }),
            ),
            ("before bootstrap", Box::new(|m| m.cluster_id = None)),
            (
                "topic name",
                Box::new(|m| {
                    let topic = m.topics.remove("t").unwrap();
                    m.topics.insert("a/b".into(), topic);
                }),
            ),
        ];
        for (expected, damage) in cases {
            let reason = broken(damage);
            assert!(reason.contains(expected), "{reason:?} lacks {expected:?}");
        }
    }
}

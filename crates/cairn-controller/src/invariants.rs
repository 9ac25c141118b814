//! The invariants [`ClusterMetadata`] keeps between commands, as one check. A decoded snapshot
//! must pass it before it is used, and the property tests run it after every command.

use std::collections::BTreeSet;

use crate::apply::MAX_PRODUCER_ID;
use crate::metadata::ClusterMetadata;
use crate::topic::{MAX_PARTITIONS_PER_TOPIC, TopicMeta, check_topic_name};

impl ClusterMetadata {
    /// Checks every invariant: replica sets are non-empty, of the topic's replication factor,
    /// with no node twice and only registered nodes; a reported leader and the in-sync replicas
    /// are replicas; topic and group ids are unique and below the next id to give; producer-id
    /// blocks lie below the next free id; topic names are valid; nothing exists before bootstrap.
    ///
    /// # Errors
    /// A sentence naming the first invariant found broken.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.cluster_id.is_none() && (!self.nodes.is_empty() || !self.topics.is_empty()) {
            return Err("nodes or topics exist before bootstrap".into());
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
        for (node, block) in &self.producer_id_blocks {
            if block.len == 0 || block.end() > self.next_producer_id {
                return Err(format!(
                    "node {node}'s producer-id block {block:?} is invalid"
                ));
            }
        }
        Ok(())
    }

    fn check_topic(&self, name: &str, topic: &TopicMeta) -> Result<(), String> {
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
            if let Some(leader) = partition.leader.filter(|l| !replicas.contains(l)) {
                return Err(format!("{at}: leader {leader} is not a replica"));
            }
            let isr: BTreeSet<_> = partition.isr.iter().collect();
            if isr.len() != partition.isr.len() || !isr.is_subset(&distinct) {
                return Err(format!(
                    "{at}: in-sync replicas {:?} are not a set of replicas",
                    partition.isr
                ));
            }
        }
        Ok(())
    }
}

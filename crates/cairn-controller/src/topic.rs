//! What the metadata records about a topic and its partitions. The topic's name is the key of
//! [`ClusterMetadata::topics`](crate::ClusterMetadata::topics), not a field, so it has one home.
//! Also here: the topic-name rule (the broker checks the same rule; both must agree).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::TopicNameRule;
use crate::ids::{GroupId, NodeId, TopicId};

/// Longest topic name, in characters (Kafka's limit, so `<topic>-<partition>` fits a file name).
pub const MAX_TOPIC_NAME_CHARS: usize = 249;

/// Most partitions a topic may have (the broker's `MAX_PARTITIONS_PER_TOPIC`).
pub const MAX_PARTITIONS_PER_TOPIC: u32 = 1024;

/// One topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// Its id, never reused.
    pub id: TopicId,
    /// Replicas per partition, the same for every partition (partitions added later get it too).
    pub replication_factor: u16,
    /// Topic configs as set (Kafka's keys, such as `retention.ms`). Keys absent take the
    /// cluster default. The broker validates keys and values before it proposes a command; the
    /// controller stores what was committed.
    pub configs: BTreeMap<String, String>,
    /// Partition `i` is `partitions[i]`.
    pub partitions: Vec<PartitionMeta>,
}

/// One partition: its Raft group and what its leaders last reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    /// The partition's Raft group, never reused.
    pub group: GroupId,
    /// The replica set, no node twice. The first is the preferred leader.
    pub replicas: Vec<NodeId>,
    /// The leader last reported, if any report came.
    pub leader: Option<NodeId>,
    /// The epoch (the Raft term) of that report; 0 before any.
    pub leader_epoch: u64,
    /// The in-sync replicas last reported (the whole replica set until a report comes).
    pub isr: Vec<NodeId>,
    /// The replica set a reassignment is moving the partition to, until its group's leader
    /// reports the move done (`CompleteReassignment`). Nodes in it and not in `replicas` host a
    /// copy that joins the group as a learner. Absent from metadata written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Vec<NodeId>>,
}

impl PartitionMeta {
    /// A partition just placed: no leader known yet, every replica counted in sync (Kafka does
    /// the same; a replica set that starts empty has nothing to fall behind on).
    pub(crate) fn placed(group: GroupId, replicas: Vec<NodeId>) -> PartitionMeta {
        PartitionMeta {
            group,
            isr: replicas.clone(),
            replicas,
            leader: None,
            leader_epoch: 0,
            target: None,
        }
    }

    /// Every node that must host a copy: the replicas, and during a reassignment the target's
    /// new members too. In replica order, then the target's additions in its order.
    pub fn hosts(&self) -> Vec<NodeId> {
        let mut hosts = self.replicas.clone();
        for node in self.target.iter().flatten() {
            if !hosts.contains(node) {
                hosts.push(*node);
            }
        }
        hosts
    }

    /// Whether `node` must host a copy (see [`PartitionMeta::hosts`]).
    pub fn is_hosted_on(&self, node: NodeId) -> bool {
        self.replicas.contains(&node) || self.target.iter().flatten().any(|n| *n == node)
    }
}

/// Checks `name` against Kafka's topic-name rules: 1 to 249 characters of `[a-zA-Z0-9._-]`, not
/// `.` or `..`.
///
/// # Errors
/// The first [`TopicNameRule`] broken, in Kafka's order.
pub fn check_topic_name(name: &str) -> Result<(), TopicNameRule> {
    if name.is_empty() {
        return Err(TopicNameRule::Empty);
    }
    if name == "." || name == ".." {
        return Err(TopicNameRule::Reserved);
    }
    let char_count = name.chars().count();
    if char_count > MAX_TOPIC_NAME_CHARS {
        return Err(TopicNameRule::TooLong { char_count });
    }
    match name
        .chars()
        .enumerate()
        .find(|(_, ch)| !(ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-')))
    {
        Some((char_idx, ch)) => Err(TopicNameRule::IllegalChar { ch, char_idx }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_name_rules_in_kafka_order() {
        assert_eq!(check_topic_name(""), Err(TopicNameRule::Empty));
        assert_eq!(check_topic_name("."), Err(TopicNameRule::Reserved));
        assert_eq!(check_topic_name(".."), Err(TopicNameRule::Reserved));
        assert_eq!(
            check_topic_name(&"a".repeat(250)),
            Err(TopicNameRule::TooLong { char_count: 250 })
        );
        assert_eq!(
            check_topic_name("a/b"),
            Err(TopicNameRule::IllegalChar {
                ch: '/',
                char_idx: 1
            })
        );
        assert_eq!(
            check_topic_name("é"),
            Err(TopicNameRule::IllegalChar {
                ch: 'é',
                char_idx: 0
            })
        );
        assert_eq!(check_topic_name(&"a".repeat(249)), Ok(()));
        assert_eq!(check_topic_name("orders.v1_x-2"), Ok(()));
        assert_eq!(check_topic_name("..."), Ok(()));
    }
}

//! PLACEHOLDER: replaced by the sticky assignor from branch `assignor` before this lands.

use std::collections::{BTreeMap, BTreeSet};

/// One partition of a topic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
}

/// What the assignor knows of one member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberSpec {
    /// Topics the member subscribes to.
    pub subscribed: BTreeSet<String>,
    /// The member's partitions in the previous target assignment.
    pub previous: BTreeSet<TopicPartition>,
}

/// Round robin (placeholder).
pub fn assign(
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<String, u32>,
) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let mut out: BTreeMap<String, BTreeSet<TopicPartition>> = members
        .keys()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for (topic, &count) in topics {
        let subs: Vec<&String> = members
            .iter()
            .filter(|(_, s)| s.subscribed.contains(topic))
            .map(|(id, _)| id)
            .collect();
        if subs.is_empty() {
            continue;
        }
        for partition in 0..count {
            let owner = subs[partition as usize % subs.len()];
            if let Some(set) = out.get_mut(owner) {
                set.insert(TopicPartition {
                    topic: topic.clone(),
                    partition,
                });
            }
        }
    }
    out
}

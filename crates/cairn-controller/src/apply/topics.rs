//! Topic commands: create, delete, alter configs, add partitions. Placement (in
//! `placement.rs`) happens here, at apply time, not in the proposer: see the crate docs for why.

use std::collections::{BTreeMap, BTreeSet};

use crate::action::Action;
use crate::error::{ControllerError, IdKind};
use crate::ids::{GroupId, NodeId, TopicId};
use crate::metadata::{ClusterMetadata, assignment};
use crate::placement::Placer;
use crate::reply::{Outcome, Reply};
use crate::topic::{MAX_PARTITIONS_PER_TOPIC, PartitionMeta, TopicMeta, check_topic_name};

impl ClusterMetadata {
    pub(super) fn create_topic(
        &mut self,
        name: String,
        partition_count: u32,
        replication_factor: u16,
        configs: BTreeMap<String, String>,
    ) -> Result<Reply, ControllerError> {
        check_topic_name(&name).map_err(|rule| ControllerError::InvalidTopicName {
            name: name.clone(),
            rule,
        })?;
        if let Some(existing) = self.topics.get(&name) {
            return Err(ControllerError::TopicExists {
                name,
                topic_id: existing.id,
            });
        }
        check_partition_count(partition_count)?;
        let placed =
            Placer::new(self).place(replication_factor, partition_count, self.nodes.len())?;
        let topic_id = self.next_topic_id;
        let next_topic_id = topic_id
            .0
            .checked_add(1)
            .ok_or(ControllerError::IdSpaceExhausted {
                kind: IdKind::Topic,
            })?;
        let first_group = self.next_group_id;
        let partitions = self.partitions_from(placed)?;

        let topic = TopicMeta {
            id: topic_id,
            replication_factor,
            configs,
            partitions,
        };
        let actions = host_actions(&name, &topic, 0);
        self.next_topic_id = TopicId(next_topic_id);
        self.topics.insert(name, topic);
        Ok(Reply {
            outcome: Outcome::TopicCreated {
                topic_id,
                first_group,
            },
            actions,
        })
    }

    pub(super) fn delete_topic(&mut self, name: &str) -> Result<Reply, ControllerError> {
        let topic = self
            .topics
            .remove(name)
            .ok_or_else(|| unknown_topic(name))?;
        let actions = (0u32..)
            .zip(&topic.partitions)
            .flat_map(|(partition, meta)| {
                meta.hosts()
                    .into_iter()
                    .map(move |node| Action::DropReplica {
                        node,
                        group: meta.group,
                        topic: name.to_string(),
                        topic_id: topic.id,
                        partition,
                    })
            })
            .collect();
        Ok(Reply {
            outcome: Outcome::TopicDeleted { topic_id: topic.id },
            actions,
        })
    }

    pub(super) fn alter_topic_configs(
        &mut self,
        name: &str,
        set: BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<Reply, ControllerError> {
        if let Some(key) = delete.iter().find(|key| set.contains_key(*key)) {
            return Err(ControllerError::ConfigKeySetAndDeleted { key: key.clone() });
        }
        let topic = self
            .topics
            .get_mut(name)
            .ok_or_else(|| unknown_topic(name))?;
        let mut configs = topic.configs.clone();
        for key in delete {
            configs.remove(key);
        }
        configs.extend(set);
        let changed = configs != topic.configs;
        let topic_id = topic.id;
        let mut actions = Vec::new();
        if changed {
            topic.configs = configs;
            let hosts: BTreeSet<NodeId> = topic
                .partitions
                .iter()
                .flat_map(PartitionMeta::hosts)
                .collect();
            actions = hosts
                .into_iter()
                .map(|node| Action::ConfigChanged {
                    node,
                    topic: name.to_string(),
                    topic_id,
                    configs: topic.configs.clone(),
                })
                .collect();
        }
        Ok(Reply {
            outcome: Outcome::ConfigsAltered { topic_id, changed },
            actions,
        })
    }

    pub(super) fn add_partitions(
        &mut self,
        name: &str,
        partition_count: u32,
    ) -> Result<Reply, ControllerError> {
        let topic = self.topics.get(name).ok_or_else(|| unknown_topic(name))?;
        check_partition_count(partition_count)?;
        // The count is bounded by MAX_PARTITIONS_PER_TOPIC, so it fits a u32.
        let current = u32::try_from(topic.partitions.len()).unwrap_or(u32::MAX);
        if partition_count <= current {
            return Err(ControllerError::PartitionCountNotIncreased {
                name: name.to_string(),
                current,
                requested: partition_count,
            });
        }
        let placed = Placer::new(self).place(
            topic.replication_factor,
            partition_count - current,
            self.nodes.len(),
        )?;
        let added = self.partitions_from(placed)?;

        let topic = self
            .topics
            .get_mut(name)
            .ok_or_else(|| unknown_topic(name))?;
        topic.partitions.extend(added);
        let topic_id = topic.id;
        let actions = host_actions(name, topic, current);
        Ok(Reply {
            outcome: Outcome::PartitionsAdded {
                topic_id,
                partition_count,
            },
            actions,
        })
    }

    /// Gives each placed replica set the next group id, and moves the counter past them. The
    /// only step of a create that can fail comes first, so on error nothing moved.
    fn partitions_from(
        &mut self,
        placed: Vec<Vec<NodeId>>,
    ) -> Result<Vec<PartitionMeta>, ControllerError> {
        let first = self.next_group_id.0;
        let count = u64::try_from(placed.len()).map_err(|_| ControllerError::IdSpaceExhausted {
            kind: IdKind::Group,
        })?;
        let next = first
            .checked_add(count)
            .ok_or(ControllerError::IdSpaceExhausted {
                kind: IdKind::Group,
            })?;
        self.next_group_id = GroupId(next);
        Ok((first..)
            .zip(placed)
            .map(|(group, replicas)| PartitionMeta::placed(GroupId(group), replicas))
            .collect())
    }
}

fn check_partition_count(partition_count: u32) -> Result<(), ControllerError> {
    if (1..=MAX_PARTITIONS_PER_TOPIC).contains(&partition_count) {
        Ok(())
    } else {
        Err(ControllerError::InvalidPartitionCount {
            requested: partition_count,
            max: MAX_PARTITIONS_PER_TOPIC,
        })
    }
}

/// `HostReplica` for every replica of the topic's partitions from `first_partition` on.
fn host_actions(name: &str, topic: &TopicMeta, first_partition: u32) -> Vec<Action> {
    (0u32..)
        .zip(&topic.partitions)
        .skip_while(|(partition, _)| *partition < first_partition)
        .flat_map(|(partition, meta)| {
            let assignment = assignment(name, topic, partition, meta);
            meta.replicas.iter().map(move |node| Action::HostReplica {
                node: *node,
                assignment: assignment.clone(),
            })
        })
        .collect()
}

fn unknown_topic(name: &str) -> ControllerError {
    ControllerError::UnknownTopic {
        name: name.to_string(),
    }
}

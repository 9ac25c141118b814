//! Reassignment: a plan of new replica sets is recorded as each partition's `target`; the
//! partition's group leader moves the group's membership there (new members join as learners
//! and catch up first) and reports the move done with `CompleteReassignment`, which makes the
//! target the replica set and lets the nodes left out drop their copies.
//!
//! The metadata never claims a membership the group has not committed: until the completion
//! commits, `replicas` is still the old set (the one the group's votes and commits are counted
//! against, or its joint successor), and hosts are `replicas` plus the target's new members.

use std::collections::BTreeSet;

use crate::action::Action;
use crate::command::PartitionMove;
use crate::error::ControllerError;
use crate::ids::{GroupId, NodeId};
use crate::metadata::{ClusterMetadata, assignment};
use crate::node::NodeState;
use crate::reply::{Outcome, Reply};

impl ClusterMetadata {
    pub(super) fn reassign_partitions(
        &mut self,
        moves: Vec<PartitionMove>,
    ) -> Result<Reply, ControllerError> {
        if moves.is_empty() {
            return Err(ControllerError::EmptyPlan);
        }
        let mut seen = BTreeSet::new();
        for plan in &moves {
            self.check_move(plan)?;
            if !seen.insert((plan.topic.as_str(), plan.partition)) {
                return Err(ControllerError::DuplicateMove {
                    topic: plan.topic.clone(),
                    partition: plan.partition,
                });
            }
        }

        let (mut moving, mut reordered) = (0, 0);
        let mut actions = Vec::new();
        for plan in moves {
            let Some(topic_meta) = self.topics.get_mut(&plan.topic) else {
                continue;
            };
            let Some(meta) = topic_meta.partitions.get_mut(plan.partition as usize) else {
                continue;
            };
            let now: BTreeSet<NodeId> = meta.replicas.iter().copied().collect();
            let wanted: BTreeSet<NodeId> = plan.replicas.iter().copied().collect();
            if now == wanted {
                // Same members in another order: only the preferred leader changes, which the
                // group's membership does not record.
                if meta.replicas != plan.replicas {
                    meta.replicas = plan.replicas;
                    reordered += 1;
                    if let Some(meta) = topic_meta.partitions.get(plan.partition as usize) {
                        actions.extend(host_all(&plan.topic, topic_meta, plan.partition, meta));
                    }
                }
                continue;
            }
            meta.target = Some(plan.replicas);
            moving += 1;
            let Some(meta) = topic_meta.partitions.get(plan.partition as usize) else {
                continue;
            };
            let assignment = assignment(&plan.topic, topic_meta, plan.partition, meta);
            actions.extend(wanted.difference(&now).map(|node| Action::HostReplica {
                node: *node,
                assignment: assignment.clone(),
            }));
        }
        Ok(Reply {
            outcome: Outcome::ReassignmentStarted { moving, reordered },
            actions,
        })
    }

    /// Everything that can refuse one move, reading only.
    fn check_move(&self, plan: &PartitionMove) -> Result<(), ControllerError> {
        let topic = self
            .topics
            .get(&plan.topic)
            .ok_or_else(|| ControllerError::UnknownTopic {
                name: plan.topic.clone(),
            })?;
        let partition_count = u32::try_from(topic.partitions.len()).unwrap_or(u32::MAX);
        let meta = topic
            .partitions
            .get(plan.partition as usize)
            .ok_or_else(|| ControllerError::UnknownPartition {
                topic: plan.topic.clone(),
                partition: plan.partition,
                partition_count,
            })?;
        if let Some(target) = &meta.target {
            return Err(ControllerError::ReassignmentInProgress {
                topic: plan.topic.clone(),
                partition: plan.partition,
                target: target.clone(),
            });
        }
        if plan.replicas.len() != usize::from(topic.replication_factor) {
            return Err(ControllerError::ReplicaCountMismatch {
                topic: plan.topic.clone(),
                partition: plan.partition,
                requested: plan.replicas.len(),
                replication_factor: topic.replication_factor,
            });
        }
        let mut distinct = BTreeSet::new();
        for node in &plan.replicas {
            if !distinct.insert(*node) {
                return Err(ControllerError::DuplicateReplica {
                    topic: plan.topic.clone(),
                    partition: plan.partition,
                    node: *node,
                });
            }
            let node_meta = self
                .nodes
                .get(node)
                .ok_or(ControllerError::UnknownNode { node: *node })?;
            // A fenced node may keep a copy it has; a new copy goes only to an alive node, and
            // none to a leaving node, whose removal waits for its copies to go.
            let keeps = meta.replicas.contains(node);
            let refused = match node_meta.state {
                NodeState::Alive => false,
                NodeState::Fenced => !keeps,
                NodeState::Leaving => true,
            };
            if refused {
                return Err(ControllerError::NodeNotAlive {
                    node: *node,
                    state: state_words(node_meta.state).to_string(),
                });
            }
        }
        Ok(())
    }

    pub(super) fn complete_reassignment(
        &mut self,
        group: GroupId,
        replicas: Vec<NodeId>,
    ) -> Result<Reply, ControllerError> {
        let found = self
            .partition_of_group(group)
            .ok_or(ControllerError::UnknownGroup { group })?;
        let (topic, partition) = (found.topic.to_string(), found.partition);
        let reported: BTreeSet<NodeId> = replicas.iter().copied().collect();
        let matches = found
            .meta
            .target
            .as_ref()
            .is_some_and(|t| t.iter().copied().collect::<BTreeSet<_>>() == reported);
        if !matches || reported.len() != replicas.len() {
            return Err(ControllerError::NoSuchReassignment { group, replicas });
        }

        let Some(topic_meta) = self.topics.get_mut(&topic) else {
            return Err(ControllerError::UnknownGroup { group });
        };
        let topic_id = topic_meta.id;
        let Some(meta) = topic_meta.partitions.get_mut(partition as usize) else {
            return Err(ControllerError::UnknownGroup { group });
        };
        let Some(target) = meta.target.take() else {
            return Err(ControllerError::NoSuchReassignment { group, replicas });
        };
        let dropped: Vec<NodeId> = meta
            .replicas
            .iter()
            .copied()
            .filter(|n| !target.contains(n))
            .collect();
        meta.isr.retain(|n| target.contains(n));
        if meta.leader.is_some_and(|l| !target.contains(&l)) {
            meta.leader = None;
        }
        meta.replicas = target;
        let mut actions: Vec<Action> = dropped
            .into_iter()
            .map(|node| Action::DropReplica {
                node,
                group,
                topic: topic.clone(),
                topic_id,
                partition,
            })
            .collect();
        if let Some(meta) = topic_meta.partitions.get(partition as usize) {
            actions.extend(host_all(&topic, topic_meta, partition, meta));
        }
        Ok(Reply {
            outcome: Outcome::ReassignmentCompleted { group },
            actions,
        })
    }
}

/// `HostReplica` for every host of a partition whose assignment (its members) changed.
fn host_all(
    topic: &str,
    topic_meta: &crate::topic::TopicMeta,
    partition: u32,
    meta: &crate::topic::PartitionMeta,
) -> Vec<Action> {
    let assignment = assignment(topic, topic_meta, partition, meta);
    meta.hosts()
        .into_iter()
        .map(|node| Action::HostReplica {
            node,
            assignment: assignment.clone(),
        })
        .collect()
}

/// A node state as the refusals name it.
pub(crate) fn state_words(state: NodeState) -> &'static str {
    match state {
        NodeState::Alive => "alive",
        NodeState::Fenced => "fenced",
        NodeState::Leaving => "being removed",
    }
}

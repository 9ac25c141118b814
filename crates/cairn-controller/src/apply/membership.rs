//! Membership commands: add a node to a running cluster, remove one (its replicas move first),
//! and forget a removed node once it hosts nothing.
//!
//! Removal is a reassignment of every partition the node hosts, each copy replaced by the
//! least-loaded alive node that does not hold one, in the same position of the replica list (so
//! a preferred leadership moves to the newcomer rather than shifting the others). It is refused
//! whole when one partition has no such node: dropping the copy instead would leave the
//! partition below its replication factor, which is how a majority is lost to the next failure.

use crate::action::Action;
use crate::error::ControllerError;
use crate::ids::NodeId;
use crate::metadata::{ClusterMetadata, assignment};
use crate::node::{NodeMeta, NodeState};
use crate::placement::Placer;
use crate::reply::{Outcome, Reply};

impl ClusterMetadata {
    pub(super) fn add_node(
        &mut self,
        node: NodeId,
        addr: String,
        at_ms: i64,
    ) -> Result<Reply, ControllerError> {
        if addr.is_empty() {
            return Err(ControllerError::EmptyNodeAddress { node });
        }
        if let Some(held) = self.nodes.get(&node) {
            return Err(ControllerError::NodeIdInUse {
                node,
                addr: held.addr.clone(),
            });
        }
        if let Some((first, _)) = self.nodes.iter().find(|(_, meta)| meta.addr == addr) {
            return Err(ControllerError::DuplicateNodeAddress {
                addr,
                first: *first,
                second: node,
            });
        }

        self.nodes.insert(
            node,
            NodeMeta {
                addr: addr.clone(),
                state: NodeState::Alive,
                registered_at_ms: at_ms,
                state_changed_at_ms: at_ms,
                client_addr: None,
            },
        );
        Ok(Reply {
            outcome: Outcome::NodeAdded { node },
            actions: vec![Action::PeerAddressChanged { peer: node, addr }],
        })
    }

    pub(super) fn remove_node(
        &mut self,
        node: NodeId,
        at_ms: i64,
    ) -> Result<Reply, ControllerError> {
        let meta = self
            .nodes
            .get(&node)
            .ok_or(ControllerError::UnknownNode { node })?;
        if meta.state == NodeState::Leaving {
            return Err(ControllerError::NodeLeaving { node });
        }
        if self
            .nodes
            .iter()
            .all(|(id, meta)| *id == node || meta.state == NodeState::Leaving)
        {
            return Err(ControllerError::LastNode { node });
        }
        let mut placer = Placer::new(self);
        let mut moves = Vec::new();
        for (topic, topic_meta) in &self.topics {
            for (partition, meta) in (0u32..).zip(&topic_meta.partitions) {
                if !meta.is_hosted_on(node) {
                    continue;
                }
                if let Some(target) = &meta.target {
                    return Err(ControllerError::ReassignmentInProgress {
                        topic: topic.clone(),
                        partition,
                        target: target.clone(),
                    });
                }
                let mut exclude = meta.replicas.clone();
                exclude.push(node);
                let Some(replacement) = placer.replacement(&exclude) else {
                    return Err(ControllerError::NoReplacement {
                        node,
                        topic: topic.clone(),
                        partition,
                        remaining: meta.replicas.len().saturating_sub(1),
                        replication_factor: topic_meta.replication_factor,
                    });
                };
                let target: Vec<NodeId> = meta
                    .replicas
                    .iter()
                    .map(|n| if *n == node { replacement } else { *n })
                    .collect();
                moves.push((topic.clone(), partition, replacement, target));
            }
        }

        let moving = moves.len();
        let mut actions = Vec::with_capacity(moving);
        for (topic, partition, replacement, target) in moves {
            let Some(topic_meta) = self.topics.get_mut(&topic) else {
                continue;
            };
            if let Some(meta) = topic_meta.partitions.get_mut(partition as usize) {
                meta.target = Some(target);
            }
            if let Some(meta) = topic_meta.partitions.get(partition as usize) {
                actions.push(Action::HostReplica {
                    node: replacement,
                    assignment: assignment(&topic, topic_meta, partition, meta),
                });
            }
        }
        if let Some(meta) = self.nodes.get_mut(&node) {
            meta.state = NodeState::Leaving;
            meta.state_changed_at_ms = at_ms;
        }
        Ok(Reply {
            outcome: Outcome::NodeRemoving { node, moving },
            actions,
        })
    }

    pub(super) fn forget_node(&mut self, node: NodeId) -> Result<Reply, ControllerError> {
        let meta = self
            .nodes
            .get(&node)
            .ok_or(ControllerError::UnknownNode { node })?;
        if meta.state != NodeState::Leaving {
            return Err(ControllerError::NodeNotRemovable {
                node,
                reason: "it is not being removed (run remove-node first)".to_string(),
            });
        }
        let hosted = self
            .topics
            .values()
            .flat_map(|t| &t.partitions)
            .filter(|p| p.is_hosted_on(node))
            .count();
        if hosted > 0 {
            return Err(ControllerError::NodeNotRemovable {
                node,
                reason: format!("it still hosts {hosted} replicas"),
            });
        }

        self.nodes.remove(&node);
        // Its ids stay given: `next_producer_id` never goes back, so none is handed out twice.
        self.producer_id_blocks.remove(&node);
        Ok(Reply::bare(Outcome::NodeForgotten { node }))
    }
}

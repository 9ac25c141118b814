//! This node's copies of one replicated topic's partitions, kept in line with the metadata's
//! replica sets as they change: a reassignment (or a node's removal) gives this node a copy to
//! open, which joins its group as a learner, or takes one away once the group's membership no
//! longer has it, which is then closed and deleted.
//!
//! A copy that joins does not initialize its group (that would make it a one-member group of
//! its own); it waits for the group's leader to add it and send it the log. A copy of a group
//! being created initializes it with the replica set, as every first member does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_controller::{ClusterMetadata, PartitionMeta, TopicMeta};
use cairn_log::LogConfig;
use cairn_raft::{GroupId, NodeId, PeerNode};

use super::runtime::{ClusterRuntime, REPLICAS_DIR};
use crate::broker::{Broker, Topic, blocking};
use crate::error::BrokerError;
use crate::partition::{LeaderDirectory, Partition};

/// Where this node keeps its copy of a partition (one directory per group, so a topic deleted
/// and created again never meets its old files).
pub(super) fn replica_dir(data_dir: &Path, topic: &str, index: u32, group: GroupId) -> PathBuf {
    data_dir
        .join(REPLICAS_DIR)
        .join(format!("{topic}-{index}.g{}", group.0))
}

/// Raft group members for `nodes`, each with its peer address from `metadata` (empty for a
/// node it does not list: the transport's address book is what calls use).
pub(super) fn group_members(
    metadata: &ClusterMetadata,
    nodes: &[NodeId],
) -> BTreeMap<NodeId, PeerNode> {
    nodes
        .iter()
        .map(|node| {
            let addr = metadata
                .node(*node)
                .map(|n| n.addr.clone())
                .unwrap_or_default();
            (*node, PeerNode { addr })
        })
        .collect()
}

impl Broker {
    /// Opens what this node holds of partition `index` of `topic`: its copy when the metadata
    /// has it host one, else a pointer to the partition's leader.
    ///
    /// # Errors
    /// The copy's open errors.
    pub(super) async fn open_partition_here(
        &self,
        runtime: &ClusterRuntime,
        metadata: &ClusterMetadata,
        topic: &Arc<str>,
        index: u32,
        partition: &PartitionMeta,
        log_config: LogConfig,
    ) -> Result<Partition, BrokerError> {
        let me: NodeId = runtime.spec.node_id();
        let group = GroupId(partition.group.0);
        let dir = replica_dir(&self.cfg.data_dir, topic, index, group);
        if !partition.is_hosted_on(me) {
            let directory: Arc<dyn LeaderDirectory> = runtime.directory.clone();
            return Ok(Partition::elsewhere(
                Arc::clone(topic),
                index,
                dir,
                group,
                directory,
            ));
        }
        // A member of the replica set initializes the group on its first start; a copy added
        // by a reassignment joins as a learner, brought in by the leader.
        let members: BTreeMap<NodeId, PeerNode> = if partition.replicas.contains(&me) {
            group_members(metadata, &partition.replicas)
        } else {
            BTreeMap::new()
        };
        let create = dir.clone();
        blocking(move || {
            std::fs::create_dir_all(&create)
                .map_err(|e| BrokerError::io("create replica directory", &create, e))
        })
        .await?;
        Partition::start_replicated(
            Arc::clone(topic),
            index,
            dir,
            log_config,
            Arc::clone(&self.clock),
            group,
            members,
            partition.replicas.first() == Some(&me),
            &runtime.ctx,
        )
        .await
    }

    /// Opens copies this node now hosts and closes (and deletes) copies it no longer does, for
    /// one topic it already holds.
    ///
    /// # Errors
    /// A copy's open errors; the other partitions are still brought in line.
    pub(super) async fn reconcile_partitions(
        &self,
        runtime: &ClusterRuntime,
        metadata: &ClusterMetadata,
        topic: &Arc<Topic>,
        meta: &TopicMeta,
    ) -> Result<(), BrokerError> {
        let me = runtime.spec.node_id();
        let held = topic.partitions_now();
        let log_config = topic
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .to_log_config();
        let name: Arc<str> = Arc::from(topic.name.as_str());
        let mut first_error = None;
        for (index, (partition, wanted)) in held.iter().zip(&meta.partitions).enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let hosted = wanted.is_hosted_on(me);
            if hosted == partition.is_held_here() {
                continue;
            }
            if !hosted {
                release_copy(partition).await;
            }
            let replacement = self
                .open_partition_here(runtime, metadata, &name, index, wanted, log_config.clone())
                .await;
            match replacement {
                Ok(replacement) => {
                    tracing::info!(
                        topic = %name,
                        partition = index,
                        hosted,
                        "copy {}",
                        if hosted { "opened: joining its group" } else { "released: moved to other nodes" }
                    );
                    let mut partitions =
                        topic.partitions.write().unwrap_or_else(|e| e.into_inner());
                    if let Some(slot) = partitions.get_mut(index as usize) {
                        *slot = Arc::new(replacement);
                    }
                }
                Err(e) => {
                    tracing::warn!(topic = %name, partition = index, error = %e, "copy not opened; retrying at the next metadata change");
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Closes a copy this node no longer hosts and deletes its files: the group's membership
/// without this node is committed (the metadata records a reassignment's end only after), so
/// the copy counts for nothing any more.
pub(super) async fn release_copy(partition: &Partition) {
    if let Err(err) = partition.close().await {
        tracing::warn!(partition = partition.index(), %err, "closing a released copy");
    }
    let dir = partition.dir().to_path_buf();
    let removed = blocking(move || Ok(cairn_log::remove_log_dir(&dir)?)).await;
    if let Err(err) = removed {
        tracing::warn!(partition = partition.index(), %err, "removing a released copy");
    }
}

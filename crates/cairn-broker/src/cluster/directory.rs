//! Leadership of partitions from the cluster metadata: what a node answers for partitions
//! other nodes hold, and the node addresses it hands to clients.

use std::sync::Arc;

use cairn_codec::LeaderEpoch;
use cairn_controller::{ClusterMetadata, GroupId as MetaGroupId};
use tokio::sync::watch;

use crate::partition::{LeaderDirectory, Leadership};

/// The latest committed metadata, as a [`LeaderDirectory`].
#[derive(Debug, Clone)]
pub struct MetadataDirectory {
    metadata: watch::Receiver<Arc<ClusterMetadata>>,
}

fn wire(node: u64) -> i32 {
    i32::try_from(node).unwrap_or(i32::MAX)
}

impl MetadataDirectory {
    /// A directory over the controller's published metadata.
    pub fn new(metadata: watch::Receiver<Arc<ClusterMetadata>>) -> MetadataDirectory {
        MetadataDirectory { metadata }
    }

    /// The metadata now.
    pub fn current(&self) -> Arc<ClusterMetadata> {
        Arc::clone(&self.metadata.borrow())
    }
}

impl LeaderDirectory for MetadataDirectory {
    fn leadership(&self, group: cairn_raft::GroupId) -> Option<Leadership> {
        let metadata = self.current();
        let partition = metadata.partition_of_group(MetaGroupId(group.0))?;
        let meta = partition.meta;
        let mut replicas: Vec<i32> = meta.replicas.iter().map(|n| wire(*n)).collect();
        let leader = meta.leader.map(wire);
        if let Some(l) = leader
            && let Some(pos) = replicas.iter().position(|r| *r == l)
        {
            replicas.swap(0, pos);
        }
        Some(Leadership {
            leader,
            leader_epoch: LeaderEpoch(i32::try_from(meta.leader_epoch).unwrap_or(i32::MAX)),
            replicas,
            in_sync_replicas: meta.isr.iter().map(|n| wire(*n)).collect(),
        })
    }

    fn address(&self, node: i32) -> Option<String> {
        let node = u64::try_from(node).ok()?;
        self.current()
            .node(node)
            .map(|n| n.client_address().to_string())
    }
}

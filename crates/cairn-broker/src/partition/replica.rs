//! [`Replica`]: which implementation holds a serving partition's log on this node. Today there
//! is one, [`LocalReplica`] (a single copy); a Raft-replicated one is meant to join it as a
//! second variant, answering the same calls, so nothing outside `partition/` changes.
//!
//! Why an enum and not a trait object: the calls are `async` and on the produce and fetch hot
//! paths. A `dyn` trait would box each call's future (an allocation per request) or need
//! `async_trait`, and the set of implementations is closed and known to the broker. An enum
//! dispatches statically, and a new variant makes the compiler list every call that must
//! answer for it. If a third implementation (Kafka-style ISR fetching) ever comes, it is a
//! third variant.

use cairn_codec::Offset;
use cairn_codec::batch::Batch;
use cairn_log::{DamagedRange, LogConfig, ReadResult};

use super::PartitionOffsets;
use super::leadership::Leadership;
use super::local::LocalReplica;
use super::replicated::ReplicatedReplica;
use crate::error::BrokerError;
use crate::node_identity::NodeIdentity;
use crate::produce::AckLevel;

/// The implementation holding a serving partition.
#[derive(Debug)]
pub(super) enum Replica {
    /// The only copy, on this node.
    Local(LocalReplica),
    /// One copy of a partition replicated by its own Raft group.
    Replicated(ReplicatedReplica),
}

impl Replica {
    /// See [`super::Partition::append`].
    pub(super) async fn append(
        &self,
        batch: Batch,
        acks: AckLevel,
    ) -> Result<Option<Offset>, BrokerError> {
        match self {
            Replica::Local(local) => local.append(batch, acks).await,
            Replica::Replicated(replicated) => replicated.append(batch, acks).await,
        }
    }

    /// See [`super::Partition::read`].
    pub(super) fn read(&self, from: i64, max_bytes: i64) -> Result<ReadResult, BrokerError> {
        match self {
            Replica::Local(local) => local.read(from, max_bytes),
            Replica::Replicated(replicated) => replicated.read(from, max_bytes),
        }
    }

    /// See [`super::Partition::wait_for_high_watermark`].
    pub(super) async fn wait_for_high_watermark(
        &self,
        offset: Offset,
        deadline: tokio::time::Instant,
    ) -> Option<Offset> {
        match self {
            Replica::Local(local) => local.wait_for_high_watermark(offset, deadline).await,
            Replica::Replicated(replicated) => {
                replicated.wait_for_high_watermark(offset, deadline).await
            }
        }
    }

    /// See [`super::Partition::offsets`].
    pub(super) fn offsets(&self) -> PartitionOffsets {
        match self {
            Replica::Local(local) => local.offsets(),
            Replica::Replicated(replicated) => replicated.offsets(),
        }
    }

    /// See [`super::Partition::log_start_offset`].
    pub(super) fn log_start_offset(&self) -> Offset {
        match self {
            Replica::Local(local) => local.log_start_offset(),
            Replica::Replicated(replicated) => replicated.log_start_offset(),
        }
    }

    /// See [`super::Partition::offset_for_timestamp`].
    pub(super) fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<Offset>, BrokerError> {
        match self {
            Replica::Local(local) => local.offset_for_timestamp(timestamp_ms),
            Replica::Replicated(replicated) => replicated.offset_for_timestamp(timestamp_ms),
        }
    }

    /// See [`super::Partition::leadership`].
    pub(super) fn leadership(&self, this_node: &NodeIdentity) -> Leadership {
        match self {
            Replica::Local(local) => local.leadership(this_node),
            Replica::Replicated(replicated) => replicated.leadership(this_node),
        }
    }

    /// See [`super::Partition::size_bytes`].
    pub(super) fn size_bytes(&self) -> u64 {
        match self {
            Replica::Local(local) => local.size_bytes(),
            Replica::Replicated(replicated) => replicated.size_bytes(),
        }
    }

    /// See [`super::Partition::scan_batches`].
    pub(super) fn scan_batches(
        &self,
        from: i64,
        visit: impl FnMut(&Batch) -> std::ops::ControlFlow<()>,
    ) -> Result<Vec<DamagedRange>, BrokerError> {
        match self {
            Replica::Local(local) => local.scan_batches(from, visit),
            Replica::Replicated(replicated) => replicated.scan_batches(from, visit),
        }
    }

    /// Why this copy stopped taking appends (a failed write or fsync), if it has.
    pub(super) fn poisoned(&self) -> Option<String> {
        match self {
            Replica::Local(local) => local.poisoned(),
            Replica::Replicated(replicated) => replicated.poisoned(),
        }
    }

    /// See [`super::Partition::set_config`].
    pub(super) async fn set_config(&self, cfg: LogConfig) -> Result<(), BrokerError> {
        match self {
            Replica::Local(local) => local.set_config(cfg).await,
            Replica::Replicated(replicated) => replicated.set_config(cfg).await,
        }
    }

    /// See [`super::Partition::close`].
    pub(super) async fn close(&self) -> Result<(), BrokerError> {
        match self {
            Replica::Local(local) => local.close().await,
            Replica::Replicated(replicated) => replicated.close().await,
        }
    }

    /// See [`super::Partition::close_blocking`].
    pub(super) fn close_blocking(&self) -> Result<(), BrokerError> {
        match self {
            Replica::Local(local) => local.close_blocking(),
            Replica::Replicated(replicated) => replicated.close_blocking(),
        }
    }
}

//! [`Replica`]: which implementation holds a serving partition's log on this node. Today there
//! are two, [`LocalReplica`] (a single copy) and [`ReplicatedReplica`] (a Raft group), answering
//! the same calls, so nothing outside `partition/` knows which. Answers that are the log's alone
//! (offsets, sizes, scans, config) are written once here over the implementation's reader.
//!
//! Why an enum and not a trait object: the calls are `async` and on the produce and fetch hot
//! paths. A `dyn` trait would box each call's future (an allocation per request) or need
//! `async_trait`, and the set of implementations is closed and known to the broker. An enum
//! dispatches statically, and a new variant makes the compiler list every call that must
//! answer for it. If a third implementation (Kafka-style ISR fetching) ever comes, it is a
//! third variant.

use cairn_codec::Offset;
use cairn_codec::batch::Batch;
use cairn_log::{DamagedRange, LogConfig, LogReader, LogWriter, ReadResult};

use super::leadership::Leadership;
use super::local::LocalReplica;
use super::replicated::ReplicatedReplica;
use super::{PartitionOffsets, wait_for_high_watermark};
use crate::error::BrokerError;
use crate::node_identity::NodeIdentity;
use crate::produce::AckLevel;

/// The implementation holding a serving partition.
#[derive(Debug)]
pub(super) enum Replica {
    /// The only copy, on this node.
    Local(LocalReplica),
    /// One copy of a partition replicated by its own Raft group.
    Replicated(Box<ReplicatedReplica>),
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

    /// See [`super::Partition::lead`].
    pub(super) async fn lead(&self) -> Result<u64, BrokerError> {
        match self {
            Replica::Local(_) => Ok(0),
            Replica::Replicated(replicated) => replicated.lead().await,
        }
    }

    /// See [`super::Partition::read`].
    pub(super) fn read(&self, from: i64, max_bytes: i64) -> Result<ReadResult, BrokerError> {
        match self {
            Replica::Local(local) => local.read(from, max_bytes),
            Replica::Replicated(replicated) => replicated.read(from, max_bytes),
        }
    }

    /// The log both implementations read through: every read-side answer below that does not
    /// depend on who leads is the log's, so it is written once here.
    fn reader(&self) -> &LogReader {
        match self {
            Replica::Local(local) => local.reader(),
            Replica::Replicated(replicated) => replicated.reader(),
        }
    }

    /// The log's writer, for changes that are the log's alone (its config).
    fn writer(&self) -> &LogWriter {
        match self {
            Replica::Local(local) => local.writer(),
            Replica::Replicated(replicated) => replicated.writer(),
        }
    }

    /// See [`super::Partition::wait_for_high_watermark`].
    pub(super) async fn wait_for_high_watermark(
        &self,
        offset: Offset,
        deadline: tokio::time::Instant,
    ) -> Option<Offset> {
        wait_for_high_watermark(self.reader(), offset, deadline).await
    }

    /// See [`super::Partition::offsets`]. A replicated copy's high watermark trails its
    /// leader's by the time it takes to hear of a commit.
    pub(super) fn offsets(&self) -> PartitionOffsets {
        let reader = self.reader();
        // Read in this order: the start and the high watermark only grow, and the log end
        // never drops below the high watermark (truncation never cuts what is visible), so the
        // three stay ordered although appends go on between the reads.
        let offsets = PartitionOffsets {
            log_start_offset: reader.log_start_offset(),
            high_watermark: reader.high_watermark(),
            log_end_offset: reader.log_end_offset(),
        };
        debug_assert!(
            offsets.log_start_offset <= offsets.high_watermark,
            "log start {} beyond the high watermark {}",
            offsets.log_start_offset,
            offsets.high_watermark
        );
        debug_assert!(
            offsets.high_watermark <= offsets.log_end_offset,
            "high watermark {} beyond the log end {}",
            offsets.high_watermark,
            offsets.log_end_offset
        );
        offsets
    }

    /// See [`super::Partition::log_start_offset`].
    pub(super) fn log_start_offset(&self) -> Offset {
        self.reader().log_start_offset()
    }

    /// See [`super::Partition::offset_for_timestamp`].
    pub(super) fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<Offset>, BrokerError> {
        Ok(self.reader().offset_for_timestamp(timestamp_ms)?)
    }

    /// See [`super::Partition::leadership`].
    pub(super) fn leadership(&self, this_node: &NodeIdentity) -> Leadership {
        match self {
            Replica::Local(local) => local.leadership(this_node),
            Replica::Replicated(replicated) => replicated.leadership(),
        }
    }

    /// See [`super::Partition::producer_ids`].
    pub(super) fn producer_ids(&self) -> usize {
        match self {
            Replica::Local(local) => local.producer_ids(),
            Replica::Replicated(replicated) => replicated.producer_ids(),
        }
    }

    /// See [`super::Partition::size_bytes`].
    pub(super) fn size_bytes(&self) -> u64 {
        self.reader().size_bytes()
    }

    /// See [`super::Partition::scan_batches`].
    pub(super) fn scan_batches(
        &self,
        from: i64,
        visit: impl FnMut(&Batch) -> std::ops::ControlFlow<()>,
    ) -> Result<Vec<DamagedRange>, BrokerError> {
        Ok(self.reader().scan_batches(from, visit)?)
    }

    /// Why this copy stopped taking appends (a failed write or fsync, or, for a Raft group,
    /// any storage failure that stopped its openraft core, such as a full disk), if it has.
    pub(super) fn poisoned(&self) -> Option<String> {
        match self {
            Replica::Local(local) => local.reader().poisoned(),
            Replica::Replicated(replicated) => replicated
                .reader()
                .poisoned()
                .or_else(|| replicated.stopped()),
        }
    }

    /// See [`super::Partition::set_config`].
    pub(super) async fn set_config(&self, cfg: LogConfig) -> Result<(), BrokerError> {
        let cfg = match self {
            Replica::Replicated(replicated) => {
                replicated.set_max_message_bytes(cfg.max_message_bytes);
                cairn_raft::without_compaction(cfg)
            }
            Replica::Local(_) => cfg,
        };
        Ok(self
            .writer()
            .with_log(move |log, _| log.set_config(cfg))
            .await?)
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

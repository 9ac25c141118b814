//! [`LocalReplica`]: a partition held by this node alone (replication factor 1), which is all
//! a single-node broker has. Its log is driven by a group-committing [`LogWriter`] whose
//! admission filter ([`ProducerFilter`]) enforces idempotent producers' sequences, and a
//! [`Sequencer`] puts each producer's batches into the writer's queue in sequence order.
//!
//! What "committed" means here: a batch is committed once this one copy meets the topic's flush
//! policy, so the high watermark the writer publishes after each group commit is the commit
//! point, and this node is always the leader, at epoch 0.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cairn_codec::batch::Batch;
use cairn_codec::{LeaderEpoch, Offset};
use cairn_log::{AppendInfo, Clock, Log, LogConfig, LogError, LogReader, LogWriter, ReadResult};
use tokio::sync::oneshot;

use super::health::Damage;
use super::leadership::Leadership;
use crate::error::BrokerError;
use crate::node_identity::NodeIdentity;
use crate::produce::AckLevel;
use crate::producer_filter::ProducerFilter;
use crate::sequencer::Sequencer;

/// The leader epoch a single node stamps on its batches and reports (a replicated partition
/// uses the Raft term).
const SINGLE_NODE_EPOCH: LeaderEpoch = LeaderEpoch(0);

/// The one term of a single node's partition, for its sequencer's lanes.
const SINGLE_NODE_TERM: u64 = 0;

/// A partition's only copy, on this node.
#[derive(Debug)]
pub(crate) struct LocalReplica {
    writer: LogWriter,
    /// Puts idempotent producers' batches into the writer's queue in sequence order.
    sequencer: Sequencer,
    /// Appends that have entered [`LocalReplica::append`] and not yet left it. One alone may
    /// be written on its caller's thread when the writer is idle
    /// ([`LogWriter::queue_append_or_write`]); with others on their way, it queues, so that the
    /// writer gathers them into one group commit.
    appends_in_progress: AtomicUsize,
    /// Idempotent producers the writer's filter remembers (see `ProducerFilter::remembered`).
    producer_ids: Arc<AtomicUsize>,
}

/// Counts one append in [`LocalReplica::appends_in_progress`] for as long as it lives, however
/// the append ends (answered, failed, or its caller gone).
struct InProgress<'a>(&'a AtomicUsize);

impl<'a> InProgress<'a> {
    fn enter(count: &'a AtomicUsize) -> InProgress<'a> {
        count.fetch_add(1, Ordering::AcqRel);
        InProgress(count)
    }

    /// Whether this is the only append in progress.
    fn alone(&self) -> bool {
        self.0.load(Ordering::Acquire) == 1
    }
}

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The result of one queued append, as the writer answers it.
type PendingAppend = oneshot::Receiver<Result<Vec<AppendInfo>, LogError>>;

impl LocalReplica {
    /// Opens (creating or recovering) the log in `dir`, restores the idempotent producers'
    /// state from it, and starts its writer. Returns the first damaged batch met on the way,
    /// if any. Blocking: call from a blocking thread.
    ///
    /// # Errors
    /// The log's open error, or the writer thread's start error.
    pub(super) fn open(
        topic: &str,
        index: u32,
        dir: &Path,
        cfg: LogConfig,
        clock: Arc<dyn Clock>,
        options: super::LocalOptions,
    ) -> Result<(LocalReplica, Option<Damage>), BrokerError> {
        let log = Log::open(dir, cfg, clock.now_ms())?;
        let (filter, report) = ProducerFilter::open(
            dir,
            &log.reader(),
            options.producer_expiration,
            Arc::clone(&clock),
        );
        let damage = report.damaged.first().map(Damage::from);
        for d in &report.damaged {
            tracing::error!(
                topic, partition = index, segment = %d.path.display(), position = d.position.0,
                reason = %d.reason,
                "damaged batch in the log: kept on disk, never served; the partition serves every other offset"
            );
        }
        tracing::debug!(
            topic, partition = index, snapshot = ?report.snapshot_offset.map(|o| o.0),
            batches_read = report.batches_read, "producer state restored"
        );
        let producer_ids = filter.remembered();
        let writer = LogWriter::spawn_filtered(log, clock, options.writer, Some(Box::new(filter)))?;
        let replica = LocalReplica {
            writer,
            sequencer: Sequencer::default(),
            appends_in_progress: AtomicUsize::new(0),
            producer_ids,
        };
        Ok((replica, damage))
    }

    /// Appends one batch and waits as `acks` asks; returns its base offset (`None` with
    /// [`AckLevel::None`]). An idempotent producer's batch first waits its turn behind the
    /// producer's preceding sequence (see `sequencer`), so pipelined batches reach the writer
    /// in order; the writer's filter then checks the sequence itself.
    ///
    /// # Errors
    /// The writer's refusal (a sequence error, a full queue with [`AckLevel::None`], a full
    /// disk) or the group commit's failure: nothing is acknowledged then.
    pub(super) async fn append(
        &self,
        batch: Batch,
        acks: AckLevel,
    ) -> Result<Option<Offset>, BrokerError> {
        let in_progress = InProgress::enter(&self.appends_in_progress);
        let header = batch.header();
        let producer = (header.producer_id >= 0).then_some((
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
            header.record_count,
        ));
        if let Some((id, epoch, sequence, _)) = producer {
            self.sequencer
                .wait_turn(id, epoch, sequence, SINGLE_NODE_TERM)
                .await;
        }
        let queued = if acks == AckLevel::None {
            self.writer.try_append(vec![batch], Some(SINGLE_NODE_EPOCH))
        } else if in_progress.alone() {
            self.writer
                .queue_append_or_write(vec![batch], Some(SINGLE_NODE_EPOCH))
                .await
        } else {
            self.writer
                .queue_append(vec![batch], Some(SINGLE_NODE_EPOCH))
                .await
        };
        if let Some((id, epoch, sequence, records)) = producer {
            self.sequencer
                .queued(id, epoch, sequence, records, SINGLE_NODE_TERM);
        }
        let pending = queued?;
        match acks {
            AckLevel::None => Ok(None),
            // This replica has the batch once the group commit holding it has met the flush
            // policy: the writer answers then.
            AckLevel::Leader => self.written(pending).await,
            // A majority of one is this replica, so "a majority has it durably" is the very
            // same event as for `Leader`. Kept as its own arm because a replicated partition
            // waits for the commit index here instead.
            AckLevel::All => self.written(pending).await,
        }
    }

    /// Waits for the writer's answer to a queued append: its base offset once its group
    /// commit met the flush policy.
    async fn written(&self, pending: PendingAppend) -> Result<Option<Offset>, BrokerError> {
        match pending.await {
            Ok(Ok(infos)) => Ok(infos.first().map(|info| info.base_offset)),
            Ok(Err(err)) => Err(err.into()),
            Err(_) => Err(LogError::Closed.into()),
        }
    }

    /// Reads whole batches from `from` up to the high watermark (see [`LogReader::read`]).
    ///
    /// # Errors
    /// The log's `OffsetOutOfRange`, `CorruptBatch`, `NegativeMaxBytes`.
    pub(super) fn read(&self, from: i64, max_bytes: i64) -> Result<ReadResult, BrokerError> {
        Ok(self.reader().read(from, max_bytes)?)
    }

    /// This node leads, at epoch 0, and is the only replica (so the only in-sync one).
    pub(super) fn leadership(&self, this_node: &NodeIdentity) -> Leadership {
        Leadership {
            leader: Some(this_node.node_id),
            leader_epoch: SINGLE_NODE_EPOCH,
            replicas: vec![this_node.node_id],
            in_sync_replicas: vec![this_node.node_id],
        }
    }

    /// Finishes queued appends, then closes the log cleanly.
    ///
    /// # Errors
    /// The close's I/O error, or `Closed` if already closed.
    pub(super) async fn close(&self) -> Result<(), BrokerError> {
        Ok(self.writer.close().await?)
    }

    /// Like [`LocalReplica::close`], for blocking threads.
    ///
    /// # Errors
    /// As [`LocalReplica::close`].
    pub(super) fn close_blocking(&self) -> Result<(), BrokerError> {
        Ok(self.writer.close_blocking()?)
    }

    /// The log's writer (config changes; tests drive the log through it: rolls, cleans).
    pub(crate) fn writer(&self) -> &LogWriter {
        &self.writer
    }

    /// Idempotent producers this partition remembers.
    pub(super) fn producer_ids(&self) -> usize {
        self.producer_ids.load(Ordering::Relaxed)
    }

    /// The log's reader.
    pub(super) fn reader(&self) -> &LogReader {
        self.writer.reader()
    }
}

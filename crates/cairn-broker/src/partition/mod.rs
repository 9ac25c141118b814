//! One partition of a topic on this node, and the seam between the broker and whatever holds
//! the partition's log. The rest of the broker (produce, fetch, groups, describe, scrub) uses
//! only the operations of [`Partition`]: append with an ack level, read up to the high
//! watermark, wait for the high watermark, the offsets, the leader and its epoch, health. How a
//! batch becomes committed is the [`Replica`]'s business: `local.rs` holds today's single copy
//! (group-committing writer, idempotent-producer filter, sequencer); a Raft-replicated copy is
//! meant to sit beside it in `replica.rs` without a caller changing.
//!
//! Damage stays in its partition: a log that will not open at start-up leaves the partition
//! *stopped* (every call on it answers [`BrokerError::PartitionStopped`], the other partitions
//! serve), and a damaged batch met by a read or by opening is remembered as the partition's
//! damage, which health and metrics report. Neither ever stops the node. A Raft-replicated copy
//! also hands its damage to its healer (`heal.rs`), which rewrites the damaged committed entries
//! with a peer's copies and clears the damage once none is left.
//!
//! The invariant a caller relies on: nothing at or past the high watermark is ever returned by
//! a read, and an append acknowledged at [`AckLevel::All`] is committed (readable) by the time
//! it is answered.

mod fetched;
mod first_election;
pub(crate) mod follower_lag;
mod heal;
mod heal_span;
mod health;
mod leader_end_history;
mod leadership;
mod likely_leader;
mod local;
mod preferred_leader;
mod producer_tracker;
mod replica;
mod replicated;
mod retention_purge;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_codec::Offset;
use cairn_codec::batch::Batch;
use cairn_log::{Clock, DamagedRange, LogConfig, LogError, LogReader, WriterOptions};

pub use fetched::FetchedBatches;
pub use health::{Damage, PartitionCondition, PartitionProblem};
pub use leadership::{LeaderHint, Leadership};

use crate::error::BrokerError;
use crate::node_identity::NodeIdentity;
use crate::produce::AckLevel;
use health::DamageRecord;
use local::LocalReplica;
pub(crate) use preferred_leader::PreferredLeaderState;
use replica::Replica;
use replicated::ReplicatedReplica;
pub(crate) use replicated::{GroupContext, LeaderReport};

/// A partition's offsets at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PartitionOffsets {
    /// The first offset readable.
    pub(crate) log_start_offset: Offset,
    /// The end of what is committed and readable.
    pub(crate) high_watermark: Offset,
    /// The offset the next appended record gets (at or past the high watermark).
    pub(crate) log_end_offset: Offset,
}

/// A partition this node holds.
#[derive(Debug)]
pub(crate) struct Partition {
    /// The topic's name, for errors and reports.
    topic: Arc<str>,
    index: u32,
    dir: PathBuf,
    state: State,
    /// Shared with a replicated copy's healer, which clears it once healed.
    damage: Arc<DamageRecord>,
}

#[derive(Debug)]
enum State {
    Serving(Replica),
    /// The log would not open; the reason is the error it gave.
    Stopped {
        reason: String,
    },
    /// Other nodes hold this partition (replicas are placed on some nodes of the cluster);
    /// this node only knows, from the cluster metadata, who leads it.
    Elsewhere {
        group: cairn_raft::GroupId,
        directory: Arc<dyn LeaderDirectory>,
    },
}

/// How this node opens a single-copy partition: its writer's settings, and how long its
/// idempotent producers are remembered.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LocalOptions {
    /// The log writer's settings.
    pub(crate) writer: WriterOptions,
    /// See [`crate::BrokerConfig::producer_id_expiration`].
    pub(crate) producer_expiration: crate::producer_state::ProducerExpiration,
}

/// Where a node looks up the leadership of partitions it does not hold: the cluster metadata.
pub(crate) trait LeaderDirectory: Send + Sync + std::fmt::Debug {
    /// The leadership of group `group` as the metadata last recorded it.
    fn leadership(&self, group: cairn_raft::GroupId) -> Option<Leadership>;
    /// The client address of node `node`.
    fn address(&self, node: i32) -> Option<String>;
}

impl Partition {
    /// Opens (creating or recovering) the partition's log as this node's only copy and starts
    /// its writer. Blocking: call from a blocking thread.
    ///
    /// # Errors
    /// The log's open error.
    pub(crate) fn open(
        topic: Arc<str>,
        index: u32,
        dir: PathBuf,
        cfg: LogConfig,
        clock: Arc<dyn Clock>,
        options: LocalOptions,
    ) -> Result<Partition, BrokerError> {
        let (local, damage) = LocalReplica::open(&topic, index, &dir, cfg, clock, options)?;
        Ok(Partition {
            topic,
            index,
            dir,
            state: State::Serving(Replica::Local(local)),
            damage: Arc::new(DamageRecord::starting_with(damage)),
        })
    }

    /// Opens the partition as [`Partition::open`] does, but a log that will not open leaves the
    /// partition stopped instead of failing: at start-up one bad directory must not keep every
    /// other partition down. A directory locked by another process still fails (that is a second
    /// broker on the same data, which must not start at all).
    ///
    /// # Errors
    /// The log's `Locked`.
    pub(crate) fn open_or_stop(
        topic: Arc<str>,
        index: u32,
        dir: PathBuf,
        cfg: LogConfig,
        clock: Arc<dyn Clock>,
        options: LocalOptions,
    ) -> Result<Partition, BrokerError> {
        match Partition::open(Arc::clone(&topic), index, dir.clone(), cfg, clock, options) {
            Ok(partition) => Ok(partition),
            Err(err) if matches!(err.log_error(), Some(LogError::Locked { .. })) => Err(err),
            Err(err) => {
                tracing::error!(
                    topic = %topic, partition = index, dir = %dir.display(), %err,
                    "partition stopped: its log will not open; the other partitions serve. Nothing was deleted"
                );
                Ok(Partition {
                    topic,
                    index,
                    dir,
                    state: State::Stopped {
                        reason: err.to_string(),
                    },
                    damage: Arc::default(),
                })
            }
        }
    }

    /// Starts this node's copy of a partition replicated by Raft group `group` (see
    /// `replicated.rs`), opening its log in `dir`; `preferred` when this node is the
    /// partition's first replica, which calls a new group's first election.
    ///
    /// # Errors
    /// The log's open errors; the group's start errors.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn start_replicated(
        topic: Arc<str>,
        index: u32,
        dir: PathBuf,
        cfg: LogConfig,
        clock: Arc<dyn Clock>,
        group: cairn_raft::GroupId,
        members: std::collections::BTreeMap<cairn_raft::NodeId, cairn_raft::PeerNode>,
        preferred: bool,
        ctx: &GroupContext,
    ) -> Result<Partition, BrokerError> {
        let damage: Arc<DamageRecord> = Arc::default();
        let replica = ReplicatedReplica::start(
            Arc::clone(&topic),
            index,
            &dir,
            cfg,
            clock,
            group,
            members,
            preferred,
            ctx,
            Arc::clone(&damage),
        )
        .await?;
        Ok(Partition {
            topic,
            index,
            dir,
            state: State::Serving(Replica::Replicated(Box::new(replica))),
            damage,
        })
    }

    /// A partition of a topic that other nodes hold: every call is answered with the leader
    /// the cluster metadata names.
    pub(crate) fn elsewhere(
        topic: Arc<str>,
        index: u32,
        dir: PathBuf,
        group: cairn_raft::GroupId,
        directory: Arc<dyn LeaderDirectory>,
    ) -> Partition {
        Partition {
            topic,
            index,
            dir,
            state: State::Elsewhere { group, directory },
            damage: Arc::default(),
        }
    }

    /// Whether this node holds a copy of the partition (it is not [`Partition::elsewhere`]).
    pub(crate) fn is_held_here(&self) -> bool {
        !matches!(self.state, State::Elsewhere { .. })
    }

    /// The partition's number in its topic.
    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    /// The partition's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Once this node is leaving the cluster, waits (up to `deadline`) until nothing is being
    /// proposed to the partition's Raft group, and answers the group when this node leads it,
    /// for a handover. `None` for a single copy, a partition held elsewhere or stopped, or a
    /// group led elsewhere.
    pub(crate) async fn stop_proposing(
        &self,
        deadline: tokio::time::Instant,
    ) -> Option<(
        cairn_raft::GroupId,
        openraft::Raft<cairn_raft::PartitionRaft>,
    )> {
        match &self.state {
            State::Serving(Replica::Replicated(replicated)) => {
                replicated.stop_proposing(deadline).await
            }
            _ => None,
        }
    }

    /// Appends one validated batch and answers as `acks` asks: at once once queued
    /// ([`AckLevel::None`], no offset), once this replica has it under the topic's flush
    /// policy ([`AckLevel::Leader`]), or once it is committed ([`AckLevel::All`]). An idempotent
    /// producer's batch is checked against the producer's sequence; a retry of a batch already
    /// written is answered with its original offset.
    ///
    /// # Errors
    /// [`BrokerError::PartitionStopped`]; [`BrokerError::NotLeader`] where another node leads;
    /// the log's refusal or failure (a sequence error, a full queue, a full disk, an fsync
    /// error): nothing is acknowledged then.
    pub(crate) async fn append(
        &self,
        batch: Batch,
        acks: AckLevel,
    ) -> Result<Option<Offset>, BrokerError> {
        self.replica()?.append(batch, acks).await
    }

    /// Waits until this node leads the partition with everything it holds committed and
    /// applied, so a read from the log start to the high watermark sees every record ever
    /// acknowledged, and returns the leader's term (0 for a single copy, which always leads).
    /// What a new group coordinator waits for before it reads its groups' offsets back.
    ///
    /// # Errors
    /// [`BrokerError::PartitionStopped`]; [`BrokerError::NotLeader`] where another node leads
    /// or leadership moved while waiting.
    pub(crate) async fn lead(&self) -> Result<u64, BrokerError> {
        self.replica()?.lead().await
    }

    /// Reads whole batches starting with the one holding `from`, up to `max_bytes` (at least
    /// one batch), never past the high watermark. A read that meets a damaged batch is counted
    /// and remembered for health reports.
    ///
    /// # Errors
    /// [`BrokerError::PartitionStopped`], [`BrokerError::NotLeader`], the log's
    /// `OffsetOutOfRange`, `CorruptBatch` and `NegativeMaxBytes`.
    pub(crate) fn read(&self, from: i64, max_bytes: i64) -> Result<FetchedBatches, BrokerError> {
        self.replica()?
            .read(from, max_bytes)
            .map(FetchedBatches::new)
            .inspect_err(|err| self.note_read_error(err))
    }

    /// Waits until the high watermark is past `offset`, and returns it; `None` once `deadline`
    /// comes first, or when the partition cannot move any more (stopped, closed). Dropping the
    /// future cancels the wait and leaves nothing behind.
    pub(crate) async fn wait_for_high_watermark(
        &self,
        offset: Offset,
        deadline: tokio::time::Instant,
    ) -> Option<Offset> {
        match &self.state {
            State::Serving(replica) => replica.wait_for_high_watermark(offset, deadline).await,
            State::Stopped { .. } | State::Elsewhere { .. } => None,
        }
    }

    /// The log start offset, high watermark and log end offset now.
    ///
    /// # Errors
    /// [`BrokerError::PartitionStopped`].
    pub(crate) fn offsets(&self) -> Result<PartitionOffsets, BrokerError> {
        Ok(self.replica()?.offsets())
    }

    /// Refuses unless this copy may answer offset lookups: a replicated copy only while it
    /// leads (a follower's high watermark trails the leader's, and its log start may differ
    /// under retention, so a consumer asking it for the latest offset would stop short, as
    /// Kafka's ListOffsets is refused by a follower with NOT_LEADER_OR_FOLLOWER).
    ///
    /// # Errors
    /// [`BrokerError::NotLeader`], [`BrokerError::PartitionStopped`].
    pub(crate) fn check_serves_offsets(&self) -> Result<(), BrokerError> {
        match self.replica()? {
            Replica::Replicated(replicated) => replicated.check_leader().map(|_| ()),
            _ => Ok(()),
        }
    }

    /// The log start offset now: [`Partition::offsets`]' first field, at a third of the cost
    /// (one look at the published log state), for the produce path.
    ///
    /// # Errors
    /// [`BrokerError::PartitionStopped`].
    pub(crate) fn log_start_offset(&self) -> Result<Offset, BrokerError> {
        Ok(self.replica()?.log_start_offset())
    }

    /// The first offset whose record timestamp is at or after `timestamp_ms` (Kafka's
    /// ListOffsets by timestamp), or `None` when no committed record is that recent.
    ///
    /// # Errors
    /// [`BrokerError::PartitionStopped`], the log's `CorruptBatch` (counted as a damaged read).
    pub(crate) fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<Offset>, BrokerError> {
        self.replica()?
            .offset_for_timestamp(timestamp_ms)
            .inspect_err(|err| self.note_read_error(err))
    }

    /// Who leads the partition, at which epoch, and which nodes hold it. A stopped partition
    /// still names this node as leader and replica (nobody else has it), with no in-sync copy.
    pub(crate) fn leadership(&self, this_node: &NodeIdentity) -> Leadership {
        match &self.state {
            State::Serving(replica) => replica.leadership(this_node),
            State::Elsewhere { group, directory } => {
                directory.leadership(*group).unwrap_or(Leadership {
                    leader: None,
                    leader_epoch: cairn_codec::LeaderEpoch(0),
                    replicas: Vec::new(),
                    in_sync_replicas: Vec::new(),
                })
            }
            State::Stopped { .. } => Leadership {
                leader: Some(this_node.node_id),
                leader_epoch: cairn_codec::LeaderEpoch(0),
                replicas: vec![this_node.node_id],
                in_sync_replicas: Vec::new(),
            },
        }
    }

    /// Idempotent producers this copy remembers (their epoch and last batches): on a single
    /// node as of the last group commit; on a replicated copy as of its last background pass
    /// over the committed log. Expiration bounds it (see `producer_state`).
    ///
    /// # Errors
    /// [`BrokerError::PartitionStopped`].
    pub(crate) fn producer_ids(&self) -> Result<usize, BrokerError> {
        Ok(self.replica()?.producer_ids())
    }

    /// Bytes of record batches the partition holds (see [`LogReader::size_bytes`]).
    ///
    /// # Errors
    /// [`BrokerError::PartitionStopped`].
    pub(crate) fn size_bytes(&self) -> Result<u64, BrokerError> {
        Ok(self.replica()?.size_bytes())
    }

    /// Visits every readable batch from `from` up to the high watermark, stepping over damaged
    /// ones, which are returned (see [`LogReader::scan_batches`]). For rebuilding state and for
    /// the scrub; consumers' reads use [`Partition::read`].
    ///
    /// # Errors
    /// [`BrokerError::PartitionStopped`], the log's `OffsetOutOfRange`.
    pub(crate) fn scan_batches(
        &self,
        from: i64,
        visit: impl FnMut(&Batch) -> std::ops::ControlFlow<()>,
    ) -> Result<Vec<DamagedRange>, BrokerError> {
        self.replica()?.scan_batches(from, visit)
    }

    /// Applies a changed topic config. A stopped partition takes it when it opens again (from
    /// the topic file), so it is skipped.
    ///
    /// # Errors
    /// The log's `Closed`.
    pub(crate) async fn set_config(&self, cfg: LogConfig) -> Result<(), BrokerError> {
        match &self.state {
            State::Serving(replica) => replica.set_config(cfg).await,
            State::Stopped { .. } | State::Elsewhere { .. } => Ok(()),
        }
    }

    /// Finishes queued appends, then closes the log cleanly. A stopped partition has nothing
    /// to close.
    ///
    /// # Errors
    /// The close's I/O error, or `Closed` if already closed.
    pub(crate) async fn close(&self) -> Result<(), BrokerError> {
        match &self.state {
            State::Serving(replica) => replica.close().await,
            State::Stopped { .. } | State::Elsewhere { .. } => Ok(()),
        }
    }

    /// Like [`Partition::close`], for blocking threads.
    ///
    /// # Errors
    /// As [`Partition::close`].
    pub(crate) fn close_blocking(&self) -> Result<(), BrokerError> {
        match &self.state {
            State::Serving(replica) => replica.close_blocking(),
            State::Stopped { .. } | State::Elsewhere { .. } => Ok(()),
        }
    }

    /// Remembers damage found by a scan (the first one is kept for reports), logging it.
    pub(crate) fn note_damage(&self, range: &DamagedRange) {
        tracing::error!(
            topic = %self.topic, partition = self.index, segment = %range.path.display(),
            position = range.position.0, reason = %range.reason,
            "damaged batch found by the scrub: kept on disk, never served; the partition serves every other offset"
        );
        self.damage.note_scanned(range);
        self.wake_healer();
    }

    /// Tells a replicated copy's healer that damage was met (a single copy has no peer to heal
    /// from).
    fn wake_healer(&self) {
        if let State::Serving(Replica::Replicated(replicated)) = &self.state {
            replicated.note_damage();
        }
    }

    /// Adds this node's copy to `status` when it is a Raft-replicated one (see
    /// [`crate::cluster::replication_status`]); a single copy, a stopped partition and a
    /// partition held elsewhere add nothing.
    pub(crate) fn add_replication(&self, status: &mut crate::cluster::ReplicationStatus) {
        if let State::Serving(Replica::Replicated(replicated)) = &self.state {
            replicated.add_replication(status);
        }
    }

    /// What is wrong with the partition, if anything: stopped (would not open, or its log was
    /// poisoned by a failed write or fsync) before damaged.
    pub(crate) fn problem(&self) -> Option<PartitionProblem> {
        let condition = match &self.state {
            State::Elsewhere { .. } => return None,
            State::Stopped { reason } => PartitionCondition::Stopped {
                reason: reason.clone(),
            },
            State::Serving(replica) => match replica.poisoned() {
                Some(reason) => PartitionCondition::Stopped { reason },
                None => PartitionCondition::Damaged(self.damage.first()?),
            },
        };
        Some(PartitionProblem {
            topic: self.topic.to_string(),
            partition: self.index,
            condition,
            corrupt_reads: self.damage.corrupt_reads(),
        })
    }

    /// The local replica, for tests that drive its log directly.
    #[cfg(test)]
    pub(crate) fn local_for_test(&self) -> Option<&LocalReplica> {
        match &self.state {
            State::Serving(Replica::Local(local)) => Some(local),
            State::Serving(Replica::Replicated(_))
            | State::Stopped { .. }
            | State::Elsewhere { .. } => None,
        }
    }

    /// The serving replica.
    ///
    /// # Errors
    /// [`BrokerError::PartitionStopped`].
    fn replica(&self) -> Result<&Replica, BrokerError> {
        match &self.state {
            State::Serving(replica) => Ok(replica),
            State::Elsewhere { group, directory } => Err(BrokerError::NotLeader {
                topic: self.topic.to_string(),
                partition: self.index,
                leader: directory
                    .leadership(*group)
                    .and_then(|l| l.leader)
                    .map(|node_id| LeaderHint {
                        node_id,
                        address: directory.address(node_id),
                    }),
            }),
            State::Stopped { reason } => Err(BrokerError::PartitionStopped {
                topic: self.topic.to_string(),
                partition: self.index,
                reason: reason.clone(),
            }),
        }
    }

    /// Counts and remembers a read's damage; other errors are ignored.
    fn note_read_error(&self, err: &BrokerError) {
        let Some(log_err) = err.log_error() else {
            return;
        };
        if self.damage.note_read(log_err) {
            tracing::error!(
                topic = %self.topic, partition = self.index, %err,
                "damaged batch read: answered CORRUPT_MESSAGE; the partition serves every other offset"
            );
        }
        if matches!(log_err, LogError::CorruptBatch { .. }) {
            self.wake_healer();
        }
    }
}

/// Waits on `reader`'s published high watermark until it is past `offset` (returning it), or
/// until `deadline` (or the log's end) with `None`. A move published between the caller's read
/// and this call is not missed: the current value is compared first.
async fn wait_for_high_watermark(
    reader: &LogReader,
    offset: Offset,
    deadline: tokio::time::Instant,
) -> Option<Offset> {
    let mut watermark = reader.subscribe_high_watermark();
    loop {
        let now = *watermark.borrow_and_update();
        if now > offset {
            return Some(now);
        }
        match tokio::time::timeout_at(deadline, watermark.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests;

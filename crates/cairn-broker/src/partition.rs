//! One partition of a topic on this node: its log, driven by a group-committing
//! [`LogWriter`] whose admission filter enforces idempotent producers' sequences. Appends and
//! reads of a partition go through here.
//!
//! Damage stays in its partition: a log that will not open at start-up leaves the partition
//! *stopped* (every call on it answers [`BrokerError::PartitionStopped`], the other partitions
//! serve), and a damaged batch met by a read or by opening is remembered as the partition's
//! damage, which health and metrics report. Neither ever stops the node.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cairn_log::{
    Clock, DamagedRange, Log, LogConfig, LogError, LogReader, LogWriter, WriterOptions,
};

use crate::error::BrokerError;
use crate::producer_filter::ProducerFilter;
use crate::sequencer::Sequencer;

/// A partition this node holds.
#[derive(Debug)]
pub(crate) struct Partition {
    pub(crate) index: u32,
    pub(crate) dir: PathBuf,
    /// The topic's name, for errors and reports.
    topic: Arc<str>,
    state: State,
    damage: Mutex<Option<Damage>>,
    /// Reads answered with `CorruptBatch` since the partition opened.
    corrupt_reads: AtomicU64,
}

#[derive(Debug)]
enum State {
    Open {
        writer: LogWriter,
        /// Puts idempotent producers' batches into the writer's queue in sequence order.
        sequencer: Sequencer,
    },
    /// The log would not open; the reason is the error it gave.
    Stopped { reason: String },
}

/// The first damage seen in a partition's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// The segment file and position, as `path@position`.
    pub location: String,
    /// The lowest offset the damaged batch may hold.
    pub offset: u64,
    /// What is wrong with it.
    pub reason: String,
}

impl From<&DamagedRange> for Damage {
    fn from(range: &DamagedRange) -> Damage {
        Damage {
            location: format!("{}@{}", range.path.display(), range.position.0),
            offset: range.from_offset.0,
            reason: range.reason.clone(),
        }
    }
}

/// Why a partition is not fully well, as health and metrics report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionCondition {
    /// Takes no writes and serves no reads: its log would not open, or a write or fsync failed
    /// (an fsync error is never retried; the partition recovers when the node restarts).
    Stopped {
        /// Why.
        reason: String,
    },
    /// Serves every readable offset, but holds damaged batches whose reads fail with
    /// `CORRUPT_MESSAGE`.
    Damaged(Damage),
}

/// One partition's trouble, named for an operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionProblem {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// What is wrong.
    pub condition: PartitionCondition,
    /// Reads answered with `CORRUPT_MESSAGE` since the node started.
    pub corrupt_reads: u64,
}

impl Partition {
    /// Opens (creating or recovering) the partition's log and starts its writer. Blocking: call
    /// from a blocking thread.
    ///
    /// # Errors
    /// The log's open error.
    pub(crate) fn open(
        topic: Arc<str>,
        index: u32,
        dir: PathBuf,
        cfg: LogConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Partition, BrokerError> {
        let log = Log::open(&dir, cfg, clock.now_ms())?;
        let (filter, report) = ProducerFilter::open(&dir, &log.reader());
        let damage = report.damaged.first().map(Damage::from);
        for d in &report.damaged {
            tracing::error!(
                topic = %topic, partition = index, segment = %d.path.display(), position = d.position.0,
                reason = %d.reason,
                "damaged batch in the log: kept on disk, never served; the partition serves every other offset"
            );
        }
        tracing::debug!(
            topic = %topic, partition = index, snapshot = ?report.snapshot_offset.map(|o| o.0),
            batches_read = report.batches_read, "producer state restored"
        );
        let writer = LogWriter::spawn_filtered(
            log,
            clock,
            WriterOptions::default(),
            Some(Box::new(filter)),
        )?;
        Ok(Partition {
            index,
            dir,
            topic,
            state: State::Open {
                writer,
                sequencer: Sequencer::default(),
            },
            damage: Mutex::new(damage),
            corrupt_reads: AtomicU64::new(0),
        })
    }

    /// Opens the partition as [`Partition::open`] does, but a log that will not open leaves the
    /// partition stopped instead of failing: at start-up one bad directory must not keep every
    /// other partition down. A directory locked by another process still fails (that is a second
    /// broker on the same data, which must not start at all).
    ///
    /// # Errors
    /// [`LogError::Locked`].
    pub(crate) fn open_or_stop(
        topic: Arc<str>,
        index: u32,
        dir: PathBuf,
        cfg: LogConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Partition, BrokerError> {
        match Partition::open(Arc::clone(&topic), index, dir.clone(), cfg, clock) {
            Ok(partition) => Ok(partition),
            Err(err @ BrokerError::Log(LogError::Locked { .. })) => Err(err),
            Err(err) => {
                tracing::error!(
                    topic = %topic, partition = index, dir = %dir.display(), %err,
                    "partition stopped: its log will not open; the other partitions serve. Nothing was deleted"
                );
                Ok(Partition {
                    index,
                    dir,
                    topic,
                    state: State::Stopped {
                        reason: err.to_string(),
                    },
                    damage: Mutex::new(None),
                    corrupt_reads: AtomicU64::new(0),
                })
            }
        }
    }

    fn stopped(&self, reason: &str) -> BrokerError {
        BrokerError::PartitionStopped {
            topic: self.topic.to_string(),
            partition: self.index,
            reason: reason.to_string(),
        }
    }

    /// The partition's writer.
    ///
    /// # Errors
    /// [`BrokerError::PartitionStopped`].
    pub(crate) fn writer(&self) -> Result<&LogWriter, BrokerError> {
        match &self.state {
            State::Open { writer, .. } => Ok(writer),
            State::Stopped { reason } => Err(self.stopped(reason)),
        }
    }

    /// The sequencer of idempotent producers' batches.
    ///
    /// # Errors
    /// [`BrokerError::PartitionStopped`].
    pub(crate) fn sequencer(&self) -> Result<&Sequencer, BrokerError> {
        match &self.state {
            State::Open { sequencer, .. } => Ok(sequencer),
            State::Stopped { reason } => Err(self.stopped(reason)),
        }
    }

    /// A reader of the partition's log.
    ///
    /// # Errors
    /// [`BrokerError::PartitionStopped`].
    pub(crate) fn reader(&self) -> Result<&LogReader, BrokerError> {
        self.writer().map(LogWriter::reader)
    }

    /// Remembers a read's damage (the first one is kept for reports) and counts it. Call it
    /// with every error a read of this partition returns; other errors are ignored.
    pub(crate) fn note_read_error(&self, err: &LogError) {
        let LogError::CorruptBatch {
            path,
            position,
            offset,
            reason,
        } = err
        else {
            return;
        };
        self.corrupt_reads.fetch_add(1, Ordering::Relaxed);
        let mut damage = self.damage.lock().unwrap_or_else(|e| e.into_inner());
        if damage.is_none() {
            tracing::error!(
                topic = %self.topic, partition = self.index, segment = %path.display(),
                position = position.0, offset = offset.0, %reason,
                "damaged batch read: answered CORRUPT_MESSAGE; the partition serves every other offset"
            );
            *damage = Some(Damage {
                location: format!("{}@{}", path.display(), position.0),
                offset: offset.0,
                reason: reason.to_string(),
            });
        }
    }

    /// Remembers damage found by a scan (the first one is kept for reports), logging it.
    pub(crate) fn note_damage(&self, range: &DamagedRange) {
        tracing::error!(
            topic = %self.topic, partition = self.index, segment = %range.path.display(),
            position = range.position.0, reason = %range.reason,
            "damaged batch found by the scrub: kept on disk, never served; the partition serves every other offset"
        );
        let mut damage = self.damage.lock().unwrap_or_else(|e| e.into_inner());
        if damage.is_none() {
            *damage = Some(Damage::from(range));
        }
    }

    /// What is wrong with the partition, if anything: stopped (would not open, or its log was
    /// poisoned by a failed write or fsync) before damaged.
    pub(crate) fn problem(&self) -> Option<PartitionProblem> {
        let condition = match &self.state {
            State::Stopped { reason } => PartitionCondition::Stopped {
                reason: reason.clone(),
            },
            State::Open { writer, .. } => match writer.reader().poisoned() {
                Some(reason) => PartitionCondition::Stopped { reason },
                None => PartitionCondition::Damaged(
                    self.damage
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone()?,
                ),
            },
        };
        Some(PartitionProblem {
            topic: self.topic.to_string(),
            partition: self.index,
            condition,
            corrupt_reads: self.corrupt_reads.load(Ordering::Relaxed),
        })
    }
}

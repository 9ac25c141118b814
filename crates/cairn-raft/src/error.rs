//! `RaftStorageError`: what can go wrong storing a Raft group's log, vote and state machine in a
//! partition directory. openraft sees these as its `StorageError`, which stops the group: a
//! storage fault is never papered over, since a Raft node that lost what it acknowledged or
//! voted can break the safety of the whole group.

use std::path::PathBuf;

use cairn_log::LogError;
use openraft::{AnyError, StorageError, StorageIOError};

use crate::types::NodeId;

/// An error from the Raft storage of one group.
#[derive(Debug, thiserror::Error)]
pub enum RaftStorageError {
    /// The partition log refused or failed (an fsync failure poisons it for good).
    #[error(transparent)]
    Log(#[from] LogError),
    /// Entries did not become durable on this node in time (see `RaftLog::wait_durable`).
    #[error("entries up to offset {end} not durable on this node in time")]
    DurableWaitTimedOut {
        /// The offset waited for.
        end: u64,
    },
    /// A flush of this log failed: the log is poisoned and nothing written since becomes
    /// durable on this node (an fsync error is never retried).
    #[error("a flush of this log failed: entries written since are not durable on this node")]
    FlushFailed,
    /// A file operation on a Raft checkpoint failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A Raft checkpoint (vote, purge point, applied state) failed its checks. The group stays
    /// stopped until an operator acts; nothing is deleted because of it.
    #[error("unreadable Raft metadata file {path}: {reason}")]
    CorruptCheckpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A term too large for a batch's 32-bit partitionLeaderEpoch.
    #[error("Raft term {term} does not fit a batch's partitionLeaderEpoch (at most 2^31 - 1)")]
    TermTooLarge {
        /// The term.
        term: u64,
    },
    /// An entry in the log (or handed to it) that is not a Raft entry Cairn writes.
    #[error("Raft entry {index} is malformed: {reason}")]
    CorruptEntry {
        /// The entry's index.
        index: u64,
        /// What is wrong.
        reason: String,
    },
    /// Entries to append do not continue the log (openraft never asks for this).
    #[error(
        "append would leave a hole: the log's next entry is {expected}, the first given is {got}"
    )]
    Hole {
        /// The next entry index of the log.
        expected: u64,
        /// The first index given.
        got: u64,
    },
    /// A snapshot's data does not decode or does not match its metadata.
    #[error("bad snapshot: {reason}")]
    Snapshot {
        /// What is wrong.
        reason: String,
    },
}

impl From<cairn_log::SealedFileError> for RaftStorageError {
    fn from(err: cairn_log::SealedFileError) -> RaftStorageError {
        match err {
            cairn_log::SealedFileError::Io {
                operation,
                path,
                source,
            } => RaftStorageError::Io {
                op: operation,
                path,
                source,
            },
            cairn_log::SealedFileError::Corrupt { path, reason } => {
                RaftStorageError::CorruptCheckpoint { path, reason }
            }
        }
    }
}

impl RaftStorageError {
    /// As openraft's error for a failed log write.
    pub(crate) fn write_logs(&self) -> StorageError<NodeId> {
        StorageIOError::write_logs(AnyError::new(self)).into()
    }

    /// As openraft's error for a failed log read.
    pub(crate) fn read_logs(&self) -> StorageError<NodeId> {
        StorageIOError::read_logs(AnyError::new(self)).into()
    }

    /// As openraft's error for a failed vote write.
    pub(crate) fn write_vote(&self) -> StorageError<NodeId> {
        StorageIOError::write_vote(AnyError::new(self)).into()
    }

    /// As openraft's error for a failed state machine write.
    pub(crate) fn write_state_machine(&self) -> StorageError<NodeId> {
        StorageIOError::write_state_machine(AnyError::new(self)).into()
    }

    /// As openraft's error for a failed snapshot operation.
    pub(crate) fn snapshot(&self) -> StorageError<NodeId> {
        StorageIOError::write_snapshot(None, AnyError::new(self)).into()
    }
}

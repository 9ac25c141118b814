//! `LogError`: everything that can go wrong in a partition's log, with what an operator needs to
//! act on it (the path, the position, the offset). Reasons that come from bytes alone are
//! [`BatchError`]s, wrapped here with where they were found.

use std::path::{Path, PathBuf};

use crate::batch::BatchError;
use crate::types::{FilePos, Offset};

/// An error from the partition log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file operation failed.
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
    /// A batch given to `append` is not a valid RecordBatch v2.
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// A batch given to `append` is larger than `max.message.bytes`.
    #[error("batch of {size_bytes} bytes exceeds max.message.bytes = {max_bytes}")]
    BatchTooLarge {
        /// Size of the batch.
        size_bytes: usize,
        /// The configured limit.
        max_bytes: usize,
    },
    /// A batch stored on disk failed validation; it is never served.
    #[error("corrupt batch in {path} at position {position} (expected offset {offset}): {reason}")]
    CorruptBatch {
        /// The segment file.
        path: PathBuf,
        /// Byte position of the batch in the segment.
        position: FilePos,
        /// The offset the reader expected there.
        offset: Offset,
        /// What is wrong.
        reason: BatchError,
    },
    /// Damage recovery will not repair by truncating, because valid data follows it (truncating
    /// would drop acknowledged batches). The partition stays closed until an operator acts.
    #[error(
        "segment {path} is damaged at position {position} and valid batches follow at {next_valid}; \
         refusing to truncate acknowledged data (restore the segment or move it aside)"
    )]
    DamagedSegment {
        /// The segment file.
        path: PathBuf,
        /// Where the damage starts.
        position: FilePos,
        /// Where the next valid batch starts.
        next_valid: FilePos,
    },
    /// A repair of damaged entries was refused: the copies given cannot be the entries of the
    /// damaged span (wrong count, length, CRC or offsets), or the span is no longer there.
    /// Nothing was written.
    #[error("repair of {path} at position {position} refused: {reason}")]
    RepairRefused {
        /// The segment file.
        path: PathBuf,
        /// Where the damaged span starts.
        position: FilePos,
        /// Why the copies do not fit.
        reason: String,
    },
    /// A metadata file (checkpoint or marker) failed its checksum or format check.
    #[error("unreadable metadata file {path}: {reason}")]
    CorruptCheckpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A read or truncation asked for an offset outside the log (or a reset for an offset no
    /// segment can start at).
    #[error("offset {requested} is out of range [{log_start}, {high_watermark}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: i64,
        /// The log start offset.
        log_start: Offset,
        /// The high watermark (the end of what is readable).
        high_watermark: Offset,
    },
    /// A read asked for a negative number of bytes.
    #[error("max bytes must not be negative, got {0}")]
    NegativeMaxBytes(i64),
    /// A truncation would remove data at or below the high watermark.
    #[error("cannot truncate to {requested}: below the high watermark {high_watermark}")]
    TruncateBelowHighWatermark {
        /// The offset asked for.
        requested: Offset,
        /// The current high watermark.
        high_watermark: Offset,
    },
    /// A high watermark beyond the log end, below the current one, or inside a batch.
    #[error(
        "invalid high watermark {requested}: must be a batch boundary within [{current}, {log_end}]"
    )]
    InvalidHighWatermark {
        /// The offset asked for.
        requested: Offset,
        /// The current high watermark.
        current: Offset,
        /// The log end offset.
        log_end: Offset,
    },
    /// The disk is full: the append was not written. Retriable; the log stays readable.
    #[error("disk full writing {path}; the append was not written and can be retried")]
    DiskFull {
        /// The file being written.
        path: PathBuf,
    },
    /// An earlier write or fsync failed, so the log no longer knows what is on disk. It takes
    /// no more appends until reopened (and recovered).
    #[error("log {dir} is stopped after an I/O failure: {reason}")]
    Poisoned {
        /// The partition directory.
        dir: PathBuf,
        /// The failure that stopped it.
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("invalid config {key} = {value}: {reason}")]
    InvalidConfig {
        /// The config key (Kafka's name).
        key: &'static str,
        /// The value given.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// The active segment holds only meta entries (which take no offset, so it cannot roll) and
    /// has reached the 2 GiB limit of 32-bit positions. Append a batch with records first.
    #[error(
        "segment {path} is full of meta entries and cannot roll until a batch with records arrives"
    )]
    SegmentFull {
        /// The active segment.
        path: PathBuf,
    },
    /// An [`crate::AppendFilter`] refused the request; the source says why (for idempotent
    /// producers: a sequence gap, a fenced epoch).
    #[error("append refused: {0}")]
    Rejected(#[source] std::sync::Arc<dyn std::error::Error + Send + Sync>),
    /// Another open log (in this process or another) holds the directory.
    #[error("log directory {dir} is already open elsewhere (its .lock is held)")]
    Locked {
        /// The partition directory.
        dir: PathBuf,
    },
    /// A clean found more distinct keys than its key map may hold
    /// ([`crate::MAX_KEY_MAP_BYTES`]); nothing was changed.
    #[error("compaction of {dir} stopped: its keys need more than {limit_bytes} bytes of key map")]
    CleanerKeyMapFull {
        /// The partition directory.
        dir: PathBuf,
        /// The key map's limit.
        limit_bytes: usize,
    },
    /// The writer's queue is full (from `try_append`). Retriable.
    #[error("the partition's append queue is full")]
    QueueFull,
    /// The writer has stopped (the log was closed).
    #[error("the log is closed")]
    Closed,
}

impl From<crate::sealed_file::SealedFileError> for LogError {
    fn from(err: crate::sealed_file::SealedFileError) -> LogError {
        match err {
            crate::sealed_file::SealedFileError::Io {
                operation,
                path,
                source,
            } => LogError::Io {
                op: operation,
                path,
                source,
            },
            crate::sealed_file::SealedFileError::Corrupt { path, reason } => {
                LogError::CorruptCheckpoint { path, reason }
            }
        }
    }
}

impl LogError {
    /// An I/O error with its operation and path.
    pub fn io(op: &'static str, path: &Path, source: std::io::Error) -> LogError {
        LogError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// A copy of this error for another waiter of the same failed group commit (I/O sources
    /// are not `Clone`, so they are recreated from their kind and message).
    pub fn duplicate(&self) -> LogError {
        match self {
            LogError::Io { op, path, source } => LogError::Io {
                op,
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            LogError::DiskFull { path } => LogError::DiskFull { path: path.clone() },
            LogError::Poisoned { dir, reason } => LogError::Poisoned {
                dir: dir.clone(),
                reason: reason.clone(),
            },
            LogError::QueueFull => LogError::QueueFull,
            LogError::Rejected(reason) => LogError::Rejected(std::sync::Arc::clone(reason)),
            LogError::SegmentFull { path } => LogError::SegmentFull { path: path.clone() },
            LogError::Closed => LogError::Closed,
            other => LogError::Poisoned {
                dir: PathBuf::new(),
                reason: other.to_string(),
            },
        }
    }

    /// True for errors a producer may retry (the same request can succeed later).
    pub fn is_retriable(&self) -> bool {
        matches!(self, LogError::DiskFull { .. } | LogError::QueueFull)
    }
}

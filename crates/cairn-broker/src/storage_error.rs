//! [`StorageError`]: a partition log's failure as the broker's callers see it. The log's error
//! stays inside (its message and source chain are what an operator reads), and
//! [`StorageError::kind`] says what kind of failure it is, so the server can pick a status
//! and an error code without depending on `cairn-log`.

use cairn_log::LogError;

use crate::producer_filter::SequenceError;

/// A partition log failed.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StorageError(LogError);

/// What kind of failure a [`StorageError`] is: the classes clients and operators act on.
///
/// Deliberately not `#[non_exhaustive]`: `cairn-server` maps each kind in one exhaustive
/// `match`, so a new kind must be given a status there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageErrorKind {
    /// A batch given to append is not a valid RecordBatch v2 (Kafka's `INVALID_RECORD`).
    InvalidBatch,
    /// A batch is larger than `max.message.bytes` (Kafka's `MESSAGE_TOO_LARGE`).
    BatchTooLarge,
    /// A stored batch failed validation; it is never served (Kafka's `CORRUPT_MESSAGE`).
    CorruptBatch,
    /// An offset below the log start or past the high watermark (`OFFSET_OUT_OF_RANGE`).
    OffsetOutOfRange,
    /// A malformed argument (a negative byte count, an idempotent request of several batches).
    InvalidRequest,
    /// A log configuration value out of range.
    InvalidConfig,
    /// The disk (or the quota) is full: nothing was written. Retriable once space is freed.
    DiskFull,
    /// The partition's append queue is full, or its active segment cannot roll yet.
    /// Retriable.
    Busy,
    /// The partition's log was closed (the broker is stopping or the topic was deleted).
    Closed,
    /// The log cannot serve: an I/O failure poisoned it, a segment or metadata file is
    /// damaged, or another process holds it (Kafka's `KAFKA_STORAGE_ERROR`).
    Unavailable,
    /// An idempotent producer's sequence skips ahead (`OUT_OF_ORDER_SEQUENCE_NUMBER`).
    OutOfOrderSequence,
    /// A newer epoch of the idempotent producer exists (`INVALID_PRODUCER_EPOCH`).
    FencedProducerEpoch,
    /// The partition knows nothing of the idempotent producer (`UNKNOWN_PRODUCER_ID`).
    UnknownProducer,
    /// A broken invariant inside the broker (a truncation or high watermark it asked for).
    Internal,
}

impl StorageError {
    /// What kind of failure this is.
    pub fn kind(&self) -> StorageErrorKind {
        use StorageErrorKind as Kind;
        match &self.0 {
            LogError::InvalidBatch(_) => Kind::InvalidBatch,
            LogError::BatchTooLarge { .. } => Kind::BatchTooLarge,
            LogError::CorruptBatch { .. } => Kind::CorruptBatch,
            LogError::OffsetOutOfRange { .. } => Kind::OffsetOutOfRange,
            LogError::NegativeMaxBytes(_) => Kind::InvalidRequest,
            LogError::InvalidConfig { .. } => Kind::InvalidConfig,
            LogError::DiskFull { .. } => Kind::DiskFull,
            LogError::Io { source, .. } if is_disk_full(source) => Kind::DiskFull,
            LogError::QueueFull | LogError::SegmentFull { .. } => Kind::Busy,
            LogError::Closed => Kind::Closed,
            LogError::Poisoned { .. }
            | LogError::Io { .. }
            | LogError::DamagedSegment { .. }
            | LogError::CorruptCheckpoint { .. }
            | LogError::Locked { .. } => Kind::Unavailable,
            LogError::Rejected(reason) => match reason.downcast_ref::<SequenceError>() {
                Some(SequenceError::OutOfOrder { .. }) => Kind::OutOfOrderSequence,
                Some(SequenceError::FencedEpoch { .. }) => Kind::FencedProducerEpoch,
                Some(SequenceError::UnknownProducer { .. }) => Kind::UnknownProducer,
                Some(SequenceError::SeveralBatches) | None => Kind::InvalidRequest,
            },
            LogError::TruncateBelowHighWatermark { .. }
            | LogError::InvalidHighWatermark { .. }
            | LogError::CleanerKeyMapFull { .. }
            | LogError::RepairRefused { .. } => Kind::Internal,
        }
    }

    /// The idempotent producer a sequence refusal is about (an out-of-order sequence, a fenced
    /// epoch, an unknown producer), so an answer can name it as the broker's own
    /// `UnknownProducerId` does; `None` for every other failure.
    pub fn producer_id(&self) -> Option<i64> {
        let LogError::Rejected(reason) = &self.0 else {
            return None;
        };
        match reason.downcast_ref::<SequenceError>()? {
            SequenceError::OutOfOrder { producer_id, .. }
            | SequenceError::FencedEpoch { producer_id, .. }
            | SequenceError::UnknownProducer { producer_id } => Some(*producer_id),
            SequenceError::SeveralBatches => None,
        }
    }

    /// True for failures a producer may retry as they are (the same request can succeed
    /// later).
    pub fn is_retriable(&self) -> bool {
        self.0.is_retriable()
    }

    /// The log's error, for the broker's own decisions (damage records, lock conflicts).
    pub(crate) fn log(&self) -> &LogError {
        &self.0
    }
}

impl From<LogError> for StorageError {
    fn from(err: LogError) -> StorageError {
        StorageError(err)
    }
}

/// True for the OS's "no space left on device" (ENOSPC) and "quota exceeded" (EDQUOT), which a
/// writer meets the same way: one retriable DISK_FULL whether a produce or a create met it.
pub(crate) fn is_disk_full(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_met_as_an_io_error_is_disk_full() {
        let err = StorageError::from(LogError::Io {
            op: "preallocate",
            path: "/d/t-0/0.index".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        });
        assert_eq!(err.kind(), StorageErrorKind::DiskFull);
        let other = StorageError::from(LogError::io(
            "preallocate",
            std::path::Path::new("/d"),
            std::io::Error::other("x"),
        ));
        assert_eq!(other.kind(), StorageErrorKind::Unavailable);
    }

    #[test]
    fn refused_sequences_keep_their_kafka_kind() {
        let rejected = |err: SequenceError| {
            StorageError::from(LogError::Rejected(std::sync::Arc::new(err))).kind()
        };
        assert_eq!(
            rejected(SequenceError::OutOfOrder {
                producer_id: 1,
                expected: 2,
                found: 5
            }),
            StorageErrorKind::OutOfOrderSequence
        );
        assert_eq!(
            rejected(SequenceError::FencedEpoch {
                producer_id: 1,
                current: 2,
                found: 1
            }),
            StorageErrorKind::FencedProducerEpoch
        );
        assert_eq!(
            rejected(SequenceError::SeveralBatches),
            StorageErrorKind::InvalidRequest
        );
    }

    #[test]
    fn sequence_refusals_name_their_producer() {
        let rejected =
            |err: SequenceError| StorageError::from(LogError::Rejected(std::sync::Arc::new(err)));
        let out_of_order = rejected(SequenceError::OutOfOrder {
            producer_id: 7,
            expected: 1,
            found: 5,
        });
        assert_eq!(out_of_order.producer_id(), Some(7));
        let fenced = rejected(SequenceError::FencedEpoch {
            producer_id: 8,
            current: 2,
            found: 1,
        });
        assert_eq!(fenced.producer_id(), Some(8));
        let unknown = rejected(SequenceError::UnknownProducer { producer_id: 9 });
        assert_eq!(unknown.producer_id(), Some(9));
        assert_eq!(rejected(SequenceError::SeveralBatches).producer_id(), None);
        assert_eq!(StorageError::from(LogError::Closed).producer_id(), None);
    }
}

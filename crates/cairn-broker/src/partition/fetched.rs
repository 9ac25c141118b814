//! [`FetchedBatches`]: what a read of a partition returns, as the broker's own type. The
//! server frames it for the wire and the client never sees it.
//!
//! It wraps the log's read result rather than copying it: the batches stay one zero-copy
//! slice of the mapped segment (a `Bytes` clone is a reference count), which the Subscribe and
//! Fetch routes hand to the socket as they are. Wrapping keeps `cairn-log` out of the broker's
//! API, so the server need not depend on it, and lets a replicated partition answer reads
//! with the same type.

use bytes::Bytes;
use cairn_codec::Offset;
use cairn_codec::batch::Batch;
use cairn_log::ReadResult;

/// Whole record batches read from one partition, laid end to end as stored, up to the high
/// watermark, with the partition's bounds when the read was served.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchedBatches {
    read: ReadResult,
}

impl FetchedBatches {
    pub(crate) fn new(read: ReadResult) -> FetchedBatches {
        debug_assert!(
            read.next_offset <= read.high_watermark,
            "read ends at {} beyond the high watermark {}",
            read.next_offset,
            read.high_watermark
        );
        debug_assert!(
            read.log_start_offset <= read.high_watermark,
            "log start {} beyond the high watermark {}",
            read.log_start_offset,
            read.high_watermark
        );
        FetchedBatches { read }
    }

    /// The batches, contiguous: a zero-copy slice of the segment. The first batch may start
    /// before the offset asked for (batches are never split), and meta entries (batches with
    /// no records) may appear: a consumer skips both.
    pub fn data(&self) -> &Bytes {
        &self.read.data
    }

    /// Where the next read should start: the offset after the last batch returned (or the
    /// offset asked for, when nothing was returned).
    pub fn next_offset(&self) -> Offset {
        self.read.next_offset
    }

    /// The high watermark when the read was served: no batch at or past it is ever returned.
    pub fn high_watermark(&self) -> Offset {
        self.read.high_watermark
    }

    /// The log start offset when the read was served.
    pub fn log_start_offset(&self) -> Offset {
        self.read.log_start_offset
    }

    /// Iterates the batches. Their CRCs were verified by the read, so this walks headers
    /// only; iteration stops at the first batch that fails to frame.
    pub fn batches(&self) -> impl Iterator<Item = Batch> + '_ {
        self.read.batches()
    }

    /// True when no batch was returned.
    pub fn is_empty(&self) -> bool {
        self.read.is_empty()
    }
}

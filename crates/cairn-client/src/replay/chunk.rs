//! [`Chunk`]: one fetched answer of one partition, ready for the caller, in either format, and
//! the cursor that walks it. Chunks are checked and trimmed to the replay's range by the fetch
//! task that made them, so handing out a record here never skips or filters: it only decodes.

use cairn_proto::v1 as api;

use crate::batches::{Cursor, FetchedBatches};
use crate::error::ClientError;
use crate::record_view::{Backing, RecordHeaders, RecordView};

/// Records the broker decoded, trimmed to the replay's range.
#[derive(Debug)]
pub(crate) struct DecodedChunk {
    pub(crate) partition: i32,
    /// Records in offset order; only the first `count` are wanted.
    pub(crate) records: Vec<api::Record>,
    pub(crate) count: usize,
    pub(crate) next_offset: i64,
}

impl DecodedChunk {
    /// Keeps the records of `response` before `until` (all of them without one).
    pub(crate) fn new(partition: i32, until: Option<i64>, response: api::FetchResponse) -> Self {
        let records = response.records;
        let count = match until {
            // The broker returns records in offset order; a bound cuts a prefix.
            Some(until) => records.partition_point(|r| r.offset < until),
            None => records.len(),
        };
        DecodedChunk {
            partition,
            records,
            count,
            next_offset: response.next_offset,
        }
    }
}

/// One fetched answer of one partition.
#[derive(Debug)]
pub(crate) enum Chunk {
    /// Raw batches, decoded here.
    Raw(FetchedBatches),
    /// Records decoded by the broker.
    Decoded(DecodedChunk),
}

/// Where the next record of a [`Chunk`] is.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ChunkCursor {
    raw: Cursor,
    record_idx: usize,
}

impl Chunk {
    /// The partition.
    pub(crate) fn partition(&self) -> i32 {
        match self {
            Chunk::Raw(batches) => batches.partition(),
            Chunk::Decoded(chunk) => chunk.partition,
        }
    }

    /// Where the partition's next fetch starts (past everything this chunk covered).
    pub(crate) fn next_offset(&self) -> i64 {
        match self {
            Chunk::Raw(batches) => batches.next_offset(),
            Chunk::Decoded(chunk) => chunk.next_offset,
        }
    }

    /// True when `cursor` has a record left to take.
    pub(crate) fn has_record_at(&self, cursor: &ChunkCursor) -> bool {
        match self {
            Chunk::Raw(batches) => batches.has_record_at(&cursor.raw),
            Chunk::Decoded(chunk) => cursor.record_idx < chunk.count,
        }
    }

    /// The record at `cursor`, moving it on; `None` when none is left.
    #[inline]
    pub(crate) fn record_at(
        &self,
        cursor: &mut ChunkCursor,
    ) -> Option<Result<RecordView<'_>, ClientError>> {
        match self {
            Chunk::Raw(batches) => batches.record_at(&mut cursor.raw),
            Chunk::Decoded(chunk) => {
                let record = chunk.records.get(..chunk.count)?.get(cursor.record_idx)?;
                cursor.record_idx += 1;
                Some(Ok(RecordView {
                    partition: chunk.partition,
                    offset: record.offset,
                    timestamp_ms: record.timestamp_ms,
                    key: record.key.as_deref(),
                    value: record.value.as_deref(),
                    headers: RecordHeaders::from_decoded(&record.headers),
                    backing: Backing::Decoded(record),
                }))
            }
        }
    }
}

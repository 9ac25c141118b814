//! Records as a consumer sees them: the one walk the broker's decoded fetch, the server's
//! direct protobuf encoder and the client's raw-batch reader all use, so that the three answer
//! the same records with the same offsets for the same stored batches.
//!
//! The rule (Kafka's, `segments-format.md` "Record batches"):
//! - control batches (transaction markers) and Cairn meta entries hold no records to read;
//! - a record's offset is the batch's base offset plus its `offsetDelta`;
//! - records before the offset asked for are dropped (the first batch of a read may start
//!   before it);
//! - an `offsetDelta` that is negative, past the batch's `lastOffsetDelta`, or not above the
//!   previous record's is a corrupt batch ([`BatchError::MalformedRecord`]), never an offset
//!   made up by wrapping or clamping. Compaction leaves gaps between deltas but never reorders
//!   them, and a producer writes them 0, 1, 2, ...
//!
//! It does not decide what to do with the records: each user consumes the borrowed
//! [`ConsumerRecord`]s its own way (building values, writing protobuf bytes in place, handing
//! views to an application). Nothing is allocated per record; a compressed batch is
//! decompressed once, into [`ConsumerBatch`], under [`super::MAX_DECOMPRESSED_BATCH_BYTES`] or
//! the caller's limit.

use bytes::Bytes;

use super::decode::{Batch, checked_delta};
use super::error::BatchError;
use super::record::{Headers, read_record};
use crate::types::Offset;

/// One data batch with records a consumer wants: the batch and its records section,
/// decompressed.
#[derive(Clone, Debug)]
pub struct ConsumerBatch {
    batch: Batch,
    records: Bytes,
    from: Offset,
}

/// One record as a consumer sees it, borrowed from its [`ConsumerBatch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsumerRecord<'a> {
    /// The batch's base offset plus the record's delta (checked to lie inside the batch).
    pub offset: Offset,
    /// The record's timestamp by Kafka's rule ([`Batch::record_timestamp`]).
    pub timestamp_ms: i64,
    /// The key, or `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// The value, or `None` for a null value (a tombstone).
    pub value: Option<&'a [u8]>,
    /// The headers, in order.
    pub headers: Headers<'a>,
}

/// Where a walk of one [`ConsumerBatch`] stands: plain data, so a reader can keep it beside the
/// batch (the client's replay cursor does) and resume with [`ConsumerBatch::resume`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkPosition {
    /// Byte position of the next record in the records section.
    position: usize,
    /// Records read so far (wanted or not).
    record_idx: u32,
    /// Smallest delta the next record may carry: one above the previous record's.
    min_delta: i64,
    /// The walk ended, at the batch's end or at an error.
    done: bool,
}

impl ConsumerBatch {
    /// Prepares `batch` for reading from offset `from`, decompressing its records (at most
    /// `limit_bytes`). `None` when a consumer reads nothing from it: a control batch, a meta
    /// entry, or a batch whose last offset is below `from` (not decompressed at all).
    ///
    /// # Errors
    /// [`BatchError::Decompress`] or [`BatchError::DecompressedTooLarge`].
    pub fn new(
        batch: Batch,
        from: Offset,
        limit_bytes: usize,
    ) -> Result<Option<ConsumerBatch>, BatchError> {
        let header = batch.header();
        // Meta entries are control batches too.
        if header.attributes.is_control() || header.last_offset() < from.as_i64() {
            return Ok(None);
        }
        let records = batch.records(limit_bytes)?.as_bytes().clone();
        Ok(Some(ConsumerBatch {
            batch,
            records,
            from,
        }))
    }

    /// The batch as stored.
    pub fn batch(&self) -> &Batch {
        &self.batch
    }

    /// The records section, decompressed: every key, value and header of a
    /// [`ConsumerRecord`] of this batch is a slice of it, so `Bytes::slice_ref` shares them.
    pub fn records_bytes(&self) -> &Bytes {
        &self.records
    }

    /// True when every record of the batch is wanted (none lies before `from`).
    pub fn is_whole(&self) -> bool {
        self.batch.header().base_offset >= self.from.as_i64()
    }

    /// Walks the wanted records from the start.
    pub fn records(&self) -> ConsumerRecords<'_> {
        self.resume(WalkPosition::default())
    }

    /// Walks the wanted records from `at`, a [`ConsumerRecords::position`] of this batch.
    pub fn resume(&self, at: WalkPosition) -> ConsumerRecords<'_> {
        let header = self.batch.header();
        ConsumerRecords {
            batch: self,
            at,
            base: self.batch.base_offset(),
            last_delta: header.last_offset_delta,
            record_count: self.batch.record_count(),
        }
    }
}

/// The wanted records of one [`ConsumerBatch`], in offset order. A malformed record (lengths,
/// offset delta, bytes left after the last record) is an error item, after which the walk ends.
#[derive(Clone, Debug)]
pub struct ConsumerRecords<'a> {
    batch: &'a ConsumerBatch,
    at: WalkPosition,
    /// Header fields kept at hand for the walk's checks.
    base: Offset,
    last_delta: i32,
    record_count: u32,
}

impl<'a> ConsumerRecords<'a> {
    /// Where the walk stands, to resume it later with [`ConsumerBatch::resume`].
    pub fn position(&self) -> WalkPosition {
        self.at
    }

    fn fail(&mut self, reason: &'static str) -> Option<Result<ConsumerRecord<'a>, BatchError>> {
        self.at.done = true;
        Some(Err(BatchError::MalformedRecord {
            record_idx: self.at.record_idx,
            reason,
        }))
    }
}

impl<'a> Iterator for ConsumerRecords<'a> {
    type Item = Result<ConsumerRecord<'a>, BatchError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let batch: &'a ConsumerBatch = self.batch;
        let records: &'a [u8] = &batch.records;
        loop {
            if self.at.done || self.at.record_idx >= self.record_count {
                self.at.done = true;
                return None;
            }
            let Some(rest) = records.get(self.at.position..) else {
                return self.fail("record starts past the end of the batch");
            };
            let (record, used) = match read_record(rest, self.at.record_idx) {
                Ok(found) => found,
                Err(err) => {
                    self.at.done = true;
                    return Some(Err(err));
                }
            };
            // `Batch::record_offset`'s rule, with the header's fields at hand.
            let Some(delta) = checked_delta(record.offset_delta, self.last_delta) else {
                return self.fail("offset delta outside the batch's offsets");
            };
            let offset = self.base.plus(delta);
            let delta = i64::from(record.offset_delta);
            if delta < self.at.min_delta {
                return self.fail("offset delta not above the previous record's");
            }
            self.at.position += used;
            self.at.record_idx += 1;
            self.at.min_delta = delta + 1;
            // Checked here, not after the walk, so that a reader that stops at the last record
            // (it knows the count) still sees the damage.
            if self.at.record_idx == self.record_count && self.at.position != records.len() {
                self.at.done = true;
                return Some(Err(BatchError::MalformedRecord {
                    record_idx: self.at.record_idx - 1,
                    reason: "bytes left after the last record",
                }));
            }
            if offset < batch.from {
                continue;
            }
            return Some(Ok(ConsumerRecord {
                offset,
                timestamp_ms: batch.batch.record_timestamp(&record),
                key: record.key,
                value: record.value,
                headers: record.headers,
            }));
        }
    }
}

#[cfg(test)]
mod tests;

//! [`FetchedBatches`]: the answer to a raw-batch fetch (`FETCH_FORMAT_RECORD_BATCHES`), checked
//! and decoded on the client with `cairn-codec`, the fast path of [`crate::Consumer`] and
//! [`crate::Replay`]: the broker sends the stored bytes untouched and the client does the
//! record work.
//!
//! Every batch's framing, header and offsets (only going up) are checked when the answer
//! arrives, and compressed batches are CRC-checked and decompressed then. An uncompressed
//! batch's CRC-32C is checked then too ([`CrcCheck::OnArrival`]), or, for the replay, when a
//! reader reaches the batch, just before its first record ([`CrcCheck::BeforeReading`]): on
//! the reader's thread, so the pass that checks the bytes also brings them into that core's
//! cache for the walk that follows (checked on the thread that received them, they were cold
//! again by the time the reader walked them, and the walk stalled on memory). Deferring is
//! only for a reader that stops at the error: `next_offset` is computed from headers whose CRC
//! is not yet checked, so a reader that moved its position on arrival would skip the damage.
//! Records are walked in place, one at a time, without allocating; a batch that fails its
//! CRC is an error item where its records would be, and no record of it is handed out. Meta entries and control batches are skipped, and so are records
//! outside the wanted range: the first batch may start before the offset asked for, and a
//! reader bounded by an end offset drops what lies past it.
//!
//! The invariant a reader must carry: [`FetchedBatches::next_offset`] is one past the *last
//! offset* of the last data batch (its base offset plus `lastOffsetDelta`), never the base
//! offset plus the record count. Log compaction removes records from a batch but keeps its base
//! offset and `lastOffsetDelta`, so counting records would step back into the gap and fetch the
//! same batch forever.

use cairn_codec::Offset;
use cairn_codec::batch::{
    Batch, BatchError, Compression, ConsumerBatch, ConsumerRecord, MAX_DECOMPRESSED_BATCH_BYTES,
    WalkPosition,
};
use cairn_proto::v1::FetchResponse;

use crate::error::ClientError;
use crate::record_view::{Backing, RecordHeaders, RecordView};

/// When the CRC of an uncompressed batch is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CrcCheck {
    /// When the answer arrives: a damaged batch fails the whole answer.
    OnArrival,
    /// Just before the batch's first record is read, on the reader's thread.
    BeforeReading,
}

/// The batches of one raw fetch answer, validated, with the records a reader wants.
///
/// Iterate the records with [`FetchedBatches::records`]; each is a [`RecordView`] borrowing
/// this value's buffers.
#[derive(Clone, Debug)]
pub struct FetchedBatches {
    topic: String,
    partition: i32,
    from: i64,
    high_watermark: i64,
    log_start_offset: i64,
    next_offset: i64,
    fetched_bytes: usize,
    record_count: usize,
    batches: Vec<DecodedBatch>,
}

/// One data batch with at least one wanted record.
#[derive(Clone, Debug)]
struct DecodedBatch {
    /// The batch and its records, decompressed, walked by the consumer's rule.
    records: ConsumerBatch,
    /// The batch's CRC is still to be checked (before its first record is read).
    crc_pending: bool,
    /// How many wanted records the walk yields before the end offset (later ones are past it).
    record_count: u32,
}

/// Where the next record of a [`FetchedBatches`] is. It never rests on an exhausted batch, so
/// "records remain" is `batch_idx < batches.len()`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Cursor {
    batch_idx: usize,
    walk: WalkPosition,
    taken: u32,
}

impl FetchedBatches {
    /// Validates and decodes a raw fetch answer for `topic`/`partition` that asked for `from`,
    /// keeping the records at or after `from` and, with `until`, before it, and checking the
    /// CRCs of uncompressed batches as `crc` says.
    ///
    /// # Errors
    /// [`ClientError::CorruptBatch`] for a batch that fails framing, CRC, header or
    /// decompression checks, or whose offsets do not follow the batch before it.
    pub(crate) fn decode(
        topic: &str,
        partition: i32,
        from: i64,
        until: Option<i64>,
        response: FetchResponse,
        crc: CrcCheck,
    ) -> Result<FetchedBatches, ClientError> {
        let corrupt = |source| ClientError::CorruptBatch {
            topic: topic.to_string(),
            partition,
            offset: from,
            source,
        };
        let data = response.record_batches;
        let mut rest = data.clone();
        let mut next_offset = from;
        let mut previous_last: Option<i64> = None;
        let mut batches = Vec::new();
        let mut record_count = 0_usize;
        while !rest.is_empty() {
            // Framing and header now; the CRC of an uncompressed batch when it is read.
            let batch = Batch::from_crc_checked_prefix(&rest).map_err(corrupt)?;
            let crc_pending =
                crc == CrcCheck::BeforeReading && batch.compression() == Compression::None;
            if !crc_pending {
                batch.verify_crc().map_err(corrupt)?;
            }
            rest = rest.slice(batch.len_bytes()..);
            if batch.is_meta() {
                // A meta entry takes no offset and carries no records.
                continue;
            }
            let header = *batch.header();
            let last = header.last_offset();
            if let Some(previous) = previous_last
                && header.base_offset <= previous
            {
                return Err(corrupt(BatchError::OffsetOutOfSequence {
                    expected: previous.saturating_add(1),
                    found: header.base_offset,
                }));
            }
            previous_last = Some(last);
            next_offset = next_offset.max(last.saturating_add(1));
            // Control batches (transaction markers) take offsets but hold no records to read;
            // `wanted_records` leaves them out by the consumer's rule, with batches before `from`.
            if until.is_some_and(|until| header.base_offset >= until) {
                continue;
            }
            if let Some(mut decoded) = wanted_records(batch, from, until).map_err(corrupt)? {
                decoded.crc_pending = crc_pending;
                record_count += decoded.record_count as usize;
                batches.push(decoded);
            }
        }
        Ok(FetchedBatches {
            topic: topic.to_string(),
            partition,
            from,
            high_watermark: response.high_watermark,
            log_start_offset: response.log_start_offset,
            next_offset,
            fetched_bytes: data.len(),
            record_count,
            batches,
        })
    }

    /// The partition the batches came from.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The offset the fetch asked for.
    pub fn from_offset(&self) -> i64 {
        self.from
    }

    /// The partition's high watermark when the broker answered.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The partition's log start offset when the broker answered.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Where the next fetch of this partition starts: one past the last offset of the last
    /// data batch returned (so gaps left by compaction are stepped over), or the offset asked
    /// for when nothing was returned.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Bytes of batches the broker sent, as on the wire (headers, skipped batches included).
    pub fn fetched_bytes(&self) -> usize {
        self.fetched_bytes
    }

    /// How many records [`FetchedBatches::records`] yields.
    pub fn record_count(&self) -> usize {
        self.record_count
    }

    /// True when there is no record to read (the answer may still have moved `next_offset`,
    /// past control batches or a compacted range).
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Iterates the wanted records in offset order, decoding each in place. A malformed
    /// record (possible behind a valid CRC if a producer wrote one) is an error item, after
    /// which the iteration ends.
    pub fn records(&self) -> FetchedRecords<'_> {
        FetchedRecords {
            fetched: self,
            cursor: Cursor::default(),
            failed: false,
        }
    }

    /// True when `cursor` has a record left to take.
    pub(crate) fn has_record_at(&self, cursor: &Cursor) -> bool {
        cursor.batch_idx < self.batches.len()
    }

    /// Decodes the record at `cursor` and moves it on; `None` when none is left.
    #[inline]
    pub(crate) fn record_at(
        &self,
        cursor: &mut Cursor,
    ) -> Option<Result<RecordView<'_>, ClientError>> {
        let batch = self.batches.get(cursor.batch_idx)?;
        let corrupt = |source| ClientError::CorruptBatch {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: batch.records.batch().header().base_offset,
            source,
        };
        if cursor.taken == 0
            && batch.crc_pending
            && let Err(source) = batch.records.batch().verify_crc()
        {
            return Some(Err(corrupt(source)));
        }
        let mut walk = batch.records.resume(cursor.walk);
        let record = match walk.next() {
            Some(Ok(record)) => record,
            Some(Err(source)) => return Some(Err(corrupt(source))),
            // `record_count` came from a walk of the same bytes (or the header of a batch
            // whose records are all wanted), so the walk cannot end before it.
            None => {
                return Some(Err(corrupt(BatchError::MalformedRecord {
                    record_idx: cursor.taken,
                    reason: "fewer records than the batch header counts",
                })));
            }
        };
        cursor.taken += 1;
        cursor.walk = walk.position();
        if cursor.taken >= batch.record_count {
            *cursor = Cursor {
                batch_idx: cursor.batch_idx + 1,
                ..Cursor::default()
            };
        }
        Some(Ok(view(self.partition, batch, &record)))
    }
}

/// The records of a [`FetchedBatches`], in offset order.
#[derive(Clone, Debug)]
pub struct FetchedRecords<'a> {
    fetched: &'a FetchedBatches,
    cursor: Cursor,
    failed: bool,
}

impl<'a> Iterator for FetchedRecords<'a> {
    type Item = Result<RecordView<'a>, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.fetched.record_at(&mut self.cursor)?;
        self.failed = item.is_err();
        Some(item)
    }
}

#[inline]
fn view<'a>(
    partition: i32,
    batch: &'a DecodedBatch,
    record: &ConsumerRecord<'a>,
) -> RecordView<'a> {
    RecordView {
        partition,
        offset: record.offset.as_i64(),
        timestamp_ms: record.timestamp_ms,
        key: record.key,
        value: record.value,
        headers: RecordHeaders::from_batch(record.headers),
        backing: Backing::Batch(batch.records.records_bytes()),
    }
}

/// The records of `batch` with offsets in `[from, until)`, or `None` if it has none.
fn wanted_records(
    batch: Batch,
    from: i64,
    until: Option<i64>,
) -> Result<Option<DecodedBatch>, BatchError> {
    // Every offset is at least 0, so a negative `from` wants them all, as 0 does.
    let from = Offset::from_i64(from).unwrap_or_default();
    let Some(records) = ConsumerBatch::new(batch, from, MAX_DECOMPRESSED_BATCH_BYTES)? else {
        return Ok(None);
    };
    let last = records.batch().header().last_offset();
    let record_count = if records.is_whole() && until.is_none_or(|until| last < until) {
        records.batch().record_count()
    } else {
        // Only a batch straddling `from` or `until` gets here (the first or last of a read), so
        // this walk is rare. With compaction gaps offset deltas are not record indexes, so each
        // record's own offset decides.
        let mut count = 0_u32;
        for record in records.records() {
            if until.is_some_and(|until| record.as_ref().is_ok_and(|r| r.offset.as_i64() >= until))
            {
                break;
            }
            record?;
            count += 1;
        }
        count
    };
    Ok((record_count > 0).then_some(DecodedBatch {
        records,
        record_count,
        crc_pending: false,
    }))
}

#[cfg(test)]
mod tests;

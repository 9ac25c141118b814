//! A validated RecordBatch v2 held as `Bytes`, and the checks that make it so. Validation reads
//! the header and computes the CRC; records are only walked on request, because the produce path
//! should cost one pass over the bytes (the CRC) and no allocation.

use bytes::Bytes;

use super::compression::{Compression, decompress};
use super::crc::batch_crc;
use super::error::BatchError;
use super::header::{BatchHeader, MAGIC_V2, field};
use super::record::RecordIter;
use crate::types::{LeaderEpoch, Offset};

/// Largest `batchLength` the decoder accepts from any source before allocating or slicing.
/// Segments are capped below 2 GiB; a batch beyond 1 GiB is never legitimate.
pub const MAX_BATCH_BYTES: usize = 1 << 30;

/// A RecordBatch v2 whose framing, magic, CRC and header consistency have been checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    bytes: Bytes,
    header: BatchHeader,
}

impl Batch {
    /// Validates that `bytes` is exactly one RecordBatch v2.
    ///
    /// # Errors
    /// A [`BatchError`] naming the first problem: truncation, a length that disagrees with the
    /// bytes, a wrong magic, a CRC mismatch, an unknown codec or inconsistent header fields.
    pub fn validate(bytes: Bytes) -> Result<Batch, BatchError> {
        let total = frame_len(&bytes)?;
        if total != bytes.len() {
            return Err(BatchError::BadLength {
                declared: total as i64 - 12,
                reason: "batch length does not match the bytes given",
            });
        }
        Self::validate_framed(bytes)
    }

    /// Validates the batch at the front of `buf` (which may continue with more batches) and
    /// returns it as a zero-copy slice of `buf`.
    ///
    /// # Errors
    /// As [`Batch::validate`]; [`BatchError::Truncated`] if `buf` ends inside the batch.
    pub fn validate_prefix(buf: &Bytes) -> Result<Batch, BatchError> {
        let total = frame_len(buf)?;
        Self::validate_framed(buf.slice(..total))
    }

    /// The batch at the front of `buf`, whose CRC the caller has just verified (the log's reader
    /// checks every batch it serves): framing, header and counts are checked again (cheap), the
    /// CRC is not (the expensive part). Bytes from anywhere else go through
    /// [`Batch::validate_prefix`].
    ///
    /// # Errors
    /// As [`Batch::validate_prefix`], except that a CRC mismatch is not detected.
    pub fn from_crc_checked_prefix(buf: &Bytes) -> Result<Batch, BatchError> {
        let bytes = buf.slice(..frame_len(buf)?);
        let header = BatchHeader::parse(&bytes)?;
        header.attributes.compression()?;
        check_counts(&header)?;
        Ok(Batch { bytes, header })
    }

    fn validate_framed(bytes: Bytes) -> Result<Batch, BatchError> {
        let header = BatchHeader::parse(&bytes)?;
        let batch = Batch { bytes, header };
        batch.verify_crc()?;
        header.attributes.compression()?;
        check_counts(&header)?;
        Ok(batch)
    }

    /// Checks the stored CRC-32C against the bytes: what [`Batch::from_crc_checked_prefix`]
    /// left out, for a reader that checks a batch later than it frames it.
    ///
    /// # Errors
    /// [`BatchError::CrcMismatch`].
    pub fn verify_crc(&self) -> Result<(), BatchError> {
        let computed = batch_crc(&self.bytes).unwrap_or(0);
        if computed == self.header.crc {
            Ok(())
        } else {
            Err(BatchError::CrcMismatch {
                stored: self.header.crc,
                computed,
            })
        }
    }

    /// The header fields.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The whole batch as stored.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Consumes the batch, returning its bytes.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Size of the batch in bytes.
    pub fn len_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Number of records (0 for a meta entry).
    pub fn record_count(&self) -> u32 {
        // check_counts proved it non-negative.
        self.header.record_count as u32
    }

    /// Number of offsets the batch covers: `lastOffsetDelta + 1` (0 for a meta entry).
    pub fn offset_count(&self) -> u64 {
        u64::try_from(i64::from(self.header.last_offset_delta) + 1).unwrap_or(0)
    }

    /// The base offset field (meaningful once the log has assigned it).
    pub fn base_offset(&self) -> Offset {
        Offset::from_i64(self.header.base_offset).unwrap_or_default()
    }

    /// The leader epoch field.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        LeaderEpoch(self.header.partition_leader_epoch)
    }

    /// The codec of the records section.
    pub fn compression(&self) -> Compression {
        // validate_framed checked the codec.
        self.header.attributes.compression().unwrap_or_default()
    }

    /// True for a Cairn meta entry: a control batch with no records, taking no offset, whose
    /// records section is an opaque payload (a Raft no-op or membership change).
    pub fn is_meta(&self) -> bool {
        is_meta_header(&self.header)
    }

    /// The payload of a meta entry, or `None` for a batch with records.
    pub fn meta_payload(&self) -> Option<&[u8]> {
        self.is_meta()
            .then(|| self.bytes.get(field::RECORDS..).unwrap_or_default())
    }

    /// A record's timestamp by Kafka's rule: under LogAppendTime (attribute bit 3) every record
    /// carries the batch's `maxTimestamp`; otherwise `baseTimestamp + timestampDelta`.
    pub fn record_timestamp(&self, record: &super::record::Record<'_>) -> i64 {
        if self.header.attributes.is_log_append_time() {
            self.header.max_timestamp
        } else {
            self.header
                .base_timestamp
                .saturating_add(record.timestamp_delta)
        }
    }

    /// The offset of `record`, one of this batch's records: the base offset plus its
    /// `offsetDelta`. `record_idx` only labels the error.
    ///
    /// # Errors
    /// [`BatchError::MalformedRecord`] when the delta is negative or past `lastOffsetDelta`: the
    /// batch is corrupt, and no offset is made up for the record (`segments-format.md`,
    /// "Records as a consumer sees them").
    pub fn record_offset(
        &self,
        record: &super::record::Record<'_>,
        record_idx: u32,
    ) -> Result<Offset, BatchError> {
        let delta = checked_delta(record.offset_delta, self.header.last_offset_delta).ok_or(
            BatchError::MalformedRecord {
                record_idx,
                reason: "offset delta outside the batch's offsets",
            },
        )?;
        // Not past i64::MAX either: the base offset is checked non-negative, and the delta is
        // at most i32::MAX.
        Ok(self.base_offset().plus(delta))
    }

    /// The records section, decompressed if needed (allocating at most `limit_bytes`).
    ///
    /// # Errors
    /// [`BatchError::Decompress`] or [`BatchError::DecompressedTooLarge`].
    pub fn records(&self, limit_bytes: usize) -> Result<Records, BatchError> {
        if self.is_meta() {
            return Ok(Records {
                data: Bytes::new(),
                count: 0,
            });
        }
        let raw = self.bytes.slice(field::RECORDS..);
        let data = match self.compression() {
            Compression::None => raw,
            codec => Bytes::from(decompress(codec, &raw, limit_bytes)?),
        };
        Ok(Records {
            data,
            count: self.record_count(),
        })
    }

    /// Walks every record, checking lengths and that offset deltas run 0, 1, 2, ... as a
    /// producer must write them. Meta entries have no records to walk.
    ///
    /// # Errors
    /// [`BatchError::MalformedRecord`] for the first bad record, or a decompression error.
    pub fn check_records(&self, limit_bytes: usize) -> Result<(), BatchError> {
        if self.is_meta() {
            return Ok(());
        }
        let records = self.records(limit_bytes)?;
        for (idx, record) in records.iter().enumerate() {
            let record = record?;
            if i64::from(record.offset_delta) != idx as i64 {
                return Err(BatchError::MalformedRecord {
                    record_idx: idx as u32,
                    reason: "offset delta out of sequence",
                });
            }
        }
        Ok(())
    }

    /// Checks what a producer's batch must satisfy beyond validity: not a control batch, at
    /// least one record, and `lastOffsetDelta == recordCount - 1` (compaction may later leave
    /// gaps, a producer may not).
    ///
    /// # Errors
    /// [`BatchError::InconsistentHeader`].
    pub fn check_producible(&self) -> Result<(), BatchError> {
        if self.header.attributes.is_control() {
            // Transaction markers and meta entries are the broker's to write, as in Kafka.
            return Err(BatchError::InconsistentHeader(
                "control batches cannot be produced",
            ));
        }
        if self.header.record_count == 0 {
            return Err(BatchError::InconsistentHeader(
                "a produced batch must hold records",
            ));
        }
        if self.header.last_offset_delta != self.header.record_count - 1 {
            return Err(BatchError::InconsistentHeader(
                "lastOffsetDelta must be recordCount - 1 in a produced batch",
            ));
        }
        Ok(())
    }

    /// This batch stamped with the broker's append time, as Kafka's broker stamps a batch for a
    /// topic with `message.timestamp.type=LogAppendTime`: the timestamp-type attribute set and
    /// `maxTimestamp` replaced by `append_time_ms`, so that every record reads that time (see
    /// [`Batch::record_timestamp`]); the records themselves are untouched. Both fields are under
    /// the CRC, so the batch is copied and its CRC computed again.
    #[must_use]
    pub fn with_log_append_time(&self, append_time_ms: i64) -> Batch {
        let mut bytes = self.bytes.to_vec();
        let attributes = self.header.attributes.with_log_append_time();
        bytes[field::ATTRIBUTES..field::LAST_OFFSET_DELTA]
            .copy_from_slice(&attributes.0.to_be_bytes());
        bytes[field::MAX_TIMESTAMP..field::PRODUCER_ID]
            .copy_from_slice(&append_time_ms.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[field::ATTRIBUTES..]);
        bytes[field::CRC..field::ATTRIBUTES].copy_from_slice(&crc.to_be_bytes());
        Batch {
            bytes: Bytes::from(bytes),
            header: BatchHeader {
                attributes,
                max_timestamp: append_time_ms,
                crc,
                ..self.header
            },
        }
    }

    /// The first 16 bytes of this batch as the log stores it: `baseOffset` and
    /// `partitionLeaderEpoch` replaced, `batchLength` kept. These fields are outside the CRC.
    pub fn assigned_prefix(&self, base_offset: Offset, epoch: LeaderEpoch) -> [u8; 16] {
        let mut prefix = [0u8; 16];
        prefix[..8].copy_from_slice(&base_offset.as_i64().to_be_bytes());
        prefix[8..12].copy_from_slice(&self.header.batch_length.to_be_bytes());
        prefix[12..16].copy_from_slice(&epoch.0.to_be_bytes());
        prefix
    }
}

/// Rewrites `baseOffset` and `partitionLeaderEpoch` of the batch at the front of `buf` in place.
/// The CRC stays valid because neither field is covered by it. Returns `false` if `buf` is
/// shorter than the header.
pub fn rewrite_assigned_fields(buf: &mut [u8], base_offset: Offset, epoch: LeaderEpoch) -> bool {
    let Some(head) = buf.get_mut(..field::MAGIC) else {
        return false;
    };
    head[field::BASE_OFFSET..field::BATCH_LENGTH]
        .copy_from_slice(&base_offset.as_i64().to_be_bytes());
    head[field::PARTITION_LEADER_EPOCH..field::MAGIC].copy_from_slice(&epoch.0.to_be_bytes());
    true
}

/// Reads the 12-byte prefix of the batch at the front of `buf` and returns the batch's total
/// size, checking the magic byte and that the declared length is sane and present in `buf`.
///
/// # Errors
/// [`BatchError::Truncated`], [`BatchError::BadLength`] or [`BatchError::WrongMagic`].
pub fn frame_len(buf: &[u8]) -> Result<usize, BatchError> {
    let length_bytes: [u8; 4] = buf
        .get(field::BATCH_LENGTH..field::BATCH_LENGTH + 4)
        .and_then(|s| s.try_into().ok())
        .ok_or(BatchError::Truncated {
            available: buf.len(),
            needed: field::PARTITION_LEADER_EPOCH,
        })?;
    let declared = i32::from_be_bytes(length_bytes);
    let length = usize::try_from(declared).map_err(|_| BatchError::BadLength {
        declared: declared.into(),
        reason: "negative",
    })?;
    if length < super::header::MIN_BATCH_LENGTH {
        return Err(BatchError::BadLength {
            declared: declared.into(),
            reason: "shorter than a header",
        });
    }
    if length > MAX_BATCH_BYTES {
        return Err(BatchError::BadLength {
            declared: declared.into(),
            reason: "over 1 GiB",
        });
    }
    let magic = *buf.get(field::MAGIC).ok_or(BatchError::Truncated {
        available: buf.len(),
        needed: field::MAGIC + 1,
    })? as i8;
    if magic != MAGIC_V2 {
        return Err(BatchError::WrongMagic(magic));
    }
    let total = length + super::header::LOG_OVERHEAD_BYTES;
    if total > buf.len() {
        return Err(BatchError::Truncated {
            available: buf.len(),
            needed: total,
        });
    }
    Ok(total)
}

/// The rule of [`Batch::record_offset`] on the two numbers, for a walk that keeps the header's
/// `lastOffsetDelta` at hand: the delta as an unsigned count when it lies in
/// `0..=lastOffsetDelta`, `None` otherwise.
#[inline]
pub(crate) fn checked_delta(offset_delta: i32, last_offset_delta: i32) -> Option<u64> {
    if offset_delta > last_offset_delta {
        return None;
    }
    u64::try_from(offset_delta).ok()
}

/// Whether a header describes a meta entry: a control batch with no records that takes an entry
/// index but no offset (see `segments-format.md`).
pub fn is_meta_header(header: &BatchHeader) -> bool {
    header.attributes.is_control() && header.record_count == 0 && header.last_offset_delta == -1
}

fn check_counts(header: &BatchHeader) -> Result<(), BatchError> {
    if header.record_count < 0 {
        return Err(BatchError::InconsistentHeader("negative record count"));
    }
    if header.last_offset_delta < -1 {
        return Err(BatchError::InconsistentHeader("lastOffsetDelta below -1"));
    }
    if header.record_count > 0 && header.last_offset_delta < header.record_count - 1 {
        return Err(BatchError::InconsistentHeader("fewer offsets than records"));
    }
    if header.last_offset_delta == -1 && !is_meta_header(header) {
        return Err(BatchError::InconsistentHeader(
            "a batch covering no offset must be a meta entry (control bit, no records)",
        ));
    }
    if header.base_offset < 0 {
        return Err(BatchError::InconsistentHeader("negative base offset"));
    }
    Ok(())
}

/// The records section of a batch, decompressed, ready to iterate in place.
#[derive(Clone, Debug)]
pub struct Records {
    data: Bytes,
    count: u32,
}

impl Records {
    /// Iterates the records; each item is an error if that record is malformed.
    pub fn iter(&self) -> RecordIter<'_> {
        RecordIter::new(&self.data, self.count)
    }

    /// The uncompressed records section.
    pub fn as_bytes(&self) -> &Bytes {
        &self.data
    }
}

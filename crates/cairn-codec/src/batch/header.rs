//! The 61-byte RecordBatch v2 header: field positions, the parsed header, and the attribute bits.
//! Layout and meaning are specified in `segments-format.md`, section "Record batches".
//!
//! The header is read with checked, fixed-width big-endian reads; nothing here trusts a length.

use super::compression::Compression;
use super::error::BatchError;

/// Bytes in the fixed header, from `baseOffset` to `recordCount` inclusive.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Bytes before the part that `batchLength` counts (`baseOffset` and `batchLength` themselves).
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// The only magic value Cairn accepts.
pub const MAGIC_V2: i8 = 2;
/// The smallest legal `batchLength`: a header with no records.
pub const MIN_BATCH_LENGTH: usize = BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES;

/// Byte positions of each header field (see `segments-format.md`).
pub mod field {
    /// `baseOffset`, int64: assigned by the broker, outside the CRC.
    pub const BASE_OFFSET: usize = 0;
    /// `batchLength`, int32: bytes after this field.
    pub const BATCH_LENGTH: usize = 8;
    /// `partitionLeaderEpoch`, int32: assigned by the broker, outside the CRC.
    pub const PARTITION_LEADER_EPOCH: usize = 12;
    /// `magic`, int8: always 2.
    pub const MAGIC: usize = 16;
    /// `crc`, uint32: CRC-32C of `attributes` to the end of the batch.
    pub const CRC: usize = 17;
    /// `attributes`, int16: compression, timestamp type, transactional and control bits.
    pub const ATTRIBUTES: usize = 21;
    /// `lastOffsetDelta`, int32.
    pub const LAST_OFFSET_DELTA: usize = 23;
    /// `baseTimestamp`, int64.
    pub const BASE_TIMESTAMP: usize = 27;
    /// `maxTimestamp`, int64.
    pub const MAX_TIMESTAMP: usize = 35;
    /// `producerId`, int64.
    pub const PRODUCER_ID: usize = 43;
    /// `producerEpoch`, int16.
    pub const PRODUCER_EPOCH: usize = 51;
    /// `baseSequence`, int32.
    pub const BASE_SEQUENCE: usize = 53;
    /// `recordCount`, int32.
    pub const RECORD_COUNT: usize = 57;
    /// First byte of the records section.
    pub const RECORDS: usize = 61;
}

const _: () = assert!(field::RECORDS == BATCH_HEADER_BYTES);
const _: () = assert!(field::CRC + 4 == field::ATTRIBUTES);
const _: () = assert!(field::BATCH_LENGTH + 4 == LOG_OVERHEAD_BYTES);

/// The attribute bits of a batch (Kafka's `attributes` int16).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attributes(pub i16);

impl Attributes {
    const COMPRESSION_MASK: i16 = 0x07;
    const TIMESTAMP_TYPE_LOG_APPEND: i16 = 0x08;
    const TRANSACTIONAL: i16 = 0x10;
    const CONTROL: i16 = 0x20;
    const DELETE_HORIZON: i16 = 0x40;

    /// The compression codec named by bits 0-2.
    ///
    /// # Errors
    /// [`BatchError::UnknownCompression`] for codes 5-7.
    pub fn compression(self) -> Result<Compression, BatchError> {
        Compression::from_code((self.0 & Self::COMPRESSION_MASK) as u8)
    }

    /// True when bit 3 says the timestamps are the broker's append time.
    pub fn is_log_append_time(self) -> bool {
        self.0 & Self::TIMESTAMP_TYPE_LOG_APPEND != 0
    }

    /// True for a transactional batch (bit 4).
    pub fn is_transactional(self) -> bool {
        self.0 & Self::TRANSACTIONAL != 0
    }

    /// True for a control batch (bit 5): a transaction marker, or a Cairn meta entry.
    pub fn is_control(self) -> bool {
        self.0 & Self::CONTROL != 0
    }

    /// True when bit 6 says `baseTimestamp` holds a compaction delete horizon.
    pub fn has_delete_horizon(self) -> bool {
        self.0 & Self::DELETE_HORIZON != 0
    }

    /// These attributes with the codec bits replaced.
    pub fn with_compression(self, codec: Compression) -> Attributes {
        Attributes((self.0 & !Self::COMPRESSION_MASK) | i16::from(codec.code()))
    }

    /// These attributes with the timestamp type set to LogAppendTime.
    #[must_use]
    pub fn with_log_append_time(self) -> Attributes {
        Attributes(self.0 | Self::TIMESTAMP_TYPE_LOG_APPEND)
    }

    /// These attributes with the control bit set.
    pub fn with_control(self) -> Attributes {
        Attributes(self.0 | Self::CONTROL)
    }
}

/// Every field of a RecordBatch v2 header, as read from bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record (assigned by the broker).
    pub base_offset: i64,
    /// Bytes after the `batchLength` field.
    pub batch_length: i32,
    /// Leader epoch (Raft term) under which the batch was appended.
    pub partition_leader_epoch: i32,
    /// Format version; 2.
    pub magic: i8,
    /// Stored CRC-32C.
    pub crc: u32,
    /// Attribute bits.
    pub attributes: Attributes,
    /// Offset of the last record minus `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record (or the delete horizon, see attributes).
    pub base_timestamp: i64,
    /// Largest record timestamp.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the fixed header from the front of `buf` without checking length, magic or CRC
    /// (that is [`super::Batch::validate`]'s job).
    ///
    /// # Errors
    /// [`BatchError::Truncated`] when `buf` is shorter than the header.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        let head: &[u8; BATCH_HEADER_BYTES] = buf
            .get(..BATCH_HEADER_BYTES)
            .and_then(|s| s.try_into().ok())
            .ok_or(BatchError::Truncated {
                available: buf.len(),
                needed: BATCH_HEADER_BYTES,
            })?;
        Ok(BatchHeader {
            base_offset: i64::from_be_bytes(array(head, field::BASE_OFFSET)),
            batch_length: i32::from_be_bytes(array(head, field::BATCH_LENGTH)),
            partition_leader_epoch: i32::from_be_bytes(array(head, field::PARTITION_LEADER_EPOCH)),
            magic: head[field::MAGIC] as i8,
            crc: u32::from_be_bytes(array(head, field::CRC)),
            attributes: Attributes(i16::from_be_bytes(array(head, field::ATTRIBUTES))),
            last_offset_delta: i32::from_be_bytes(array(head, field::LAST_OFFSET_DELTA)),
            base_timestamp: i64::from_be_bytes(array(head, field::BASE_TIMESTAMP)),
            max_timestamp: i64::from_be_bytes(array(head, field::MAX_TIMESTAMP)),
            producer_id: i64::from_be_bytes(array(head, field::PRODUCER_ID)),
            producer_epoch: i16::from_be_bytes(array(head, field::PRODUCER_EPOCH)),
            base_sequence: i32::from_be_bytes(array(head, field::BASE_SEQUENCE)),
            record_count: i32::from_be_bytes(array(head, field::RECORD_COUNT)),
        })
    }

    /// Total bytes of the batch on disk, `batchLength` plus the 12 bytes before it, if the
    /// declared length is at least the header's.
    pub fn total_bytes(&self) -> Option<usize> {
        let length = usize::try_from(self.batch_length).ok()?;
        (length >= MIN_BATCH_LENGTH).then_some(length + LOG_OVERHEAD_BYTES)
    }

    /// Offset of the last record, `base_offset + last_offset_delta`. For a meta entry (no
    /// records, delta -1) it is `base_offset - 1`: the entry covers no offset.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }
}

/// Reads a fixed-width field from the header. The positions are compile-time constants inside
/// the 61-byte array, so the slice cannot be out of range.
fn array<const N: usize>(head: &[u8; BATCH_HEADER_BYTES], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&head[at..at + N]);
    out
}

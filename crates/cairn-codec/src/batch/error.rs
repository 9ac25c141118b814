//! Why a byte string is not a valid RecordBatch v2. These reasons carry no file or request
//! context: the layer that read the bytes wraps them with the path and position.

use super::compression::Compression;

/// A reason a RecordBatch (or one of its records) failed to parse or validate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes than the fixed header or the declared length needs.
    #[error("batch truncated: {available} bytes available, {needed} needed")]
    Truncated {
        /// Bytes present.
        available: usize,
        /// Bytes the header says are needed.
        needed: usize,
    },
    /// The `batchLength` field disagrees with the bytes given or is out of range.
    #[error("batch length field {declared} is invalid: {reason}")]
    BadLength {
        /// The `batchLength` field as read.
        declared: i64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The magic byte is not 2; Cairn stores only RecordBatch v2.
    #[error("unsupported magic byte {0} (only RecordBatch v2, magic 2, is accepted)")]
    WrongMagic(i8),
    /// The CRC-32C over attributes..end does not match the stored one.
    #[error("CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed over the bytes.
        computed: u32,
    },
    /// The compression codec bits name a codec Kafka does not define.
    #[error("unknown compression codec {0} in batch attributes")]
    UnknownCompression(u8),
    /// The header fields contradict each other (record count, last offset delta, ...).
    #[error("inconsistent batch header: {0}")]
    InconsistentHeader(&'static str),
    /// A record inside the batch is malformed.
    #[error("malformed record #{record_idx}: {reason}")]
    MalformedRecord {
        /// Which record (0-based) inside the batch.
        record_idx: u32,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Decompressing the records failed.
    #[error("{codec:?} decompression failed: {reason}")]
    Decompress {
        /// The batch's codec.
        codec: Compression,
        /// The decoder's message.
        reason: String,
    },
    /// The decompressed records exceed the caller's limit (a decompression bomb, or a limit
    /// set too low).
    #[error("decompressed records exceed the limit of {limit_bytes} bytes")]
    DecompressedTooLarge {
        /// The limit that was hit.
        limit_bytes: usize,
    },
    /// Compressing records for a new batch failed.
    #[error("{codec:?} compression failed: {reason}")]
    Compress {
        /// The codec asked for.
        codec: Compression,
        /// The encoder's message.
        reason: String,
    },
    /// A stored batch's base offset does not follow the batch before it (or contradicts the
    /// index that pointed at it). The base offset is outside the CRC, so this check is what
    /// catches its damage.
    #[error("base offset {found} out of sequence (expected {expected})")]
    OffsetOutOfSequence {
        /// The offset the log's structure implies.
        expected: i64,
        /// The offset the batch holds.
        found: i64,
    },
    /// A batch being built exceeds what the format can hold.
    #[error("batch too large to encode: {0}")]
    TooLargeToEncode(&'static str),
}

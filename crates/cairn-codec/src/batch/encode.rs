//! Encodes records into a RecordBatch v2, and builds Cairn meta entries. A producer that keeps
//! one builder allocates a few times per batch (the records' buffer, reserved at the size the
//! last batch took, and with compression the compressed bytes), not once per record, and a
//! builder between batches holds no buffer: a producer keeps one per partition, and each one's
//! peak would otherwise stay allocated, outside the producer's `buffer_memory`, for as long as
//! the producer lives (2,000 partitions x 2 x 256 KiB is 1 GiB).

use bytes::Bytes;

use super::compression::{Compression, compress};
use super::crc::batch_crc;
use super::error::BatchError;
use super::header::{Attributes, BATCH_HEADER_BYTES, LOG_OVERHEAD_BYTES, MAGIC_V2, field};
use super::record::{RecordInput, encode_record};

/// Producer identity for an idempotent batch (Kafka's producer id, epoch and base sequence).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerFields {
    /// Producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
}

impl ProducerFields {
    /// A non-idempotent producer: every field -1, as Kafka writes it.
    pub const NONE: ProducerFields = ProducerFields {
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
    };
}

impl Default for ProducerFields {
    fn default() -> Self {
        Self::NONE
    }
}

/// Accumulates records and encodes them as one RecordBatch v2 with base offset 0 and leader
/// epoch -1; the log assigns both on append.
#[derive(Debug, Default)]
pub struct BatchBuilder {
    compression: Compression,
    producer: ProducerFields,
    /// Room for the header, then the encoded records.
    records: Vec<u8>,
    /// What the last batch's records took, reserved when the next one starts: the buffer is
    /// handed over (or, compressed, let go) with each batch, and growing a new one by doubling
    /// would copy it again.
    capacity_hint: usize,
    base_timestamp: i64,
    max_timestamp: i64,
    record_count: i32,
}

impl BatchBuilder {
    /// A builder for batches compressed with `compression`.
    pub fn new(compression: Compression) -> BatchBuilder {
        BatchBuilder {
            compression,
            producer: ProducerFields::NONE,
            ..BatchBuilder::default()
        }
    }

    /// Sets the producer fields of the next batch (reset to [`ProducerFields::NONE`] after each
    /// build, since a sequence number belongs to one batch).
    pub fn set_producer(&mut self, producer: ProducerFields) {
        self.producer = producer;
    }

    /// Adds a record; its offset delta is its position in the batch.
    ///
    /// # Errors
    /// [`BatchError::TooLargeToEncode`] when the record or batch outgrows the format's limits.
    pub fn push(&mut self, record: &RecordInput<'_>) -> Result<(), BatchError> {
        if self.record_count == i32::MAX {
            return Err(BatchError::TooLargeToEncode("more than i32::MAX records"));
        }
        if self.record_count == 0 {
            self.base_timestamp = record.timestamp_ms;
            self.max_timestamp = record.timestamp_ms;
        }
        self.max_timestamp = self.max_timestamp.max(record.timestamp_ms);
        let timestamp_delta = record.timestamp_ms.wrapping_sub(self.base_timestamp);
        if self.records.is_empty() {
            // Room for the header, written in place by `build`.
            self.records
                .reserve(self.capacity_hint.max(BATCH_HEADER_BYTES));
            self.records.resize(BATCH_HEADER_BYTES, 0);
        }
        encode_record(
            &mut self.records,
            record,
            timestamp_delta,
            self.record_count,
        )?;
        self.record_count += 1;
        Ok(())
    }

    /// Number of records pushed since the last build.
    pub fn record_count(&self) -> usize {
        self.record_count as usize
    }

    /// True when no record has been pushed since the last build.
    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    /// Uncompressed size of the batch if built now.
    pub fn uncompressed_bytes(&self) -> usize {
        self.records.len().max(BATCH_HEADER_BYTES)
    }

    /// Encodes the pushed records as one batch and resets the builder for the next one.
    ///
    /// # Errors
    /// [`BatchError::InconsistentHeader`] when no record was pushed, [`BatchError::Compress`],
    /// or [`BatchError::TooLargeToEncode`] past 2 GiB.
    pub fn build(&mut self) -> Result<Bytes, BatchError> {
        if self.record_count == 0 {
            return Err(BatchError::InconsistentHeader(
                "a batch needs at least one record",
            ));
        }
        let compression = self.compression;
        let header = HeaderFields {
            attributes: Attributes::default().with_compression(compression),
            last_offset_delta: self.record_count - 1,
            base_timestamp: self.base_timestamp,
            max_timestamp: self.max_timestamp,
            producer: self.producer,
            record_count: self.record_count,
        };
        let batch = if compression == Compression::None {
            // The records already follow room for the header: write it there and hand the
            // buffer over, instead of copying the whole batch behind a new header.
            let body_len = self.records.len() - BATCH_HEADER_BYTES;
            let head = header_bytes(&header, body_len)?;
            self.records[..BATCH_HEADER_BYTES].copy_from_slice(&head);
            seal_crc(&mut self.records);
            self.capacity_hint = self.records.len();
            Bytes::from(std::mem::take(&mut self.records))
        } else {
            let mut compressed = Vec::new();
            compress(
                compression,
                &self.records[BATCH_HEADER_BYTES..],
                &mut compressed,
            )?;
            let batch = assemble(&header, &compressed)?;
            // Only once the batch is built: a failed build keeps its records, as above.
            self.capacity_hint = self.records.len();
            self.records = Vec::new();
            batch
        };
        self.records.clear();
        self.record_count = 0;
        self.producer = ProducerFields::NONE;
        Ok(batch)
    }
}

/// Rewrites the producer id, epoch and base sequence of the encoded batch `batch` (exactly one
/// batch) in place and recomputes its CRC, which covers them.
///
/// A client that re-sequences batches it has already encoded (after a batch before them was
/// refused, or under a new producer id) uses this instead of encoding the records again.
/// Returns `false`, leaving `batch` untouched, if it is shorter than a batch header.
pub fn rewrite_producer_fields(batch: &mut [u8], producer: ProducerFields) -> bool {
    if batch.len() < BATCH_HEADER_BYTES {
        return false;
    }
    batch[field::PRODUCER_ID..field::PRODUCER_EPOCH]
        .copy_from_slice(&producer.producer_id.to_be_bytes());
    batch[field::PRODUCER_EPOCH..field::BASE_SEQUENCE]
        .copy_from_slice(&producer.producer_epoch.to_be_bytes());
    batch[field::BASE_SEQUENCE..field::RECORD_COUNT]
        .copy_from_slice(&producer.base_sequence.to_be_bytes());
    let crc = batch_crc(batch).unwrap_or(0);
    batch[field::CRC..field::ATTRIBUTES].copy_from_slice(&crc.to_be_bytes());
    true
}

/// Encodes a Cairn meta entry: a control batch with no records that takes no offset, carrying
/// `payload` where records would be (see `segments-format.md`, "Meta entries").
///
/// # Errors
/// [`BatchError::TooLargeToEncode`] past 2 GiB.
pub fn encode_meta_entry(payload: &[u8], timestamp_ms: i64) -> Result<Bytes, BatchError> {
    let header = HeaderFields {
        attributes: Attributes::default().with_control(),
        last_offset_delta: -1,
        base_timestamp: timestamp_ms,
        max_timestamp: timestamp_ms,
        producer: ProducerFields::NONE,
        record_count: 0,
    };
    assemble(&header, payload)
}

/// A batch laid out field by field, for tests and fuzz seeds that need what a producer may not
/// write: control batches, offset gaps left by compaction, deltas that are negative or out of
/// order. Production code encodes with [`BatchBuilder`].
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct HandBatch<'a> {
    /// The codec of the records section.
    pub compression: Compression,
    /// Sets the control bit (a transaction marker).
    pub control: bool,
    /// The `lastOffsetDelta` field.
    pub last_offset_delta: i32,
    /// Each record with the `offsetDelta` written for it.
    pub records: &'a [(i32, RecordInput<'a>)],
}

/// Encodes a [`HandBatch`] with a correct CRC; `baseTimestamp` is the first record's.
///
/// # Errors
/// As [`BatchBuilder::build`].
#[doc(hidden)]
pub fn encode_hand_batch(spec: &HandBatch<'_>) -> Result<Bytes, BatchError> {
    let base_timestamp = spec.records.first().map_or(0, |(_, r)| r.timestamp_ms);
    let mut max_timestamp = base_timestamp;
    let mut records = Vec::new();
    for (delta, record) in spec.records {
        max_timestamp = max_timestamp.max(record.timestamp_ms);
        let timestamp_delta = record.timestamp_ms.wrapping_sub(base_timestamp);
        encode_record(&mut records, record, timestamp_delta, *delta)?;
    }
    let mut body = Vec::new();
    let body = if spec.compression == Compression::None {
        records
    } else {
        compress(spec.compression, &records, &mut body)?;
        body
    };
    let mut attributes = Attributes::default().with_compression(spec.compression);
    if spec.control {
        attributes = attributes.with_control();
    }
    let record_count = i32::try_from(spec.records.len())
        .map_err(|_| BatchError::TooLargeToEncode("more than i32::MAX records"))?;
    let header = HeaderFields {
        attributes,
        last_offset_delta: spec.last_offset_delta,
        base_timestamp,
        max_timestamp,
        producer: ProducerFields::NONE,
        record_count,
    };
    assemble(&header, &body)
}

struct HeaderFields {
    attributes: Attributes,
    last_offset_delta: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer: ProducerFields,
    record_count: i32,
}

/// The header of a batch whose records section is `body_len` bytes, CRC left zero.
fn header_bytes(
    header: &HeaderFields,
    body_len: usize,
) -> Result<[u8; BATCH_HEADER_BYTES], BatchError> {
    let batch_length = i32::try_from(BATCH_HEADER_BYTES + body_len - LOG_OVERHEAD_BYTES)
        .map_err(|_| BatchError::TooLargeToEncode("batch longer than i32::MAX bytes"))?;
    let mut out = [0_u8; BATCH_HEADER_BYTES];
    let fields: [&[u8]; 13] = [
        &0i64.to_be_bytes(),
        &batch_length.to_be_bytes(),
        &(-1i32).to_be_bytes(),
        &[MAGIC_V2 as u8],
        &0u32.to_be_bytes(),
        &header.attributes.0.to_be_bytes(),
        &header.last_offset_delta.to_be_bytes(),
        &header.base_timestamp.to_be_bytes(),
        &header.max_timestamp.to_be_bytes(),
        &header.producer.producer_id.to_be_bytes(),
        &header.producer.producer_epoch.to_be_bytes(),
        &header.producer.base_sequence.to_be_bytes(),
        &header.record_count.to_be_bytes(),
    ];
    let mut at = 0;
    for field in fields {
        out[at..at + field.len()].copy_from_slice(field);
        at += field.len();
    }
    debug_assert_eq!(at, BATCH_HEADER_BYTES);
    Ok(out)
}

/// Computes the CRC of the whole batch in `batch` and writes it into its header.
fn seal_crc(batch: &mut [u8]) {
    let crc = batch_crc(batch).expect("the buffer holds a whole header");
    batch[field::CRC..field::ATTRIBUTES].copy_from_slice(&crc.to_be_bytes());
}

fn assemble(header: &HeaderFields, body: &[u8]) -> Result<Bytes, BatchError> {
    let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + body.len());
    out.extend_from_slice(&header_bytes(header, body.len())?);
    out.extend_from_slice(body);
    seal_crc(&mut out);
    Ok(Bytes::from(out))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    fn push_records(builder: &mut BatchBuilder, count: usize) {
        let value = vec![b'v'; 1000];
        for _ in 0..count {
            builder
                .push(&RecordInput {
                    key: None,
                    value: Some(&value),
                    headers: &[],
                    timestamp_ms: 1,
                })
                .unwrap();
        }
    }

    #[test]
    fn a_builder_between_batches_holds_no_buffer_whatever_its_compression() {
        for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let mut builder = BatchBuilder::new(compression);
            push_records(&mut builder, 200);
            let first = builder.build().unwrap();
            assert_eq!(builder.records.capacity(), 0, "{compression:?}");
            // The next batch reserves what the last one's records took, in one go.
            push_records(&mut builder, 1);
            assert!(builder.records.capacity() >= 200 * 1000, "{compression:?}");
            push_records(&mut builder, 199);
            let second = builder.build().unwrap();
            assert_eq!(
                first, second,
                "{compression:?}: the same records, the same batch"
            );
        }
    }
}

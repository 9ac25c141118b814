//! Encodes the records of stored batches straight into `FetchResponse.records` protobuf bytes,
//! for `Subscribe` answers in the decoded format.
//!
//! Why not build `cairn.v1.Record` values and let prost encode them: each record's key, value
//! and header values would be a `Bytes` sharing the segment map, and the reference counts of
//! those (an atomic increment and decrement apiece) plus prost's separate length pass took a
//! third of the broker's CPU in a decoded replay. Here each record is read in place from its
//! batch, measured and written once, and nothing is allocated per record.
//!
//! The bytes are exactly what prost writes for the same values (proto3: zero, empty and absent
//! fields are left out; a header key that is not UTF-8 is replaced lossily, as the unary
//! `Fetch` does); the tests hold the two against each other.

use bytes::{BufMut, BytesMut};
use cairn_broker::BrokerError;
use cairn_codec::Offset;
use cairn_codec::batch::{Batch, ConsumerBatch, ConsumerRecord};
use prost::encoding::{encode_varint, encoded_len_varint};

/// `FetchResponse.records`.
const RECORDS_FIELD_KEY: u8 = (4 << 3) | 2;
/// `Record.key`, `Record.value`, `Record.headers` (length-delimited).
const KEY_KEY: u8 = (1 << 3) | 2;
const VALUE_KEY: u8 = (2 << 3) | 2;
const HEADERS_KEY: u8 = (3 << 3) | 2;
/// `Record.timestamp_ms`, `Record.offset` (varint).
const TIMESTAMP_KEY: u8 = 4 << 3;
const OFFSET_KEY: u8 = 5 << 3;
/// `Header.key`, `Header.value` (length-delimited).
const HEADER_KEY_KEY: u8 = (1 << 3) | 2;
const HEADER_VALUE_KEY: u8 = (2 << 3) | 2;

/// Appends to `out`, as repeated `FetchResponse.records` fields, the records of `batches` at
/// or after offset `from` as a consumer sees them (`cairn_codec::batch::ConsumerBatch`: control
/// batches skipped, offset = base + delta); returns how many it wrote.
///
/// # Errors
/// [`BrokerError::CorruptRecords`] for a batch whose records cannot be decompressed (within
/// `decompress_limit`) or read, or whose offset deltas leave the batch.
pub(crate) fn encode_records(
    batches: impl Iterator<Item = Batch>,
    from: i64,
    decompress_limit: usize,
    out: &mut BytesMut,
) -> Result<u64, BrokerError> {
    // Every offset is at least 0, so a negative `from` wants them all, as 0 does.
    let from = Offset::from_i64(from).unwrap_or_default();
    let mut written = 0;
    for batch in batches {
        let base_offset = batch.base_offset();
        let corrupt = |reason| BrokerError::CorruptRecords {
            base_offset,
            reason,
        };
        let Some(batch) = ConsumerBatch::new(batch, from, decompress_limit).map_err(corrupt)?
        else {
            continue;
        };
        for record in batch.records() {
            let record = record.map_err(corrupt)?;
            let offset = record.offset.as_i64();
            let length = record_len(&record, offset);
            out.reserve(1 + encoded_len_varint(length as u64) + length);
            out.put_u8(RECORDS_FIELD_KEY);
            encode_varint(length as u64, out);
            put_record(&record, offset, out);
            written += 1;
        }
    }
    Ok(written)
}

/// The encoded length of one `Record` message (without its own key and length).
fn record_len(record: &ConsumerRecord<'_>, offset: i64) -> usize {
    let mut length = optional_bytes_len(record.key) + optional_bytes_len(record.value);
    for (key, value) in record.headers.iter() {
        let header = header_len(key, value);
        length += 1 + encoded_len_varint(header as u64) + header;
    }
    length + int64_len(record.timestamp_ms) + int64_len(offset)
}

fn put_record(record: &ConsumerRecord<'_>, offset: i64, out: &mut BytesMut) {
    put_optional_bytes(KEY_KEY, record.key, out);
    put_optional_bytes(VALUE_KEY, record.value, out);
    for (key, value) in record.headers.iter() {
        out.put_u8(HEADERS_KEY);
        encode_varint(header_len(key, value) as u64, out);
        let key = String::from_utf8_lossy(key);
        if !key.is_empty() {
            out.put_u8(HEADER_KEY_KEY);
            encode_varint(key.len() as u64, out);
            out.put_slice(key.as_bytes());
        }
        put_optional_bytes(HEADER_VALUE_KEY, value, out);
    }
    put_int64(TIMESTAMP_KEY, record.timestamp_ms, out);
    put_int64(OFFSET_KEY, offset, out);
}

fn header_len(key: &[u8], value: Option<&[u8]>) -> usize {
    // Only a key that is not UTF-8 changes length when made lossy; the check is cheap.
    let key_len = match std::str::from_utf8(key) {
        Ok(_) => key.len(),
        Err(_) => String::from_utf8_lossy(key).len(),
    };
    let key_field = if key_len == 0 {
        0
    } else {
        1 + encoded_len_varint(key_len as u64) + key_len
    };
    key_field + optional_bytes_len(value)
}

/// An `optional bytes` field: present (even empty) when `Some`.
fn optional_bytes_len(bytes: Option<&[u8]>) -> usize {
    bytes.map_or(0, |b| 1 + encoded_len_varint(b.len() as u64) + b.len())
}

fn put_optional_bytes(key: u8, bytes: Option<&[u8]>, out: &mut BytesMut) {
    if let Some(bytes) = bytes {
        out.put_u8(key);
        encode_varint(bytes.len() as u64, out);
        out.put_slice(bytes);
    }
}

/// A plain `int64` field: left out when zero; negative values take ten bytes, as in protobuf.
fn int64_len(value: i64) -> usize {
    if value == 0 {
        0
    } else {
        1 + encoded_len_varint(value as u64)
    }
}

fn put_int64(key: u8, value: i64, out: &mut BytesMut) {
    if value != 0 {
        out.put_u8(key);
        encode_varint(value as u64, out);
    }
}

#[cfg(test)]
mod tests;

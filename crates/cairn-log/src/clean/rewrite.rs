//! Re-encoding a batch the cleaner filtered: the original header with a new record count,
//! attributes and base timestamp, the kept records re-encoded with their original offset deltas,
//! compressed again with the batch's own codec, and a fresh CRC (`segments-format.md`,
//! "Compaction"). It never changes `baseOffset`, `lastOffsetDelta`, the producer fields or the
//! leader epoch, and it validates its own output before handing it back.

use bytes::Bytes;

use crate::batch::{
    Attributes, Batch, BatchError, Record, batch_crc, compress, field, write_varint, write_varlong,
};

/// Builds the cleaned version of `original` holding `records` (the kept records, already
/// re-encoded by [`encode_record`], uncompressed), `record_count` of them.
///
/// # Errors
/// [`BatchError`] if compression fails or the result does not validate (which would be a bug:
/// the caller then keeps the original batch).
pub(crate) fn rebuild_batch(
    original: &Batch,
    records: &[u8],
    record_count: i32,
    attributes: Attributes,
    base_timestamp: i64,
) -> Result<Batch, BatchError> {
    let header = original.header();
    let codec = attributes.compression()?;
    let head = original
        .bytes()
        .get(..field::RECORDS)
        .ok_or(BatchError::Truncated {
            available: original.len_bytes(),
            needed: field::RECORDS,
        })?;
    let mut out = Vec::with_capacity(field::RECORDS + records.len());
    out.extend_from_slice(head);
    compress(codec, records, &mut out)?;
    let too_large = || BatchError::TooLargeToEncode("cleaned batch longer than i32::MAX bytes");
    let batch_length = i32::try_from(out.len() - 12).map_err(|_| too_large())?;
    put(&mut out, field::BATCH_LENGTH, &batch_length.to_be_bytes());
    put(&mut out, field::ATTRIBUTES, &attributes.0.to_be_bytes());
    put(
        &mut out,
        field::BASE_TIMESTAMP,
        &base_timestamp.to_be_bytes(),
    );
    put(&mut out, field::RECORD_COUNT, &record_count.to_be_bytes());
    let crc = batch_crc(&out).ok_or_else(too_large)?;
    put(&mut out, field::CRC, &crc.to_be_bytes());
    let rebuilt = Batch::validate(Bytes::from(out))?;
    // The fields that offsets and producer state are rebuilt from must not move.
    let new = rebuilt.header();
    assert_eq!(
        (new.base_offset, new.last_offset_delta, new.producer_id),
        (
            header.base_offset,
            header.last_offset_delta,
            header.producer_id
        ),
        "a cleaned batch keeps its base offset, last offset delta and producer id"
    );
    assert_eq!(
        (new.base_sequence, new.producer_epoch, new.max_timestamp),
        (
            header.base_sequence,
            header.producer_epoch,
            header.max_timestamp
        ),
        "a cleaned batch keeps its sequence, producer epoch and max timestamp"
    );
    Ok(rebuilt)
}

/// Appends `record` to `out` in the records-section encoding (§2.4), with its timestamp delta
/// replaced by `timestamp_delta` and everything else as read.
///
/// # Errors
/// [`BatchError::TooLargeToEncode`] for a record whose length does not fit a varint.
pub(crate) fn encode_record(
    out: &mut Vec<u8>,
    record: &Record<'_>,
    timestamp_delta: i64,
) -> Result<(), BatchError> {
    let mut body = Vec::with_capacity(32);
    body.push(record.attributes as u8);
    write_varlong(&mut body, timestamp_delta);
    write_varint(&mut body, record.offset_delta);
    write_bytes(&mut body, record.key)?;
    write_bytes(&mut body, record.value)?;
    let header_count = i32::try_from(record.headers.len())
        .map_err(|_| BatchError::TooLargeToEncode("too many record headers"))?;
    write_varint(&mut body, header_count);
    for (key, value) in record.headers.iter() {
        write_bytes(&mut body, Some(key))?;
        write_bytes(&mut body, value)?;
    }
    let body_len = i32::try_from(body.len())
        .map_err(|_| BatchError::TooLargeToEncode("record longer than i32::MAX bytes"))?;
    write_varint(out, body_len);
    out.extend_from_slice(&body);
    Ok(())
}

fn write_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) -> Result<(), BatchError> {
    match bytes {
        None => write_varint(out, -1),
        Some(b) => {
            let len = i32::try_from(b.len())
                .map_err(|_| BatchError::TooLargeToEncode("field longer than i32::MAX bytes"))?;
            write_varint(out, len);
            out.extend_from_slice(b);
        }
    }
    Ok(())
}

fn put(out: &mut [u8], at: usize, bytes: &[u8]) {
    out[at..at + bytes.len()].copy_from_slice(bytes);
}

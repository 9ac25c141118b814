//! One record inside a batch, read in place: key, value and headers are slices of the batch's
//! (decompressed) records section, so iterating allocates nothing. Also the record encoder used
//! by [`super::BatchBuilder`].
//!
//! Every length comes from untrusted bytes, so each is checked against what remains of the
//! record before a slice is taken.

use super::error::BatchError;
use super::varint::{
    read_varint, read_varlong, varint_bytes, varlong_bytes, write_varint, write_varlong,
};

/// A record read in place from a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Record attributes (unused by Kafka today; kept as read).
    pub attributes: i8,
    /// Timestamp minus the batch's base timestamp.
    pub timestamp_delta: i64,
    /// Offset minus the batch's base offset.
    pub offset_delta: i32,
    /// The key, or `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// The value, or `None` for a null value (a tombstone).
    pub value: Option<&'a [u8]>,
    /// The record headers.
    pub headers: Headers<'a>,
}

/// The headers of one record, iterated in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Headers<'a> {
    count: u32,
    raw: &'a [u8],
}

impl<'a> Headers<'a> {
    /// How many headers the record has.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when the record has no headers.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Iterates `(key, value)` pairs; a null header value is `None`. The bytes were checked
    /// when the record was read, so iteration cannot fail.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + use<'a> {
        let mut rest = self.raw;
        (0..self.count).map_while(move |_| {
            let (key, after_key) = read_bytes(rest).ok()?;
            let (value, after_value) = read_bytes(after_key).ok()?;
            rest = after_value;
            Some((key.unwrap_or_default(), value))
        })
    }
}

/// Iterates the records of an uncompressed records section.
#[derive(Clone, Debug)]
pub struct RecordIter<'a> {
    rest: &'a [u8],
    remaining: u32,
    record_idx: u32,
    failed: bool,
}

impl<'a> RecordIter<'a> {
    /// Iterates `record_count` records from `records` (the bytes after the 61-byte header, after
    /// decompression). Bytes left over after the last record are reported as an error.
    pub fn new(records: &'a [u8], record_count: u32) -> RecordIter<'a> {
        RecordIter {
            rest: records,
            remaining: record_count,
            record_idx: 0,
            failed: false,
        }
    }

    fn malformed(&mut self, reason: &'static str) -> Option<Result<Record<'a>, BatchError>> {
        self.failed = true;
        Some(Err(BatchError::MalformedRecord {
            record_idx: self.record_idx,
            reason,
        }))
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.remaining == 0 {
            if self.rest.is_empty() {
                return None;
            }
            return self.malformed("bytes left after the last record");
        }
        match read_record(self.rest, self.record_idx) {
            Ok((record, used)) => {
                self.rest = &self.rest[used..];
                self.remaining -= 1;
                self.record_idx += 1;
                Some(Ok(record))
            }
            Err(err) => {
                self.failed = true;
                Some(Err(err))
            }
        }
    }
}

/// Reads the one record at the start of `records` (a records section, or what is left of it)
/// and says how many bytes it took, so a reader can keep its own place between records
/// instead of holding a [`RecordIter`]. `record_idx` only labels the error.
///
/// # Errors
/// [`BatchError::MalformedRecord`] when the record's lengths or fields do not fit its bytes.
#[inline]
pub fn read_record(records: &[u8], record_idx: u32) -> Result<(Record<'_>, usize), BatchError> {
    let malformed = |reason| BatchError::MalformedRecord { record_idx, reason };
    let (length, used) = read_varint(records).ok_or(malformed("bad record length varint"))?;
    let length = usize::try_from(length).map_err(|_| malformed("negative record length"))?;
    let end = used
        .checked_add(length)
        .ok_or(malformed("record length overflows"))?;
    let body = records
        .get(used..end)
        .ok_or(malformed("record length past the end of the batch"))?;
    let record = parse_body(body).map_err(malformed)?;
    Ok((record, end))
}

#[inline]
fn parse_body(body: &[u8]) -> Result<Record<'_>, &'static str> {
    let (&attributes, rest) = body.split_first().ok_or("empty record")?;
    let (timestamp_delta, used) = read_varlong(rest).ok_or("bad timestamp delta")?;
    let rest = &rest[used..];
    let (offset_delta, used) = read_varint(rest).ok_or("bad offset delta")?;
    let rest = &rest[used..];
    let (key, rest) = read_bytes(rest)?;
    let (value, rest) = read_bytes(rest)?;
    let (header_count, used) = read_varint(rest).ok_or("bad header count")?;
    let header_count = u32::try_from(header_count).map_err(|_| "negative header count")?;
    let raw = &rest[used..];
    let mut walk = raw;
    for _ in 0..header_count {
        let (key, after_key) = read_bytes(walk)?;
        if key.is_none() {
            return Err("null header key");
        }
        let (_, after_value) = read_bytes(after_key)?;
        walk = after_value;
    }
    if !walk.is_empty() {
        return Err("bytes left after the record's headers");
    }
    let headers = Headers {
        count: header_count,
        raw,
    };
    Ok(Record {
        attributes: attributes as i8,
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers,
    })
}

/// Reads a varint length then that many bytes; length -1 is null.
#[inline]
fn read_bytes(buf: &[u8]) -> Result<(Option<&[u8]>, &[u8]), &'static str> {
    let (length, used) = read_varint(buf).ok_or("bad length varint")?;
    let rest = &buf[used..];
    if length == -1 {
        return Ok((None, rest));
    }
    let length = usize::try_from(length).map_err(|_| "negative length")?;
    let bytes = rest
        .get(..length)
        .ok_or("length past the end of the record")?;
    Ok((Some(bytes), &rest[length..]))
}

/// A record to encode: what a producer hands to [`super::BatchBuilder`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordInput<'a> {
    /// Key, or `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// Value, or `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    /// Headers as `(key, value)` pairs.
    pub headers: &'a [(&'a [u8], Option<&'a [u8]>)],
    /// Create time in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// Appends one encoded record to `out`.
pub(crate) fn encode_record(
    out: &mut Vec<u8>,
    record: &RecordInput<'_>,
    timestamp_delta: i64,
    offset_delta: i32,
) -> Result<(), BatchError> {
    let too_large = || BatchError::TooLargeToEncode("record longer than i32::MAX bytes");
    let mut body_bytes = 1 + varlong_bytes(timestamp_delta) + varint_bytes(offset_delta);
    body_bytes += encoded_bytes_len(record.key).ok_or_else(too_large)?;
    body_bytes += encoded_bytes_len(record.value).ok_or_else(too_large)?;
    let header_count = i32::try_from(record.headers.len()).map_err(|_| too_large())?;
    body_bytes += varint_bytes(header_count);
    for (key, value) in record.headers {
        body_bytes += encoded_bytes_len(Some(key)).ok_or_else(too_large)?;
        body_bytes += encoded_bytes_len(*value).ok_or_else(too_large)?;
    }
    let body_len = i32::try_from(body_bytes).map_err(|_| too_large())?;
    out.reserve(varint_bytes(body_len) + body_bytes);
    write_varint(out, body_len);
    out.push(0);
    write_varlong(out, timestamp_delta);
    write_varint(out, offset_delta);
    write_bytes(out, record.key);
    write_bytes(out, record.value);
    write_varint(out, header_count);
    for (key, value) in record.headers {
        write_bytes(out, Some(key));
        write_bytes(out, *value);
    }
    Ok(())
}

fn encoded_bytes_len(bytes: Option<&[u8]>) -> Option<usize> {
    match bytes {
        None => Some(varint_bytes(-1)),
        Some(b) => Some(varint_bytes(i32::try_from(b.len()).ok()?) + b.len()),
    }
}

fn write_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => write_varint(out, -1),
        Some(b) => {
            // Lengths were checked to fit i32 by `encoded_bytes_len` before writing began.
            write_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

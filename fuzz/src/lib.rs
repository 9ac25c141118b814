//! Shared pieces of Cairn's fuzz targets: the decompression limit they read under, an allocator
//! that turns any oversized allocation into a crash, a walker that touches every part of a
//! validated batch and cross-checks the decoder's answers against each other, a header builder
//! that wraps arbitrary bytes in a batch with a correct CRC, a round-trip check for the text
//! formats ([`check_round_trip`]), and ([`log_dir`]) a real partition directory whose index and
//! checkpoint files the file targets damage.
//!
//! It checks behaviour only through `cairn_codec::batch`'s public API, so a finding here is a bug a
//! broker could hit. The invariant every target relies on: a decoder given bad bytes returns an
//! error. A panic, an abort or an allocation past [`MAX_ALLOC_BYTES`] is a finding.

pub mod log_dir;

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Debug;
use std::hint::black_box;

use bytes::Bytes;
use cairn_codec::batch::{
    BATCH_HEADER_BYTES, Batch, BatchError, ConsumerBatch, LOG_OVERHEAD_BYTES, MAGIC_V2,
    MAX_BATCH_BYTES, batch_crc, field, rewrite_assigned_fields,
};
use cairn_codec::{LeaderEpoch, Offset};

/// Decompression limit the targets pass to `records` and `check_records`. Small, so a
/// decompression bomb is cut off quickly instead of slowing every run down.
pub const DECOMPRESS_LIMIT_BYTES: usize = 1 << 20;

/// Largest single allocation a target may make. Legitimate ones are bounded by the format, not by
/// the input: the decompressed section (under 2 x [`DECOMPRESS_LIMIT_BYTES`] after `Vec`
/// doubling) and LZ4's block buffers (a frame's block size is at most 4 MiB). An allocation
/// sized from a length field in the input would pass this, and fails as an out-of-memory abort
/// that libFuzzer records as a crash, with the input that caused it.
pub const MAX_ALLOC_BYTES: usize = 16 << 20;

const _: () = assert!(2 * DECOMPRESS_LIMIT_BYTES < MAX_ALLOC_BYTES);

/// The system allocator, refusing any single request above [`MAX_ALLOC_BYTES`]. Refusing (a null
/// pointer) makes Rust abort with "memory allocation of N bytes failed", which names the size.
///
/// Allocations made in C (the zstd library) do not pass through here; run with
/// `-s address -- -malloc_limit_mb=..` to cap those too.
pub struct CappedAllocator;

// SAFETY: every method forwards to `System` unchanged, or returns null, which `GlobalAlloc`
// allows for any request it cannot satisfy.
unsafe impl GlobalAlloc for CappedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOC_BYTES {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOC_BYTES {
            return std::ptr::null_mut();
        }
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOC_BYTES {
            return std::ptr::null_mut();
        }
        // SAFETY: as in `dealloc`; a null return leaves the old block allocated, as required.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Touches everything a reader of `batch` can reach (header accessors, the meta payload, every
/// record, every header of every record) and asserts that the decoder's answers agree:
///
/// - the header's `total_bytes` is the batch's size, and a meta entry is exactly a batch with a
///   meta payload, which is everything after the 61-byte header;
/// - `check_records` succeeds exactly when walking `records().iter()` yields `recordCount`
///   records, no error, and offset deltas 0, 1, 2, ...;
/// - no decompressed section is larger than [`DECOMPRESS_LIMIT_BYTES`];
/// - each record's `headers.iter()` yields `headers.len()` pairs (they were checked at parse);
/// - rewriting `baseOffset` and `partitionLeaderEpoch` keeps the batch valid (both are outside
///   the CRC, `segments-format.md` section 2.1) and matches `assigned_prefix`.
///
/// Returns what the walk found, so a caller can compare batches without decompressing again.
pub fn walk_batch(batch: &Batch) -> Walk {
    let header = batch.header();
    assert_eq!(header.total_bytes(), Some(batch.len_bytes()));
    let _ = (
        batch.compression(),
        batch.offset_count(),
        batch.base_offset(),
    );
    let _ = (
        batch.leader_epoch(),
        header.last_offset(),
        batch.check_producible(),
    );

    assert_eq!(batch.is_meta(), batch.meta_payload().is_some());
    if let Some(payload) = batch.meta_payload() {
        assert_eq!(payload.len(), batch.len_bytes() - BATCH_HEADER_BYTES);
    }

    let checked = batch.check_records(DECOMPRESS_LIMIT_BYTES);
    let section = match batch.records(DECOMPRESS_LIMIT_BYTES) {
        Ok(records) => {
            if batch.compression().code() != 0 {
                assert!(records.as_bytes().len() <= DECOMPRESS_LIMIT_BYTES);
            }
            let walked_ok = walk_records(&records, batch.record_count());
            assert_eq!(
                checked.is_ok(),
                walked_ok,
                "check_records said {checked:?} but walking the records said ok = {walked_ok}"
            );
            Ok(records.as_bytes().clone())
        }
        Err(err) => {
            let _ = err.to_string();
            assert_eq!(
                checked,
                Err(err.clone()),
                "records and check_records disagree"
            );
            Err(err)
        }
    };
    check_rewrite_keeps_valid(batch);
    check_consumer_view(batch, checked.is_ok());
    Walk { checked, section }
}

/// What [`walk_batch`] found in one batch.
#[derive(Clone, Debug)]
pub struct Walk {
    /// The result of `check_records` under [`DECOMPRESS_LIMIT_BYTES`].
    pub checked: Result<(), BatchError>,
    /// The records section as `records` returned it (decompressed), or its error.
    pub section: Result<Bytes, BatchError>,
}

/// Walks every record and header; true when the walk is what `check_records` accepts.
fn walk_records(records: &cairn_codec::batch::Records, record_count: u32) -> bool {
    let mut ok_count: u32 = 0;
    let mut in_sequence = true;
    let mut failed = false;
    for (record_idx, item) in records.iter().enumerate() {
        assert!(!failed, "the iterator yielded an item after an error");
        match item {
            Ok(record) => {
                ok_count += 1;
                in_sequence &= i64::from(record.offset_delta) == record_idx as i64;
                // black_box keeps the reads: the walk is only useful if every slice is touched.
                black_box((record.attributes, record.timestamp_delta));
                black_box((record.key.map(<[u8]>::len), record.value.map(<[u8]>::len)));
                let mut header_count = 0;
                for (key, value) in record.headers.iter() {
                    black_box((key.first(), value.and_then(<[u8]>::last)));
                    header_count += 1;
                }
                assert_eq!(header_count, record.headers.len());
                assert_eq!(record.headers.is_empty(), header_count == 0);
            }
            Err(err) => {
                let _ = err.to_string();
                failed = true;
            }
        }
    }
    if !failed {
        assert_eq!(
            ok_count, record_count,
            "a clean walk must yield every record"
        );
    }
    !failed && in_sequence
}

/// A record as the consumer walk yields it: offset, key, value, headers.
type Seen<'a> = (
    Offset,
    Option<&'a [u8]>,
    Option<&'a [u8]>,
    Vec<(&'a [u8], Option<&'a [u8]>)>,
);

/// Walks `batch` as a consumer sees it (`ConsumerBatch`, the rule the broker, the server and
/// the client share) and checks it against the plain record walk: control batches and meta
/// entries yield nothing; otherwise each record is the plain walk's, at `base + delta`, inside
/// the batch and strictly increasing; a batch `check_records` accepts yields every record
/// without error; and a walk from an offset inside the batch yields exactly the records of the
/// whole walk at or after it, stopping at the same error.
fn check_consumer_view(batch: &Batch, records_checked: bool) {
    let header = batch.header();
    let base = batch.base_offset();
    let whole = ConsumerBatch::new(batch.clone(), base, DECOMPRESS_LIMIT_BYTES);
    if header.attributes.is_control() {
        assert!(matches!(whole, Ok(None)), "a control batch yielded records");
        return;
    }
    let (whole, records) = match (whole, batch.records(DECOMPRESS_LIMIT_BYTES)) {
        (Ok(Some(whole)), Ok(records)) => (whole, records),
        (Err(view), Err(plain)) => {
            assert_eq!(view, plain, "the two walks failed differently");
            return;
        }
        (view, plain) => panic!(
            "the consumer walk ({:?}) and the record walk ({:?}) disagree on the batch",
            view.map(|v| v.is_some()),
            plain.map(|_| ())
        ),
    };
    let (seen, failed) = consumer_walk(&whole);
    let mut plain = records.iter();
    let mut previous: Option<Offset> = None;
    for (offset, key, value, headers) in &seen {
        let raw = match plain.next() {
            Some(Ok(raw)) => raw,
            other => panic!("the consumer walk yielded a record the plain walk has not: {other:?}"),
        };
        assert_eq!((*key, *value), (raw.key, raw.value));
        assert_eq!(*headers, raw.headers.iter().collect::<Vec<_>>());
        let delta =
            u64::try_from(raw.offset_delta).expect("a yielded record's delta is not negative");
        assert_eq!(*offset, base.plus(delta));
        assert!(
            offset.as_i64() <= header.last_offset(),
            "offset {offset} past the batch"
        );
        assert!(
            previous.is_none_or(|p| p < *offset),
            "offsets went back at {offset}"
        );
        previous = Some(*offset);
    }
    if records_checked {
        assert!(
            !failed,
            "the consumer walk refused a batch check_records accepts"
        );
        assert_eq!(seen.len(), batch.record_count() as usize);
    }
    let middle = base.plus(u64::try_from(header.last_offset_delta / 2).unwrap_or(0));
    let part = match ConsumerBatch::new(batch.clone(), middle, DECOMPRESS_LIMIT_BYTES) {
        Ok(Some(part)) => part,
        other => panic!("a walk from inside the batch found nothing: {other:?}"),
    };
    let (part_seen, part_failed) = consumer_walk(&part);
    let expected: Vec<&Seen<'_>> = seen.iter().filter(|r| r.0 >= middle).collect();
    assert_eq!(part_seen.iter().collect::<Vec<_>>(), expected);
    assert_eq!(
        part_failed, failed,
        "the walk from {middle} ended differently"
    );
}

/// The records a consumer walk yields, and whether it ended at an error.
fn consumer_walk(batch: &ConsumerBatch) -> (Vec<Seen<'_>>, bool) {
    let mut seen = Vec::new();
    for item in batch.records() {
        match item {
            Ok(record) => seen.push((
                record.offset,
                record.key,
                record.value,
                record.headers.iter().collect(),
            )),
            Err(err) => {
                let _ = err.to_string();
                return (seen, true);
            }
        }
    }
    (seen, false)
}

fn check_rewrite_keeps_valid(batch: &Batch) {
    let (offset, epoch) = (Offset(42), LeaderEpoch(7));
    let mut copy = batch.bytes().to_vec();
    assert!(rewrite_assigned_fields(&mut copy, offset, epoch));
    assert_eq!(
        copy.get(..16),
        Some(&batch.assigned_prefix(offset, epoch)[..])
    );
    let rewritten = match Batch::validate(Bytes::from(copy)) {
        Ok(rewritten) => rewritten,
        Err(err) => panic!("rewriting the assigned fields broke a valid batch: {err}"),
    };
    assert_eq!(rewritten.base_offset(), offset);
    assert_eq!(rewritten.leader_epoch(), epoch);
}

/// The header fields [`wrap_records`] writes; the rest are fixed (base offset 0, leader epoch
/// -1, no producer id).
#[derive(Clone, Copy, Debug)]
pub struct HeaderSpec {
    /// Attribute bits, including the codec in bits 0-2.
    pub attributes: i16,
    /// `lastOffsetDelta`.
    pub last_offset_delta: i32,
    /// `recordCount`.
    pub record_count: i32,
    /// `baseTimestamp`; `maxTimestamp` is set to the same value.
    pub base_timestamp: i64,
}

/// Wraps `section` as the records section of a RecordBatch v2 with the given header fields and
/// a correct CRC (`segments-format.md` section 2.1). Returns `None` if the batch would be longer
/// than [`MAX_BATCH_BYTES`], which libFuzzer's input sizes never reach.
pub fn wrap_records(spec: &HeaderSpec, section: &[u8]) -> Option<Bytes> {
    let total = BATCH_HEADER_BYTES.checked_add(section.len())?;
    if total - LOG_OVERHEAD_BYTES > MAX_BATCH_BYTES {
        return None;
    }
    let batch_length = i32::try_from(total - LOG_OVERHEAD_BYTES).ok()?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&0i64.to_be_bytes());
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&spec.attributes.to_be_bytes());
    out.extend_from_slice(&spec.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&spec.base_timestamp.to_be_bytes());
    out.extend_from_slice(&spec.base_timestamp.to_be_bytes());
    out.extend_from_slice(&(-1i64).to_be_bytes());
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out.extend_from_slice(&spec.record_count.to_be_bytes());
    assert_eq!(
        out.len(),
        BATCH_HEADER_BYTES,
        "header fields add up to 61 bytes"
    );
    out.extend_from_slice(section);
    let crc = batch_crc(&out)?;
    out.get_mut(field::CRC..field::ATTRIBUTES)?
        .copy_from_slice(&crc.to_be_bytes());
    Some(Bytes::from(out))
}

/// Parses `text` with `parse`; when it parses, asserts that the value written back with `write`
/// parses to the same value (`what` names the value in the panic). Returns the refusal when
/// `text` does not parse, for the target to check as its parser promises.
pub fn check_round_trip<T, E>(
    text: &str,
    parse: impl Fn(&str) -> Result<T, E>,
    write: impl Fn(&T) -> String,
    what: &str,
) -> Option<E>
where
    T: PartialEq + Debug,
    E: Debug,
{
    match parse(text) {
        Ok(value) => {
            let again = parse(&write(&value));
            assert!(
                again.as_ref().is_ok_and(|again| *again == value),
                "{what} did not round-trip: {again:?}"
            );
            None
        }
        Err(err) => Some(err),
    }
}

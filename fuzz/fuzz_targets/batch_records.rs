//! Fuzz target `batch_records`: arbitrary bytes as the *records section* of a batch, behind a
//! header with a correct CRC, so the fuzzer's mutations reach the record, header and
//! decompression code instead of stopping at the CRC check.
//!
//! Input layout: byte 0 is `recordCount` (0-255); byte 1 holds attribute bits 3-7 (timestamp
//! type, transactional, control, delete horizon) and, in bits 0-2, how many offsets past
//! `recordCount - 1` `lastOffsetDelta` reaches (compaction gaps); the rest is the section. A
//! section with no records and no offsets gets the control bit, so it is a meta entry.
//!
//! For every codec code 0-4 the section is wrapped twice: as it is, so each decompressor meets
//! garbage, and compressed with that codec, so the records decoder meets the fuzzed records
//! behind every codec. It checks that every wrapped batch validates, that nothing panics or
//! allocates past `cairn_fuzz::MAX_ALLOC_BYTES`, that the compressed batch decompresses to the
//! section exactly, and that `check_records` gives the same answer behind every codec.

#![no_main]

use cairn_codec::batch::{Batch, BatchError, Compression, compress};
use cairn_fuzz::{CappedAllocator, DECOMPRESS_LIMIT_BYTES, HeaderSpec, walk_batch, wrap_records};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

const CODEC_BITS: i16 = 0x07;
const CONTROL_BIT: i16 = 0x20;

fuzz_target!(|data: &[u8]| {
    let [record_count, flags, section @ ..] = data else {
        return;
    };
    let record_count = i32::from(*record_count);
    let offset_gap = i32::from(flags & 0x07);
    let last_offset_delta = record_count - 1 + offset_gap;
    let mut attributes = i16::from(*flags) & !CODEC_BITS;
    if last_offset_delta == -1 {
        // A batch covering no offset is valid only as a meta entry (segments-format.md, 2.5).
        attributes |= CONTROL_BIT;
    }
    let spec = HeaderSpec {
        attributes,
        last_offset_delta,
        record_count,
        base_timestamp: 1_700_000_000_000,
    };

    let plain = walk_batch(&validate_wrapped(&spec, section, Compression::None));

    for code in 1..=4 {
        let codec = Compression::from_code(code).expect("codes 1-4 are Kafka's codecs");
        walk_batch(&validate_wrapped(&spec, section, codec));

        let mut compressed = Vec::new();
        compress(codec, section, &mut compressed).expect("compressing into a Vec cannot fail");
        let batch = validate_wrapped(&spec, &compressed, codec);
        let walk = walk_batch(&batch);
        if batch.is_meta() {
            continue;
        }
        if section.len() > DECOMPRESS_LIMIT_BYTES {
            let too_large = matches!(walk.section, Err(BatchError::DecompressedTooLarge { .. }));
            assert!(too_large, "{codec:?} passed the limit: {:?}", walk.section);
            continue;
        }
        match walk.section {
            Ok(decompressed) => assert_eq!(decompressed.as_ref(), section, "{codec:?}"),
            Err(err) => panic!(
                "{codec:?} did not round-trip {} bytes: {err}",
                section.len()
            ),
        }
        assert_eq!(
            walk.checked, plain.checked,
            "{codec:?} changed check_records"
        );
    }
});

/// Wraps `section` under `spec` with `codec`'s bits and validates it, which must succeed: the
/// header is consistent and the CRC is correct whatever the section holds.
fn validate_wrapped(spec: &HeaderSpec, section: &[u8], codec: Compression) -> Batch {
    let spec = HeaderSpec {
        attributes: spec.attributes | i16::from(codec.code()),
        ..*spec
    };
    let bytes = wrap_records(&spec, section).expect("libFuzzer inputs are far below 1 GiB");
    match Batch::validate(bytes) {
        Ok(batch) => batch,
        Err(err) => panic!("a batch wrapped with a correct CRC failed validation: {err}"),
    }
}

//! Fuzz target `batch_decode`: arbitrary bytes as they could arrive from a producer or sit in a
//! damaged `.log` file, fed to every entry point of the RecordBatch v2 decoder: `frame_len`,
//! `BatchHeader::parse`, `Batch::validate` and `Batch::validate_prefix`. The buffer is then
//! scanned as a segment scan would, batch after batch, and every batch that validates is walked
//! to its last record and header under a 1 MiB decompression limit (`cairn_fuzz::walk_batch`).
//!
//! It checks that none of this panics or allocates past `cairn_fuzz::MAX_ALLOC_BYTES`, and that
//! the entry points agree: a valid prefix has the size `frame_len` gave and the header `parse`
//! gave, and `validate` of the whole buffer succeeds exactly when the prefix is the whole buffer.
//! Random bytes rarely carry a correct CRC; `batch_records` covers the records behind it.

#![no_main]

use bytes::{Buf, Bytes};
use cairn_codec::batch::{Batch, BatchHeader, frame_len};
use cairn_fuzz::{CappedAllocator, walk_batch};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

fuzz_target!(|data: &[u8]| {
    let buf = Bytes::copy_from_slice(data);
    let framed = frame_len(&buf);
    let parsed = BatchHeader::parse(&buf);
    if let (Ok(total), Ok(header)) = (&framed, &parsed) {
        assert_eq!(header.total_bytes(), Some(*total));
    }

    let whole = Batch::validate(buf.clone());
    match Batch::validate_prefix(&buf) {
        Ok(prefix) => {
            assert_eq!(framed.as_ref().ok(), Some(&prefix.len_bytes()));
            assert_eq!(parsed.as_ref().ok(), Some(prefix.header()));
            if prefix.len_bytes() == buf.len() {
                assert_eq!(whole.as_ref().ok(), Some(&prefix));
            } else {
                assert!(
                    whole.is_err(),
                    "validate accepted a buffer with trailing bytes"
                );
            }
        }
        Err(err) => {
            let _ = err.to_string();
            assert!(
                whole.is_err(),
                "validate accepted what validate_prefix refused"
            );
        }
    }

    // Scan the buffer as recovery scans a segment: each valid batch, then the next one after it.
    // Every batch is at least 61 bytes, so the loop ends after at most len / 61 batches.
    let mut rest = buf;
    while let Ok(batch) = Batch::validate_prefix(&rest) {
        walk_batch(&batch);
        rest.advance(batch.len_bytes());
    }
});

//! Fuzz target `node_meta`: arbitrary bytes as a data directory's `node.meta`
//! (`segments-format.md` §16, `cairn-broker` `node_meta.rs`), which the broker decodes at
//! start before it opens anything else.
//!
//! It checks that decoding never panics or over-allocates, and that the decoder accepts exactly
//! the files the encoder writes: whatever decodes encodes back to the very same bytes, so no two
//! files mean one identity and no bit escapes the checks.

#![no_main]

use cairn_broker::node_meta::NodeMeta;
use cairn_fuzz::CappedAllocator;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

fuzz_target!(|data: &[u8]| {
    match NodeMeta::decode(data) {
        Ok(identity) => assert_eq!(
            &identity.encode()[..],
            data,
            "a decoded node.meta did not encode back to its bytes"
        ),
        Err(reason) => assert!(!reason.is_empty(), "a refusal without a reason"),
    }
});

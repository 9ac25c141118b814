//! Fuzz target `offset_record`: arbitrary bytes as the key and as the value of a
//! `__consumer_offsets` record (Kafka's `OffsetCommitKey` v0/v1 and `OffsetCommitValue` v3,
//! `cairn-broker` `group/offset_record.rs`), which the broker decodes from disk at start.
//!
//! It checks that decoding never panics or over-allocates, and that whatever decodes survives
//! a round trip: encoding the decoded key or value and decoding that gives it back.

#![no_main]

use cairn_broker::fuzzing::{DecodedKey, decode_key, decode_value, encode_key, encode_value};
use cairn_fuzz::CappedAllocator;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

fuzz_target!(|data: &[u8]| {
    match decode_key(data) {
        Ok(DecodedKey::Offset(key)) => {
            let again = decode_key(&encode_key(&key));
            assert_eq!(
                again,
                Ok(DecodedKey::Offset(key)),
                "a key did not round-trip"
            );
        }
        Ok(DecodedKey::GroupMetadata) => {}
        Err(err) => {
            let _ = err.to_string();
        }
    }
    match decode_value(data) {
        Ok(value) => {
            let again = decode_value(&encode_value(&value));
            assert_eq!(again, Ok(value), "a value did not round-trip");
        }
        Err(err) => {
            let _ = err.to_string();
        }
    }
});

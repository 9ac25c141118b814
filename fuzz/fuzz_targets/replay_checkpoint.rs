//! Fuzz target `replay_checkpoint`: arbitrary text as a replay checkpoint file (`cairn replay
//! --checkpoint`, `cairn-client` `replay/checkpoint.rs`: a `topic` line and `partition offset`
//! lines), parsed by `Checkpoint::parse` as the CLI does after reading the file as UTF-8.
//!
//! It checks that parsing never panics or over-allocates, that a refusal is a typed error with
//! a message, and that whatever parses survives a round trip through `to_text`.

#![no_main]

use cairn_client::Checkpoint;
use cairn_fuzz::{CappedAllocator, check_round_trip};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(err) =
        check_round_trip(text, Checkpoint::parse, Checkpoint::to_text, "a checkpoint")
    {
        assert!(!err.to_string().is_empty());
    }
});

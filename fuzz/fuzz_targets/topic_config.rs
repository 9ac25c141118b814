//! Fuzz target `topic_config`: arbitrary text as a topic file (`DATA/<topic>.topic`: a
//! `partitions=N` line and `key=value` config lines, `cairn-broker` `topic_store.rs` and
//! `topic_config.rs`), decoded as the broker decodes it at start, and as a bare config text.
//! The file is read as UTF-8 text, so other bytes never reach the parser.
//!
//! It checks that parsing never panics or over-allocates, and that whatever parses survives a
//! round trip: the config written back as the broker writes it parses to the same config.

#![no_main]

use cairn_broker::TopicConfig;
use cairn_broker::fuzzing::parse_topic_file;
use cairn_fuzz::{CappedAllocator, check_round_trip};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let defaults = TopicConfig::default();
    match parse_topic_file(text, &defaults) {
        Ok((partition_count, config)) => {
            let written = format!("partitions={partition_count}\n{}", config.to_file_text());
            assert_eq!(
                parse_topic_file(&written, &defaults),
                Ok((partition_count, config)),
                "a topic file did not round-trip"
            );
        }
        Err(reason) => assert!(!reason.is_empty()),
    }
    if let Some(err) = check_round_trip(
        text,
        TopicConfig::from_file_text,
        TopicConfig::to_file_text,
        "a config text",
    ) {
        let _ = err.to_string();
    }
});

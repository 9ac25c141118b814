//! Narrow entry points for the `fuzz/` targets into decoders that are otherwise private: the
//! records of `__consumer_offsets` and the text of a topic file. Not an API: hidden from the
//! docs, and free to change with the decoders. Each takes bytes as read from disk and returns
//! the decoder's own answer, so a fuzzer checks exactly what the broker runs.

use crate::TopicConfig;
pub use crate::group::offset_record::{
    DecodedKey, OffsetKey, OffsetRecordError, decode_key, decode_value, encode_key, encode_value,
};

/// A topic file's text as `load_topics` decodes it: the partition count and the configs over
/// `defaults`, or the reason it is unreadable.
///
/// # Errors
/// The reason, as the start-up error would name it.
pub fn parse_topic_file(text: &str, defaults: &TopicConfig) -> Result<(u32, TopicConfig), String> {
    crate::topic_store::parse_topic_text(text, defaults)
}

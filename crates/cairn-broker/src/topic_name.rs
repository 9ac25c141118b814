//! Kafka's topic-name rules (`org.apache.kafka.common.internals.Topic.validate`): 1 to 249
//! characters, each an ASCII letter or digit, `.`, `_` or `-`, and not `.` or `..`. A topic's
//! name becomes its partition directories' names (`<topic>-<partition>`), so these rules are
//! also what keeps a name from escaping the data directory.
//!
//! Also here: the internal-topic convention (names starting with `__`) and Kafka's warning that
//! `.` and `_` collide in metric names. Whether a client may create or write an internal topic is
//! the broker's decision, not this module's.

use std::fmt;

use crate::error::BrokerError;

/// Longest topic name, in characters. Kafka's limit: a partition directory
/// `<topic>-<partition>` (plus a suffix while it is being deleted) must fit a 255-byte file name.
pub const MAX_TOPIC_NAME_CHARS: usize = 249;

/// Names starting with this are internal topics, kept by the broker itself.
pub const INTERNAL_TOPIC_PREFIX: &str = "__";

/// The internal, compacted topic that holds consumer groups' committed offsets.
pub const CONSUMER_OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Which of Kafka's topic-name rules a name breaks. Checked in Kafka's order, so the same name
/// gets the same reason from Cairn as from Kafka.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    /// The name is empty.
    #[error("a topic name can't be empty")]
    Empty,
    /// The name is `.` or `..`, which would name the data directory or its parent.
    #[error("a topic name can't be \".\" or \"..\"")]
    Reserved,
    /// The name has more than [`MAX_TOPIC_NAME_CHARS`] characters.
    #[error("the name is {char_count} characters long; at most {MAX_TOPIC_NAME_CHARS} are allowed")]
    TooLong {
        /// Characters in the name.
        char_count: usize,
    },
    /// The name holds a character outside `[a-zA-Z0-9._-]`.
    #[error(
        "character {ch:?} at position {char_idx} is not allowed; \
         use ASCII letters and digits, '.', '_' and '-'"
    )]
    IllegalChar {
        /// The first illegal character.
        ch: char,
        /// Its 0-based position. Every character before it is ASCII, so this is also its byte
        /// offset.
        char_idx: usize,
    },
}

/// Checks `name` against Kafka's topic-name rules.
///
/// # Errors
/// [`BrokerError::InvalidTopicName`] with the [`TopicNameError`] for the first rule broken.
pub fn validate_topic_name(name: &str) -> Result<(), BrokerError> {
    check(name).map_err(|reason| BrokerError::InvalidTopicName {
        name: name.to_string(),
        reason,
    })
}

fn check(name: &str) -> Result<(), TopicNameError> {
    if name.is_empty() {
        return Err(TopicNameError::Empty);
    }
    if name == "." || name == ".." {
        return Err(TopicNameError::Reserved);
    }
    // Bytes bound characters from above, so a name within the limit in bytes needs no count.
    if name.len() > MAX_TOPIC_NAME_CHARS {
        let char_count = name.chars().count();
        if char_count > MAX_TOPIC_NAME_CHARS {
            return Err(TopicNameError::TooLong { char_count });
        }
    }
    match name.chars().enumerate().find(|(_, ch)| !is_legal_char(*ch)) {
        Some((char_idx, ch)) => Err(TopicNameError::IllegalChar { ch, char_idx }),
        None => Ok(()),
    }
}

fn is_legal_char(ch: char) -> bool {
    ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-')
}

/// True if `name` is an internal topic (starts with `__`, like `__consumer_offsets`).
pub fn is_internal(name: &str) -> bool {
    name.starts_with(INTERNAL_TOPIC_PREFIX)
}

/// True if `name` holds `.` or `_`, which Kafka's metric names do not tell apart. Kafka warns when
/// such a topic is created; it is legal.
pub fn has_collision_chars(name: &str) -> bool {
    name.contains(['.', '_'])
}

/// True if the two names are the same once `.` is read as `_`, so their metrics would collide
/// (Kafka's `Topic.hasCollision`). Kafka refuses to create a topic that collides with an existing
/// one. Identical names collide.
pub fn collides_with(name: &str, other: &str) -> bool {
    name.len() == other.len()
        && name
            .bytes()
            .zip(other.bytes())
            .all(|(a, b)| a == b || (matches!(a, b'.' | b'_') && matches!(b, b'.' | b'_')))
}

/// A topic name that follows Kafka's rules. Holding one means it was checked.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicName(String);

impl TopicName {
    /// Checks `name` and wraps it.
    ///
    /// # Errors
    /// [`BrokerError::InvalidTopicName`] naming the rule `name` breaks.
    pub fn new(name: impl Into<String>) -> Result<TopicName, BrokerError> {
        let name = name.into();
        match check(&name) {
            Ok(()) => Ok(TopicName(name)),
            Err(reason) => Err(BrokerError::InvalidTopicName { name, reason }),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True if this is an internal topic (see [`is_internal`]).
    pub fn is_internal(&self) -> bool {
        is_internal(&self.0)
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TopicName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<TopicName> for String {
    fn from(name: TopicName) -> String {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reason(name: &str) -> TopicNameError {
        match validate_topic_name(name) {
            Err(BrokerError::InvalidTopicName {
                name: named,
                reason,
            }) => {
                assert_eq!(named, name);
                reason
            }
            other => panic!("{name:?} should be rejected, got {other:?}"),
        }
    }

    #[test]
    fn accepts_kafka_legal_names() {
        let longest = "a".repeat(MAX_TOPIC_NAME_CHARS);
        for name in [
            "orders",
            "Orders-2024_v1.events",
            "_",
            "-",
            "...",
            ".a",
            "__consumer_offsets",
            &longest,
        ] {
            assert!(validate_topic_name(name).is_ok(), "{name:?}");
        }
    }

    #[test]
    fn rejections_name_the_rule_broken() {
        assert_eq!(reason(""), TopicNameError::Empty);
        assert_eq!(reason("."), TopicNameError::Reserved);
        assert_eq!(reason(".."), TopicNameError::Reserved);
        let char_count = MAX_TOPIC_NAME_CHARS + 1;
        assert_eq!(
            reason(&"a".repeat(char_count)),
            TopicNameError::TooLong { char_count }
        );
        assert_eq!(
            reason("orders/../../etc"),
            TopicNameError::IllegalChar {
                ch: '/',
                char_idx: 6
            }
        );
        assert_eq!(
            reason("a b"),
            TopicNameError::IllegalChar {
                ch: ' ',
                char_idx: 1
            }
        );
        assert_eq!(
            reason("café"),
            TopicNameError::IllegalChar {
                ch: 'é',
                char_idx: 3
            }
        );
    }

    #[test]
    fn length_counts_characters_and_comes_before_the_character_check() {
        // 200 two-byte characters: over the limit in bytes, not in characters.
        assert_eq!(
            reason(&"é".repeat(200)),
            TopicNameError::IllegalChar {
                ch: 'é',
                char_idx: 0
            }
        );
        // Kafka reports an over-long name as too long even when it also holds illegal characters.
        assert_eq!(
            reason(&"é".repeat(250)),
            TopicNameError::TooLong { char_count: 250 }
        );
    }

    #[test]
    fn error_text_names_the_topic_and_the_reason() {
        let err = TopicName::new("bad name").unwrap_err().to_string();
        assert!(err.contains("\"bad name\"") && err.contains("' '"), "{err}");
    }

    #[test]
    fn internal_topics_start_with_two_underscores() {
        assert!(is_internal(CONSUMER_OFFSETS_TOPIC));
        assert!(TopicName::new("__transaction_state").unwrap().is_internal());
        assert!(!is_internal("_single"));
        assert!(!is_internal("orders__"));
    }

    #[test]
    fn dot_and_underscore_collide() {
        assert!(collides_with("metrics.cpu", "metrics_cpu"));
        assert!(collides_with("a.b_c", "a_b.c"));
        assert!(collides_with("same", "same"));
        assert!(!collides_with("metrics.cpu", "metrics-cpu"));
        assert!(!collides_with("a.b", "a.bc"));
        assert!(has_collision_chars("a.b") && has_collision_chars("a_b"));
        assert!(!has_collision_chars("a-b"));
    }

    proptest! {
        #[test]
        fn every_legal_name_is_accepted(name in "[a-zA-Z0-9._-]{1,249}") {
            prop_assume!(name != "." && name != "..");
            let topic = TopicName::new(name.clone()).unwrap();
            prop_assert_eq!(topic.as_str(), name.as_str());
        }

        #[test]
        fn any_illegal_character_is_rejected_at_its_position(
            prefix in "[a-zA-Z0-9._-]{0,120}",
            ch in any::<char>(),
            suffix in "[a-zA-Z0-9._-]{0,120}",
        ) {
            prop_assume!(!is_legal_char(ch));
            let name = format!("{prefix}{ch}{suffix}");
            prop_assert_eq!(
                reason(&name),
                TopicNameError::IllegalChar { ch, char_idx: prefix.len() }
            );
        }

        #[test]
        fn collision_is_equality_after_mapping_dot_to_underscore(
            a in "[a._]{0,6}",
            b in "[a._]{0,6}",
        ) {
            prop_assert_eq!(collides_with(&a, &b), a.replace('.', "_") == b.replace('.', "_"));
        }
    }
}

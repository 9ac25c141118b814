//! [`Checkpoint`]: how far a replay has read a topic, as the next offset to read per
//! partition, and its text form, which is what `cairn replay --checkpoint FILE` stores.
//!
//! The text format, version 1 (one item per line; blank lines and lines starting with `#` are
//! ignored anywhere):
//!
//! ```text
//! cairn-replay-checkpoint v1
//! topic orders
//! 0 1200
//! 1 1187
//! ```
//!
//! The first line names the format, the second the topic, and each further line is a
//! partition and the next offset to read in it, both non-negative decimal integers, each
//! partition at most once. Parsing never guesses: anything else is an error naming the line.
//! Writing the text to disk safely is the caller's job (this crate does no file I/O).

use std::collections::BTreeMap;
use std::fmt;

use crate::error::ClientError;

/// The first line of a checkpoint's text.
pub const CHECKPOINT_FORMAT_LINE: &str = "cairn-replay-checkpoint v1";
/// Most partition lines a checkpoint may hold (the broker's own partition limit is lower).
pub const MAX_CHECKPOINT_PARTITIONS: usize = 1 << 20;

/// The next offset to read, per partition of one topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    topic: String,
    offsets: BTreeMap<i32, i64>,
}

impl Checkpoint {
    /// A checkpoint of `topic` at `offsets` (partition to next offset to read).
    ///
    /// # Errors
    /// [`ClientError::InvalidArgument`] for an empty or whitespace-holding topic name, or a
    /// negative partition or offset.
    pub fn new(topic: &str, offsets: BTreeMap<i32, i64>) -> Result<Checkpoint, ClientError> {
        check_topic(topic).map_err(ClientError::InvalidArgument)?;
        if let Some((partition, offset)) = offsets.iter().find(|(p, o)| **p < 0 || **o < 0) {
            return Err(ClientError::InvalidArgument(format!(
                "checkpoint partitions and offsets must not be negative, got partition \
                 {partition} at offset {offset}"
            )));
        }
        Ok(Checkpoint {
            topic: topic.to_string(),
            offsets,
        })
    }

    /// A checkpoint from a replay's own positions: a topic the broker knows (so a valid
    /// name) and offsets it served (so not negative).
    pub(crate) fn from_positions(topic: &str, offsets: BTreeMap<i32, i64>) -> Checkpoint {
        debug_assert!(check_topic(topic).is_ok(), "topic {topic:?}");
        debug_assert!(
            offsets.iter().all(|(p, o)| *p >= 0 && *o >= 0),
            "{offsets:?}"
        );
        Checkpoint {
            topic: topic.to_string(),
            offsets,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The next offset to read, per partition.
    pub fn offsets(&self) -> &BTreeMap<i32, i64> {
        &self.offsets
    }

    /// The next offset to read in `partition`, if the checkpoint names it.
    pub fn offset(&self, partition: i32) -> Option<i64> {
        self.offsets.get(&partition).copied()
    }

    /// Parses the text format described in this module's documentation.
    ///
    /// # Errors
    /// [`ClientError::MalformedCheckpoint`] naming the first bad line (1-based) and why.
    pub fn parse(text: &str) -> Result<Checkpoint, ClientError> {
        let malformed =
            |line: usize, reason: String| ClientError::MalformedCheckpoint { line, reason };
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(idx, line)| (idx + 1, line.trim()))
            .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'));
        let last_line = text.lines().count().max(1);
        let (line, first) = lines.next().ok_or_else(|| {
            malformed(
                last_line,
                format!("empty checkpoint: expected {CHECKPOINT_FORMAT_LINE:?}"),
            )
        })?;
        if first != CHECKPOINT_FORMAT_LINE {
            return Err(malformed(
                line,
                format!("expected {CHECKPOINT_FORMAT_LINE:?}, found {first:?}"),
            ));
        }
        let (line, topic_line) = lines
            .next()
            .ok_or_else(|| malformed(last_line, "expected \"topic NAME\"".to_string()))?;
        let topic = topic_line
            .strip_prefix("topic ")
            .map(str::trim)
            .ok_or_else(|| {
                malformed(
                    line,
                    format!("expected \"topic NAME\", found {topic_line:?}"),
                )
            })?;
        check_topic(topic).map_err(|reason| malformed(line, reason))?;
        let mut offsets = BTreeMap::new();
        for (line, text) in lines {
            let (partition, offset) = parse_offset_line(text).map_err(|r| malformed(line, r))?;
            if offsets.len() >= MAX_CHECKPOINT_PARTITIONS {
                return Err(malformed(
                    line,
                    format!("more than {MAX_CHECKPOINT_PARTITIONS} partitions"),
                ));
            }
            if offsets.insert(partition, offset).is_some() {
                return Err(malformed(
                    line,
                    format!("partition {partition} appears twice"),
                ));
            }
        }
        Ok(Checkpoint {
            topic: topic.to_string(),
            offsets,
        })
    }

    /// The text form, which [`Checkpoint::parse`] reads back.
    pub fn to_text(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{CHECKPOINT_FORMAT_LINE}")?;
        writeln!(f, "topic {}", self.topic)?;
        for (partition, offset) in &self.offsets {
            writeln!(f, "{partition} {offset}")?;
        }
        Ok(())
    }
}

fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() || topic.chars().any(char::is_whitespace) {
        return Err(format!(
            "topic name {topic:?} must be non-empty and hold no whitespace"
        ));
    }
    Ok(())
}

/// Reads `PARTITION OFFSET`.
fn parse_offset_line(text: &str) -> Result<(i32, i64), String> {
    let mut words = text.split_whitespace();
    let (Some(partition), Some(offset), None) = (words.next(), words.next(), words.next()) else {
        return Err(format!("expected \"PARTITION OFFSET\", found {text:?}"));
    };
    let partition: i32 = partition
        .parse()
        .map_err(|_| format!("partition {partition:?} is not a number"))?;
    let offset: i64 = offset
        .parse()
        .map_err(|_| format!("offset {offset:?} is not a number"))?;
    if partition < 0 || offset < 0 {
        return Err(format!(
            "partition {partition} and offset {offset} must not be negative"
        ));
    }
    Ok((partition, offset))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    fn line_of(text: &str) -> (usize, String) {
        match Checkpoint::parse(text) {
            Err(ClientError::MalformedCheckpoint { line, reason }) => (line, reason),
            other => panic!("expected a malformed checkpoint, got {other:?}"),
        }
    }

    #[test]
    fn text_round_trips() {
        let checkpoint = Checkpoint::new("orders", BTreeMap::from([(0, 1200), (2, 0)])).unwrap();
        let text = checkpoint.to_text();
        assert_eq!(
            text,
            "cairn-replay-checkpoint v1\ntopic orders\n0 1200\n2 0\n"
        );
        assert_eq!(Checkpoint::parse(&text).unwrap(), checkpoint);
    }

    #[test]
    fn comments_and_blank_lines_are_ignored() {
        let text = "# saved by hand\n\ncairn-replay-checkpoint v1\n  topic orders \n# p0\n 0  7 \n";
        let checkpoint = Checkpoint::parse(text).unwrap();
        assert_eq!(checkpoint.topic(), "orders");
        assert_eq!(checkpoint.offset(0), Some(7));
        assert_eq!(checkpoint.offset(1), None);
    }

    #[test]
    fn each_malformed_line_is_named() {
        assert_eq!(line_of("").0, 1);
        assert_eq!(line_of("hello\n").0, 1);
        assert_eq!(line_of("cairn-replay-checkpoint v1\n").0, 1);
        assert_eq!(line_of("cairn-replay-checkpoint v1\ntopics x\n").0, 2);
        assert_eq!(line_of("cairn-replay-checkpoint v1\ntopic a b\n").0, 2);
        let base = "cairn-replay-checkpoint v1\ntopic orders\n0 5\n";
        for (bad, reason) in [
            ("1\n", "PARTITION OFFSET"),
            ("1 2 3\n", "PARTITION OFFSET"),
            ("x 2\n", "not a number"),
            ("1 -2\n", "negative"),
            ("1 99999999999999999999\n", "not a number"),
            ("0 6\n", "twice"),
        ] {
            let (line, why) = line_of(&format!("{base}{bad}"));
            assert_eq!(line, 4, "{bad:?}");
            assert!(why.contains(reason), "{bad:?}: {why}");
        }
    }

    #[test]
    fn new_refuses_negative_numbers() {
        assert!(Checkpoint::new("t", BTreeMap::from([(-1, 0)])).is_err());
        assert!(Checkpoint::new("t", BTreeMap::from([(0, -1)])).is_err());
        assert!(Checkpoint::new("", BTreeMap::new()).is_err());
    }
}

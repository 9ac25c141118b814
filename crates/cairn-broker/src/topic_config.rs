//! A topic's settings under Kafka's names: every [`LogConfig`] key (`segment.bytes`,
//! `retention.ms`, ...), delegated to `cairn-log`, plus the topic-level `cleanup.policy`,
//! `delete.retention.ms` and `message.timestamp.type`. Values are checked when set, so a
//! [`TopicConfig`] always holds valid ones.
//!
//! It also reads and writes the text form a topic's config is persisted in (see
//! [`TopicConfig::to_file_text`]). Reading and writing the file itself, atomically, is the
//! caller's job: this module does no I/O.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use cairn_log::{LogConfig, LogError};

use crate::error::BrokerError;

/// Largest persisted topic config file accepted. A full config is under 1 KiB; the limit stops a
/// damaged or wrong file from being parsed at length. Readers should cap their read at it too.
pub const MAX_CONFIG_FILE_BYTES: usize = 64 * 1024;

const CLEANUP_POLICY: &str = "cleanup.policy";
const DELETE_RETENTION_MS: &str = "delete.retention.ms";
const MESSAGE_TIMESTAMP_TYPE: &str = "message.timestamp.type";

/// The keys [`TopicConfig`] adds to [`LogConfig::KEYS`].
const TOPIC_KEYS: [&str; 3] = [CLEANUP_POLICY, DELETE_RETENTION_MS, MESSAGE_TIMESTAMP_TYPE];

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// `cleanup.policy`: what happens to old segments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// `delete`: drop whole segments past `retention.ms` / `retention.bytes`.
    #[default]
    Delete,
    /// `compact`: keep the latest record of each key; never delete by age or size.
    Compact,
    /// `compact,delete` (or `delete,compact`): compact, and also delete by retention.
    CompactAndDelete,
}

impl CleanupPolicy {
    /// True if old segments are deleted by `retention.ms` and `retention.bytes`.
    pub fn deletes(self) -> bool {
        matches!(
            self,
            CleanupPolicy::Delete | CleanupPolicy::CompactAndDelete
        )
    }

    /// True if the log is compacted by key.
    pub fn compacts(self) -> bool {
        matches!(
            self,
            CleanupPolicy::Compact | CleanupPolicy::CompactAndDelete
        )
    }
}

impl FromStr for CleanupPolicy {
    type Err = &'static str;

    /// Parses Kafka's list form: `delete`, `compact`, or both comma-separated in either order,
    /// with optional spaces around the commas.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (mut delete, mut compact) = (false, false);
        for item in text.split(',') {
            let seen = match item.trim() {
                "delete" => &mut delete,
                "compact" => &mut compact,
                _ => return Err("expected delete, compact, or both comma-separated"),
            };
            if *seen {
                return Err("a policy is listed twice");
            }
            *seen = true;
        }
        Ok(match (delete, compact) {
            (true, true) => CleanupPolicy::CompactAndDelete,
            (false, true) => CleanupPolicy::Compact,
            _ => CleanupPolicy::Delete,
        })
    }
}

impl fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactAndDelete => "compact,delete",
        })
    }
}

/// `message.timestamp.type`: which timestamp a stored batch carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimestampType {
    /// `CreateTime`: the producer's timestamps are kept.
    #[default]
    CreateTime,
    /// `LogAppendTime`: the broker stamps each batch with its own clock on append.
    LogAppendTime,
}

impl FromStr for TimestampType {
    type Err = &'static str;

    /// Parses Kafka's names, which are case-sensitive.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "CreateTime" => Ok(TimestampType::CreateTime),
            "LogAppendTime" => Ok(TimestampType::LogAppendTime),
            _ => Err("expected CreateTime or LogAppendTime"),
        }
    }
}

impl fmt::Display for TimestampType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        })
    }
}

/// The settings of one topic, applied to each of its partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicConfig {
    /// The partition log's settings (`segment.bytes`, `retention.ms`, `flush.policy`, ...).
    pub log: LogConfig,
    /// `cleanup.policy`. Default `delete`.
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms`: how long a compacted topic keeps tombstones, so consumers that
    /// read from the start see deletes. Default 1 day; at most `i64::MAX` (Kafka's `long`).
    pub delete_retention_ms: u64,
    /// `message.timestamp.type`. Default `CreateTime`.
    pub message_timestamp_type: TimestampType,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            log: LogConfig::default(),
            cleanup_policy: CleanupPolicy::default(),
            delete_retention_ms: DAY_MS,
            message_timestamp_type: TimestampType::default(),
        }
    }
}

impl TopicConfig {
    /// Every key a topic config understands: [`LogConfig::KEYS`], then the topic-level ones.
    pub fn keys() -> impl Iterator<Item = &'static str> {
        LogConfig::KEYS.into_iter().chain(TOPIC_KEYS)
    }

    /// Sets one setting from its Kafka name and text value (surrounding spaces are ignored, as
    /// Kafka ignores them). On error nothing changes.
    ///
    /// # Errors
    /// [`BrokerError::UnknownConfig`] for a key not in [`TopicConfig::keys`];
    /// [`BrokerError::InvalidConfig`] naming the key for a value out of range or unparseable.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), BrokerError> {
        let text = value.trim();
        let bad = |key, reason| BrokerError::InvalidConfig {
            key,
            value: value.to_string(),
            reason,
        };
        match key {
            // The two topic-level keys the log acts on are mirrored into `self.log`, so that
            // `log` always holds what the partition runs with (see `to_log_config`).
            CLEANUP_POLICY => {
                self.cleanup_policy = text.parse().map_err(|r| bad(CLEANUP_POLICY, r))?;
                self.log.compact = self.cleanup_policy.compacts();
            }
            DELETE_RETENTION_MS => {
                self.delete_retention_ms = text
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| i64::try_from(*ms).is_ok())
                    .ok_or_else(|| bad(DELETE_RETENTION_MS, "must be between 0 and 2^63-1"))?;
                self.log.delete_retention_ms = self.delete_retention_ms;
            }
            MESSAGE_TIMESTAMP_TYPE => {
                self.message_timestamp_type =
                    text.parse().map_err(|r| bad(MESSAGE_TIMESTAMP_TYPE, r))?;
            }
            _ if LogConfig::KEYS.contains(&key) => {
                self.log.set(key, value).map_err(from_log_error)?;
            }
            _ => {
                return Err(BrokerError::UnknownConfig {
                    key: key.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Sets every `(key, value)` pair in order, all or nothing: on error `self` is unchanged.
    ///
    /// # Errors
    /// The first pair's error from [`TopicConfig::set`].
    pub fn set_all<'a>(
        &mut self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), BrokerError> {
        let mut next = self.clone();
        for (key, value) in pairs {
            next.set(key, value)?;
        }
        *self = next;
        Ok(())
    }

    /// Every setting as `(key, value)` text, in [`TopicConfig::keys`] order (for describing a
    /// topic). Each pair is accepted back by [`TopicConfig::set`].
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        let mut entries = self.log.entries();
        entries.extend([
            (CLEANUP_POLICY, self.cleanup_policy.to_string()),
            (DELETE_RETENTION_MS, self.delete_retention_ms.to_string()),
            (
                MESSAGE_TIMESTAMP_TYPE,
                self.message_timestamp_type.to_string(),
            ),
        ]);
        entries
    }

    /// The settings the partition log runs with. Under `cleanup.policy=compact` (without
    /// `delete`), `retention.ms` and `retention.bytes` are kept in the topic config (and shown by
    /// describe) but not applied: as in Kafka, a compacted-only topic never deletes by age or
    /// size, which would drop the latest value of old keys (and committed offsets).
    ///
    /// The topic-level `cleanup.policy` and `delete.retention.ms` are passed through: the log
    /// compacts when the policy includes `compact` (`compact,delete` compacts and deletes by
    /// retention), and keeps tombstones for `delete.retention.ms` after its cleaner first sees
    /// them.
    pub fn to_log_config(&self) -> LogConfig {
        let mut log = self.log.clone();
        if !self.cleanup_policy.deletes() {
            log.retention_ms = None;
            log.retention_bytes = None;
        }
        log.compact = self.cleanup_policy.compacts();
        log.delete_retention_ms = self.delete_retention_ms;
        log
    }

    /// Checks every value against its range (for configs built as structs, not through
    /// [`TopicConfig::set`]).
    ///
    /// # Errors
    /// [`BrokerError::InvalidConfig`] naming the first bad key.
    pub fn validate(&self) -> Result<(), BrokerError> {
        TopicConfig::default().set_all(
            self.entries()
                .iter()
                .map(|(key, value)| (*key, value.as_str())),
        )
    }

    /// The persisted text form: a comment line, then one `key=value` line per setting, in
    /// [`TopicConfig::keys`] order, each ending in `\n`. [`TopicConfig::from_file_text`] reads it
    /// back to an equal config.
    ///
    /// The format: UTF-8 lines; blank lines and lines starting with `#` are ignored; every other
    /// line is `key=value`, split at the first `=`, with spaces around key and value ignored; a
    /// key appears at most once. Keys not in the file keep the base config's values.
    pub fn to_file_text(&self) -> String {
        let mut text = String::from("# Cairn topic config: one key=value per line.\n");
        for (key, value) in self.entries() {
            // Set values come from validated parses, none of which accepts a line break.
            debug_assert!(
                !value.contains('\n'),
                "{key} value {value:?} holds a newline"
            );
            text.push_str(key);
            text.push('=');
            text.push_str(&value);
            text.push('\n');
        }
        text
    }

    /// Reads the text [`TopicConfig::to_file_text`] writes, over the defaults.
    ///
    /// # Errors
    /// As [`TopicConfig::apply_file_text`].
    pub fn from_file_text(text: &str) -> Result<TopicConfig, BrokerError> {
        let mut config = TopicConfig::default();
        config.apply_file_text(text)?;
        Ok(config)
    }

    /// Sets every `key=value` line of `text` (format in [`TopicConfig::to_file_text`]) over the
    /// current values, all or nothing: on error `self` is unchanged.
    ///
    /// # Errors
    /// [`BrokerError::ConfigFileTooLarge`] past [`MAX_CONFIG_FILE_BYTES`];
    /// [`BrokerError::MalformedConfigLine`] for a line that is not `key=value` or repeats a key;
    /// [`BrokerError::InvalidConfigLine`] for an unknown key or a bad value. Line errors carry
    /// the 1-based line number.
    pub fn apply_file_text(&mut self, text: &str) -> Result<(), BrokerError> {
        if text.len() > MAX_CONFIG_FILE_BYTES {
            return Err(BrokerError::ConfigFileTooLarge {
                size_bytes: text.len(),
                max_bytes: MAX_CONFIG_FILE_BYTES,
            });
        }
        let mut next = self.clone();
        let mut seen = HashSet::new();
        for (line_idx, line) in text.lines().enumerate() {
            let line_number = line_idx + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let malformed = |reason| BrokerError::MalformedConfigLine {
                line_number,
                reason,
            };
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| malformed("expected key=value"))?;
            let key = key.trim();
            if key.is_empty() {
                return Err(malformed("empty key before '='"));
            }
            if !seen.insert(key) {
                return Err(malformed("key set twice"));
            }
            next.set(key, value)
                .map_err(|source| BrokerError::InvalidConfigLine {
                    line_number,
                    source: Box::new(source),
                })?;
        }
        *self = next;
        Ok(())
    }
}

/// Carries a log config error over with its fields. `LogConfig::set` reports only
/// `InvalidConfig` for a known key; anything else crosses unchanged.
fn from_log_error(err: LogError) -> BrokerError {
    match err {
        LogError::InvalidConfig { key, value, reason } => {
            BrokerError::InvalidConfig { key, value, reason }
        }
        other => BrokerError::from(other),
    }
}

#[cfg(test)]
mod tests;

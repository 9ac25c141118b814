//! The per-partition log settings, named as Kafka names them (`segment.bytes`,
//! `retention.ms`, ...) plus Cairn's `flush.policy`. Every value has a default, a unit and a
//! range, checked when set, so a bad value is an error naming the key rather than a surprise.

use std::fmt;
use std::str::FromStr;

use crate::error::LogError;

/// When appended data is fsynced, and so what an acknowledged append survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FlushPolicy {
    /// fsync (`fdatasync`) before an append returns: survives power loss. Concurrent appends
    /// share one fsync (group commit).
    #[default]
    Always,
    /// Return once written to the page cache; fsync at most this many milliseconds later.
    /// Survives a process crash; a power loss may lose the last interval.
    IntervalMs(u64),
    /// Return once written to the page cache and leave flushing to the OS (fsync only on roll
    /// and close). Survives a process crash only.
    Os,
}

impl FromStr for FlushPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "always" => Ok(FlushPolicy::Always),
            "os" => Ok(FlushPolicy::Os),
            _ => {
                let ms = text
                    .strip_prefix("interval:")
                    .ok_or_else(|| "expected always, interval:<ms> or os".to_string())?;
                let ms: u64 = ms
                    .parse()
                    .map_err(|_| format!("bad interval milliseconds {ms:?}"))?;
                if ms == 0 {
                    return Err("interval must be at least 1 ms (use always)".to_string());
                }
                Ok(FlushPolicy::IntervalMs(ms))
            }
        }
    }
}

impl fmt::Display for FlushPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlushPolicy::Always => write!(f, "always"),
            FlushPolicy::IntervalMs(ms) => write!(f, "interval:{ms}"),
            FlushPolicy::Os => write!(f, "os"),
        }
    }
}

/// Settings of one partition's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would pass this size. Default 1 GiB; at
    /// most 2 GiB - 1 because positions are 32-bit.
    pub segment_bytes: u32,
    /// `segment.ms`: roll a non-empty segment this long after it was opened. Default 7 days.
    pub segment_ms: u64,
    /// `segment.index.bytes`: preallocated size of each index file; a full index rolls the
    /// segment. Default 10 MiB.
    pub segment_index_bytes: u32,
    /// `index.interval.bytes`: log bytes between sparse index entries. Default 4096.
    pub index_interval_bytes: u32,
    /// `retention.ms`: delete sealed segments whose newest record is older. `None` keeps
    /// forever (Kafka's -1). Default 7 days.
    pub retention_ms: Option<u64>,
    /// `retention.bytes`: delete the oldest sealed segments while the log is larger. `None` is
    /// unlimited (Kafka's -1, the default).
    pub retention_bytes: Option<u64>,
    /// `max.message.bytes`: largest batch accepted. Default 1048588 (Kafka's: 1 MiB plus the
    /// 12-byte log overhead).
    pub max_message_bytes: u32,
    /// `flush.policy`: see [`FlushPolicy`]. Default `always`.
    pub flush_policy: FlushPolicy,
}

const DAY_MS: u64 = 24 * 60 * 60 * 1000;
/// Largest `segment.bytes`: file positions are 32-bit signed in Kafka's index format.
pub const MAX_SEGMENT_BYTES: u32 = i32::MAX as u32;
/// Smallest `segment.bytes`: just above one 61-byte batch header, rounded up (Kafka allows 14,
/// but a segment smaller than a header rolls before every batch).
pub const MIN_SEGMENT_BYTES: u32 = 64;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * DAY_MS,
            segment_index_bytes: 10 << 20,
            index_interval_bytes: 4096,
            retention_ms: Some(7 * DAY_MS),
            retention_bytes: None,
            max_message_bytes: 1_048_588,
            flush_policy: FlushPolicy::Always,
        }
    }
}

impl LogConfig {
    /// The config keys this log understands.
    pub const KEYS: [&'static str; 8] = [
        "segment.bytes",
        "segment.ms",
        "segment.index.bytes",
        "index.interval.bytes",
        "retention.ms",
        "retention.bytes",
        "max.message.bytes",
        "flush.policy",
    ];

    /// Sets one setting from its Kafka name and text value.
    ///
    /// # Errors
    /// [`LogError::InvalidConfig`] naming the key for an unknown key or a bad value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), LogError> {
        let key = Self::KEYS
            .iter()
            .copied()
            .find(|k| *k == key)
            .ok_or_else(|| LogError::InvalidConfig {
                key: "(unknown)",
                value: key.to_string(),
                reason: "unknown log config key",
            })?;
        let bad = |reason| LogError::InvalidConfig {
            key,
            value: value.to_string(),
            reason,
        };
        match key {
            "segment.bytes" => {
                let v = parse_u64(value).ok_or_else(|| bad("not a whole number of bytes"))?;
                self.segment_bytes = in_range(v, MIN_SEGMENT_BYTES.into(), MAX_SEGMENT_BYTES.into())
                    .ok_or_else(|| bad("must be between 64 and 2147483647"))?
                    as u32;
            }
            "segment.ms" => {
                let v =
                    parse_u64(value).ok_or_else(|| bad("not a whole number of milliseconds"))?;
                self.segment_ms =
                    in_range(v, 1, u64::MAX).ok_or_else(|| bad("must be at least 1"))?;
            }
            "segment.index.bytes" => {
                let v = parse_u64(value).ok_or_else(|| bad("not a whole number of bytes"))?;
                self.segment_index_bytes = in_range(v, 16, i32::MAX as u64)
                    .ok_or_else(|| bad("must be between 16 and 2147483647"))?
                    as u32;
            }
            "index.interval.bytes" => {
                let v = parse_u64(value).ok_or_else(|| bad("not a whole number of bytes"))?;
                self.index_interval_bytes = in_range(v, 0, i32::MAX as u64)
                    .ok_or_else(|| bad("must be at most 2147483647"))?
                    as u32;
            }
            "retention.ms" => {
                self.retention_ms =
                    parse_limit(value).ok_or_else(|| bad("must be -1 or a whole number"))?
            }
            "retention.bytes" => {
                self.retention_bytes =
                    parse_limit(value).ok_or_else(|| bad("must be -1 or a whole number"))?
            }
            "max.message.bytes" => {
                let v = parse_u64(value).ok_or_else(|| bad("not a whole number of bytes"))?;
                self.max_message_bytes = in_range(v, 61, (1 << 30) as u64)
                    .ok_or_else(|| bad("must be between 61 (one batch header) and 1073741824"))?
                    as u32;
            }
            "flush.policy" => {
                self.flush_policy = value
                    .parse()
                    .map_err(|_| bad("expected always, interval:<ms> or os"))?;
            }
            _ => unreachable!("KEYS and this match list the same keys"),
        }
        Ok(())
    }

    /// The settings as `(key, value)` text pairs, in [`LogConfig::KEYS`] order.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        let limit = |v: Option<u64>| v.map_or("-1".to_string(), |v| v.to_string());
        vec![
            ("segment.bytes", self.segment_bytes.to_string()),
            ("segment.ms", self.segment_ms.to_string()),
            ("segment.index.bytes", self.segment_index_bytes.to_string()),
            (
                "index.interval.bytes",
                self.index_interval_bytes.to_string(),
            ),
            ("retention.ms", limit(self.retention_ms)),
            ("retention.bytes", limit(self.retention_bytes)),
            ("max.message.bytes", self.max_message_bytes.to_string()),
            ("flush.policy", self.flush_policy.to_string()),
        ]
    }
}

fn parse_u64(value: &str) -> Option<u64> {
    value.trim().parse().ok()
}

fn in_range(value: u64, min: u64, max: u64) -> Option<u64> {
    (min..=max).contains(&value).then_some(value)
}

/// Kafka's "-1 means unlimited" convention.
fn parse_limit(value: &str) -> Option<Option<u64>> {
    match value.trim() {
        "-1" => Some(None),
        other => other.parse().ok().map(Some),
    }
}

impl LogConfig {
    /// Checks every value against its range (for configs built as structs, not through
    /// [`LogConfig::set`]).
    ///
    /// # Errors
    /// [`LogError::InvalidConfig`] naming the first bad key.
    pub fn validate(&self) -> Result<(), LogError> {
        let mut probe = LogConfig::default();
        for (key, value) in self.entries() {
            probe.set(key, &value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_names_set_values_and_bad_values_name_the_key() {
        let mut cfg = LogConfig::default();
        cfg.set("segment.bytes", "1048576").unwrap();
        cfg.set("retention.ms", "-1").unwrap();
        cfg.set("flush.policy", "interval:50").unwrap();
        assert_eq!(cfg.segment_bytes, 1 << 20);
        assert_eq!(cfg.retention_ms, None);
        assert_eq!(cfg.flush_policy, FlushPolicy::IntervalMs(50));
        let err = cfg.set("segment.bytes", "-3").unwrap_err().to_string();
        assert!(err.contains("segment.bytes"), "{err}");
        let err = cfg
            .set("segment.bytes", "4294967296")
            .unwrap_err()
            .to_string();
        assert!(err.contains("segment.bytes"), "{err}");
        let err = cfg.set("no.such.key", "1").unwrap_err().to_string();
        assert!(err.contains("no.such.key"), "{err}");
        assert!(cfg.set("flush.policy", "sometimes").is_err());
        assert!(cfg.set("flush.policy", "interval:0").is_err());
    }

    #[test]
    fn entries_round_trip_through_set() {
        let mut cfg = LogConfig::default();
        cfg.set("retention.bytes", "12345").unwrap();
        let mut copy = LogConfig {
            segment_bytes: 100,
            ..LogConfig::default()
        };
        for (key, value) in cfg.entries() {
            copy.set(key, &value).unwrap();
        }
        assert_eq!(copy, cfg);
    }
}

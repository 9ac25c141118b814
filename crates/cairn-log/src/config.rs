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
    /// `segment.index.bytes`: the most each index file of a segment may grow to (files grow in
    /// steps as entries need them); a full index rolls the segment. Default 10 MiB, at most
    /// [`MAX_SEGMENT_INDEX_BYTES`].
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
    /// True when the topic's `cleanup.policy` includes `compact`: the cleaner keeps the newest
    /// record of each key in sealed segments (`segments-format.md`, "Compaction"). Retention
    /// still applies under `compact,delete`; under `compact` alone the broker clears
    /// `retention.ms` and `retention.bytes`. Not a [`LogConfig::KEYS`] key: `cleanup.policy` is
    /// a topic-level key that the broker maps here. Default false.
    pub compact: bool,
    /// `delete.retention.ms`: how long a tombstone survives after the cleaner first saw it (its
    /// KIP-534 delete horizon), so a consumer reading from the start still sees the delete.
    /// Topic-level like `compact`. Default 1 day; at most `i64::MAX`.
    pub delete_retention_ms: u64,
    /// `min.cleanable.dirty.ratio`: the background cleaner runs when the never-cleaned bytes of
    /// the cleanable segments are at least this share of them. Default 0.5.
    pub min_cleanable_dirty_ratio: DirtyRatio,
    /// `min.compaction.lag.ms`: a sealed segment is cleaned only once its newest record is at
    /// least this old. Default 0.
    pub min_compaction_lag_ms: u64,
}

/// A share between 0 and 1, kept in millionths so that [`LogConfig`] stays `Eq` and its text
/// form round-trips exactly (`min.cleanable.dirty.ratio`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DirtyRatio(u32);

impl DirtyRatio {
    const ONE: u32 = 1_000_000;

    /// The ratio `parts_per_million / 1_000_000`, if that is at most 1.
    pub fn from_parts_per_million(parts_per_million: u32) -> Option<DirtyRatio> {
        (parts_per_million <= Self::ONE).then_some(DirtyRatio(parts_per_million))
    }

    /// The ratio in millionths.
    pub fn parts_per_million(self) -> u32 {
        self.0
    }

    /// True when `part / whole` is at least this ratio (an empty whole never is).
    pub fn is_reached_by(self, part: u64, whole: u64) -> bool {
        whole > 0
            && u128::from(part) * u128::from(Self::ONE) >= u128::from(self.0) * u128::from(whole)
    }
}

impl Default for DirtyRatio {
    fn default() -> Self {
        DirtyRatio(Self::ONE / 2)
    }
}

impl FromStr for DirtyRatio {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let value: f64 = text.trim().parse().map_err(|_| "not a number")?;
        if !(0.0..=1.0).contains(&value) {
            return Err("must be between 0 and 1");
        }
        // In range, so the product is between 0 and 1e6 and the cast cannot truncate.
        Ok(DirtyRatio((value * f64::from(Self::ONE)).round() as u32))
    }
}

impl fmt::Display for DirtyRatio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", f64::from(self.0) / f64::from(Self::ONE))
    }
}

const DAY_MS: u64 = 24 * 60 * 60 * 1000;
/// Largest `segment.bytes`: file positions are 32-bit signed in Kafka's index format.
pub const MAX_SEGMENT_BYTES: u32 = i32::MAX as u32;
/// Largest `segment.index.bytes`. Index files grow in steps, so a large value costs no disk, but
/// each active index maps its whole capacity and a segment may grow this much per index: 64 MiB
/// already holds an `.entryindex` point every 512 bytes of a 2 GiB segment (the default 10 MiB,
/// Kafka's, holds one every 4 KiB, the default `index.interval.bytes`).
pub const MAX_SEGMENT_INDEX_BYTES: u32 = 64 << 20;
/// Smallest `segment.index.bytes`: one entry of the largest index (`.entryindex`, 16 bytes).
pub const MIN_SEGMENT_INDEX_BYTES: u32 = 16;
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
            compact: false,
            delete_retention_ms: DAY_MS,
            min_cleanable_dirty_ratio: DirtyRatio::default(),
            min_compaction_lag_ms: 0,
        }
    }
}

impl LogConfig {
    /// The config keys this log understands.
    pub const KEYS: [&'static str; 10] = [
        "segment.bytes",
        "segment.ms",
        "segment.index.bytes",
        "index.interval.bytes",
        "retention.ms",
        "retention.bytes",
        "max.message.bytes",
        "flush.policy",
        "min.cleanable.dirty.ratio",
        "min.compaction.lag.ms",
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
                self.segment_index_bytes = in_range(
                    v,
                    MIN_SEGMENT_INDEX_BYTES.into(),
                    MAX_SEGMENT_INDEX_BYTES.into(),
                )
                .ok_or_else(|| bad("must be between 16 and 67108864 (64 MiB)"))?
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
            "min.cleanable.dirty.ratio" => {
                self.min_cleanable_dirty_ratio = value.parse().map_err(bad)?;
            }
            "min.compaction.lag.ms" => {
                let v =
                    parse_u64(value).ok_or_else(|| bad("not a whole number of milliseconds"))?;
                self.min_compaction_lag_ms = in_range(v, 0, i64::MAX as u64)
                    .ok_or_else(|| bad("must be between 0 and 9223372036854775807"))?;
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
            (
                "min.cleanable.dirty.ratio",
                self.min_cleanable_dirty_ratio.to_string(),
            ),
            (
                "min.compaction.lag.ms",
                self.min_compaction_lag_ms.to_string(),
            ),
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
        // Offsets and timestamps are Kafka int64s: a horizon past i64::MAX cannot be stored.
        if i64::try_from(self.delete_retention_ms).is_err() {
            return Err(LogError::InvalidConfig {
                key: "delete.retention.ms",
                value: self.delete_retention_ms.to_string(),
                reason: "must be between 0 and 9223372036854775807",
            });
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
    fn segment_index_bytes_is_bounded_at_64_mib() {
        let mut cfg = LogConfig::default();
        cfg.set("segment.index.bytes", "67108864").unwrap();
        assert_eq!(cfg.segment_index_bytes, MAX_SEGMENT_INDEX_BYTES);
        cfg.set("segment.index.bytes", "16").unwrap();
        for bad in ["67108865", "2147483647", "15", "0"] {
            let err = cfg.set("segment.index.bytes", bad).unwrap_err().to_string();
            assert!(
                err.contains("segment.index.bytes") && err.contains("67108864"),
                "{bad}: {err}"
            );
        }
        assert_eq!(
            cfg.segment_index_bytes, 16,
            "a refused value changes nothing"
        );
    }

    #[test]
    fn compaction_keys_parse_validate_and_round_trip() {
        let mut cfg = LogConfig::default();
        assert_eq!(cfg.min_cleanable_dirty_ratio.parts_per_million(), 500_000);
        cfg.set("min.cleanable.dirty.ratio", "0.125").unwrap();
        assert_eq!(cfg.min_cleanable_dirty_ratio.parts_per_million(), 125_000);
        cfg.set("min.compaction.lag.ms", "60000").unwrap();
        assert_eq!(cfg.min_compaction_lag_ms, 60_000);
        for bad in ["1.5", "-0.1", "half", "NaN"] {
            let err = cfg.set("min.cleanable.dirty.ratio", bad).unwrap_err();
            assert!(
                err.to_string().contains("min.cleanable.dirty.ratio"),
                "{err}"
            );
        }
        let err = cfg
            .set("min.compaction.lag.ms", "9223372036854775808")
            .unwrap_err();
        assert!(err.to_string().contains("min.compaction.lag.ms"), "{err}");
        cfg.delete_retention_ms = u64::MAX;
        let err = cfg.validate().unwrap_err();
        assert!(err.to_string().contains("delete.retention.ms"), "{err}");
        assert!(DirtyRatio::default().is_reached_by(1, 2));
        assert!(!DirtyRatio::default().is_reached_by(1, 3));
        assert!(!DirtyRatio::default().is_reached_by(0, 0));
        for ppm in [0, 1, 333_333, 500_000, 999_999, 1_000_000] {
            let ratio = DirtyRatio::from_parts_per_million(ppm).unwrap();
            assert_eq!(ratio.to_string().parse::<DirtyRatio>(), Ok(ratio));
        }
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

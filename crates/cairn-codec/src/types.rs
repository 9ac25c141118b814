//! The two numbers a record batch carries that the rest of Cairn must not mix up with plain
//! integers: the offset of a record and the leader epoch of a batch. The storage-only numbers
//! (relative offsets, file positions, entry indexes) live in `cairn-log`.

use std::fmt;

/// A Kafka offset: the position of one record in a partition, dense from the log start.
///
/// Stored on disk as a signed 64-bit integer (Kafka's `int64`); Cairn never produces a negative
/// one, so it is unsigned here and every conversion from the wire checks the sign.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset(pub u64);

impl Offset {
    /// The offset `count` records after this one.
    /// Saturates rather than overflows: offsets come from disk and the wire, and a damaged one
    /// must make a check fail, not the process panic.
    pub fn plus(self, count: u64) -> Offset {
        Offset(self.0.saturating_add(count))
    }

    /// Converts a signed offset from the wire or from disk; negative values are rejected.
    pub fn from_i64(value: i64) -> Option<Offset> {
        u64::try_from(value).ok().map(Offset)
    }

    /// The value as Kafka's signed `int64`, saturating at `i64::MAX` (never reached in practice).
    pub fn as_i64(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Kafka's partition leader epoch, stored in every batch header; the Raft term once the
/// partition is replicated. `-1` (Kafka's "no epoch") is allowed on input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaderEpoch(pub i32);

impl fmt::Display for LeaderEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

//! Number types that must not be mixed: absolute offsets, offsets relative to a segment's base,
//! byte positions inside a segment file, leader epochs and entry indexes.
//!
//! Conversions between them are named functions with the range check inside, because the
//! off-by-one and overflow bugs of a log live exactly where these numbers meet.

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

    /// This offset relative to `base`, if it fits the 32 bits Kafka's index files give it.
    pub fn relative_to(self, base: Offset) -> Option<RelativeOffset> {
        let delta = self.0.checked_sub(base.0)?;
        u32::try_from(delta).ok().map(RelativeOffset)
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

/// An offset relative to the base offset of the segment that holds it (Kafka's index files store
/// these as 4 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelativeOffset(pub u32);

impl RelativeOffset {
    /// The absolute offset given the segment's base offset.
    pub fn absolute(self, base: Offset) -> Offset {
        base.plus(u64::from(self.0))
    }
}

/// A byte position inside one segment's `.log` file.
///
/// Segments are capped below 2 GiB (Kafka's limit too), so positions fit in 32 bits, which is
/// what the index files store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FilePos(pub u32);

impl FilePos {
    /// The position as a `usize` for slicing a mapped file.
    pub fn as_usize(self) -> usize {
        self.0 as usize
    }

    /// The position as a `u64` for file I/O.
    pub fn as_u64(self) -> u64 {
        u64::from(self.0)
    }

    /// Converts a length or position, failing when it does not fit the 32-bit format.
    pub fn from_usize(value: usize) -> Option<FilePos> {
        u32::try_from(value).ok().map(FilePos)
    }
}

impl fmt::Display for FilePos {
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

/// The ordinal of one entry (one batch, with or without records) in the partition's log: the
/// Raft log index once the log is replicated. Dense from the log start, like offsets, but it
/// also counts meta entries that take no offset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryIndex(pub u64);

impl EntryIndex {
    /// The entry index `count` entries after this one.
    /// Saturates rather than overflows (entry indexes are read from index files).
    pub fn plus(self, count: u64) -> EntryIndex {
        EntryIndex(self.0.saturating_add(count))
    }
}

impl fmt::Display for EntryIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

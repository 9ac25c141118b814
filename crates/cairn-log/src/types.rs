//! Number types that must not be mixed: absolute offsets, offsets relative to a segment's base,
//! byte positions inside a segment file, leader epochs and entry indexes.
//!
//! Conversions between them are named functions with the range check inside, because the
//! off-by-one and overflow bugs of a log live exactly where these numbers meet.

use std::fmt;

pub use cairn_codec::{LeaderEpoch, Offset};

/// An offset relative to the base offset of the segment that holds it (Kafka's index files store
/// these as 4 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelativeOffset(pub u32);

impl RelativeOffset {
    /// `offset` relative to `base`, if it is not below `base` and fits the 32 bits Kafka's index
    /// files give it.
    pub fn between(offset: Offset, base: Offset) -> Option<RelativeOffset> {
        let delta = offset.0.checked_sub(base.0)?;
        u32::try_from(delta).ok().map(RelativeOffset)
    }

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

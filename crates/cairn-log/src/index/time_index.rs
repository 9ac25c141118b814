//! Sparse time index of one segment (`.timeindex`, Kafka's format): 12-byte entries of a
//! timestamp and the relative offset of the batch that first reached it. Timestamps in the index
//! only grow; an entry is added at an offset-index point when the largest timestamp so far has
//! grown. It is a cache: recovery rebuilds it from the log.

use std::path::Path;

use super::mmap_index::MmapIndex;
use crate::error::LogError;
use crate::types::RelativeOffset;

/// Bytes per entry: timestamp (i64) and relative offset (u32), big-endian.
pub const TIME_INDEX_ENTRY_BYTES: usize = 12;
const WORDS: usize = TIME_INDEX_ENTRY_BYTES / 4;
const _: () = assert!(TIME_INDEX_ENTRY_BYTES == 12);

/// The `.timeindex` file of one segment.
#[derive(Debug)]
pub(crate) struct TimeIndex {
    file: MmapIndex,
}

impl TimeIndex {
    pub(crate) fn open_active(
        path: &Path,
        max_bytes: usize,
        keep: usize,
    ) -> Result<Self, LogError> {
        Ok(TimeIndex {
            file: MmapIndex::open_active(path, WORDS, max_bytes, keep)?,
        })
    }

    pub(crate) fn open_sealed(path: &Path) -> Result<Option<Self>, LogError> {
        Ok(MmapIndex::open_sealed(path, WORDS)?.map(|file| TimeIndex { file }))
    }

    pub(crate) fn len(&self) -> usize {
        self.file.len()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.file.is_full()
    }

    /// See [`MmapIndex::reserve`].
    pub(crate) fn reserve(&self, extra: usize) -> std::io::Result<()> {
        self.file.reserve(extra)
    }

    pub(crate) fn entry(&self, idx: usize) -> (i64, RelativeOffset) {
        let high = u64::from(self.file.word(idx, 0));
        let low = u64::from(self.file.word(idx, 1));
        (
            ((high << 32) | low) as i64,
            RelativeOffset(self.file.word(idx, 2)),
        )
    }

    /// The newest entry, if any.
    pub(crate) fn last(&self) -> Option<(i64, RelativeOffset)> {
        self.len().checked_sub(1).map(|idx| self.entry(idx))
    }

    /// Adds an entry if `timestamp` is above the last one (Kafka's `maybeAppend`).
    pub(crate) fn maybe_push(&self, timestamp: i64, offset: RelativeOffset) -> bool {
        if self.last().is_some_and(|(last, _)| last >= timestamp) {
            return true;
        }
        let bits = timestamp as u64;
        self.file
            .push(&[(bits >> 32) as u32, bits as u32, offset.0])
    }

    /// The relative offset to start searching from for the first record at or after
    /// `timestamp`: the entry with the largest timestamp below it, or the segment start.
    pub(crate) fn lookup(&self, timestamp: i64) -> RelativeOffset {
        // Keys are timestamps shifted into u64 order so that negative timestamps sort first.
        let key = |ts: i64| (ts as u64) ^ (1 << 63);
        let target = key(timestamp).saturating_sub(1);
        self.file
            .floor(target, |idx| key(self.entry(idx).0))
            .map(|idx| self.entry(idx).1)
            .unwrap_or_default()
    }

    /// Drops entries at or after relative offset `offset`.
    pub(crate) fn truncate_from_offset(&self, offset: RelativeOffset) {
        let keep = (0..self.len())
            .take_while(|&idx| self.entry(idx).1 < offset)
            .count();
        self.file.truncate_entries(keep);
    }

    pub(crate) fn trim_and_sync(&self) -> Result<(), LogError> {
        self.file.trim_and_sync()
    }
}

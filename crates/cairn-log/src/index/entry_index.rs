//! Sparse entry index of one segment (`.entryindex`, Cairn's own file): 16-byte entries mapping an
//! entry index (the future Raft log index, counting meta entries too) to the batch's relative base
//! offset and file position. The first entry is always the segment's first batch, so the file
//! also records the segment's base entry index. It is a cache: recovery rebuilds it from the log
//! and the previous segment.

use std::path::Path;

use super::mmap_index::MmapIndex;
use crate::error::LogError;
use crate::types::{EntryIndex, FilePos, RelativeOffset};

/// Bytes per entry: entry index (u64), relative base offset (u32), position (u32), big-endian.
pub const ENTRY_INDEX_ENTRY_BYTES: usize = 16;
const WORDS: usize = ENTRY_INDEX_ENTRY_BYTES / 4;
const _: () = assert!(ENTRY_INDEX_ENTRY_BYTES == 16);

/// One point of the entry index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EntryPoint {
    pub(crate) entry: EntryIndex,
    pub(crate) relative_offset: RelativeOffset,
    pub(crate) position: FilePos,
}

/// The `.entryindex` file of one segment.
#[derive(Debug)]
pub(crate) struct EntryIndexFile {
    file: MmapIndex,
}

impl EntryIndexFile {
    pub(crate) fn open_active(
        path: &Path,
        max_bytes: usize,
        keep: usize,
    ) -> Result<Self, LogError> {
        Ok(EntryIndexFile {
            file: MmapIndex::open_active(path, WORDS, max_bytes, keep)?,
        })
    }

    pub(crate) fn open_sealed(path: &Path) -> Result<Option<Self>, LogError> {
        Ok(MmapIndex::open_sealed(path, WORDS)?.map(|file| EntryIndexFile { file }))
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

    pub(crate) fn entry(&self, idx: usize) -> EntryPoint {
        let high = u64::from(self.file.word(idx, 0));
        let low = u64::from(self.file.word(idx, 1));
        EntryPoint {
            entry: EntryIndex((high << 32) | low),
            relative_offset: RelativeOffset(self.file.word(idx, 2)),
            position: FilePos(self.file.word(idx, 3)),
        }
    }

    pub(crate) fn last(&self) -> Option<EntryPoint> {
        self.len().checked_sub(1).map(|idx| self.entry(idx))
    }

    pub(crate) fn push(&self, point: EntryPoint) -> bool {
        let entry = point.entry.0;
        self.file.push(&[
            (entry >> 32) as u32,
            entry as u32,
            point.relative_offset.0,
            point.position.0,
        ])
    }

    /// The point with the largest entry index not above `target`.
    pub(crate) fn lookup(&self, target: EntryIndex) -> Option<EntryPoint> {
        self.file
            .floor(target.0, |idx| self.entry(idx).entry.0)
            .map(|idx| self.entry(idx))
    }

    /// Drops points whose batch starts at or after `position`.
    pub(crate) fn truncate_from_position(&self, position: FilePos) {
        let keep = (0..self.len())
            .take_while(|&idx| self.entry(idx).position < position)
            .count();
        self.file.truncate_entries(keep);
    }

    pub(crate) fn trim_and_sync(&self) -> Result<(), LogError> {
        self.file.trim_and_sync()
    }
}

impl EntryIndexFile {
    /// The last point whose batch's base offset is strictly below `relative`: a safe place to
    /// start walking when looking for the first entry at or past an offset.
    pub(crate) fn last_before_offset(&self, relative: RelativeOffset) -> Option<EntryPoint> {
        let target = u64::from(relative.0).checked_sub(1)?;
        self.file
            .floor(target, |idx| u64::from(self.file.word(idx, 2)))
            .map(|idx| self.entry(idx))
    }
}

impl EntryIndexFile {
    /// The last point whose batch starts at or before `position`.
    pub(crate) fn floor_by_position(&self, position: FilePos) -> Option<EntryPoint> {
        self.file
            .floor(position.as_u64(), |idx| u64::from(self.file.word(idx, 3)))
            .map(|idx| self.entry(idx))
    }
}

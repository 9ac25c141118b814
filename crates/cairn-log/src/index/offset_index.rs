//! Sparse offset index of one segment (`.index`, Kafka's format): 8-byte entries of relative
//! offset and file position, one per `index.interval.bytes` of log. Each entry names the last
//! offset of a batch and that batch's start position, so a lookup lands on a batch boundary at or
//! before the target. It is a cache: recovery rebuilds it from the log.

use std::path::Path;

use super::mmap_index::MmapIndex;
use crate::error::LogError;
use crate::types::{FilePos, RelativeOffset};

/// Bytes per entry: relative offset (u32) and position (u32), big-endian.
pub const OFFSET_INDEX_ENTRY_BYTES: usize = 8;
const WORDS: usize = OFFSET_INDEX_ENTRY_BYTES / 4;
const _: () = assert!(OFFSET_INDEX_ENTRY_BYTES == 8);

/// The `.index` file of one segment.
#[derive(Debug)]
pub(crate) struct OffsetIndex {
    file: MmapIndex,
}

impl OffsetIndex {
    pub(crate) fn open_active(
        path: &Path,
        max_bytes: usize,
        keep: usize,
    ) -> Result<Self, LogError> {
        Ok(OffsetIndex {
            file: MmapIndex::open_active(path, WORDS, max_bytes, keep)?,
        })
    }

    pub(crate) fn open_sealed(path: &Path) -> Result<Option<Self>, LogError> {
        Ok(MmapIndex::open_sealed(path, WORDS)?.map(|file| OffsetIndex { file }))
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

    pub(crate) fn entry(&self, idx: usize) -> (RelativeOffset, FilePos) {
        (
            RelativeOffset(self.file.word(idx, 0)),
            FilePos(self.file.word(idx, 1)),
        )
    }

    pub(crate) fn push(&self, last_offset: RelativeOffset, position: FilePos) -> bool {
        debug_assert!(
            self.len() == 0 || self.entry(self.len() - 1).0 < last_offset,
            "offset index entries must increase"
        );
        self.file.push(&[last_offset.0, position.0])
    }

    /// Drops entries whose batch starts at or after `position`.
    pub(crate) fn truncate_from_position(&self, position: FilePos) {
        let keep = self
            .file
            .floor(position.as_u64(), |idx| u64::from(self.file.word(idx, 1)))
            .map_or(0, |idx| {
                if self.entry(idx).1 < position {
                    idx + 1
                } else {
                    idx
                }
            });
        self.file.truncate_entries(keep);
    }

    pub(crate) fn trim_and_sync(&self) -> Result<(), LogError> {
        self.file.trim_and_sync()
    }
}

impl OffsetIndex {
    /// The entry with the largest offset not above `target`, if any.
    pub(crate) fn floor_entry(&self, target: RelativeOffset) -> Option<(RelativeOffset, FilePos)> {
        self.file
            .floor(u64::from(target.0), |idx| u64::from(self.file.word(idx, 0)))
            .map(|idx| self.entry(idx))
    }
}

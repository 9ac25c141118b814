//! Finding an entry inside one segment, by offset or by entry index: a sparse index lookup, then
//! a short walk. Used to place the high watermark and to cut the log on truncation.

use super::appender::Segment;
use super::walker::{BatchWalker, WalkError};
use crate::index::EntryPoint;
use crate::types::{EntryIndex, FilePos, Offset, RelativeOffset};

impl Segment {
    /// The start of the first entry in this segment whose base offset is at or past `offset`,
    /// or of the data batch that holds `offset`, with its entry index. `None` when the segment
    /// has no such entry.
    pub(crate) fn locate(
        &self,
        offset: Offset,
    ) -> Result<Option<(FilePos, EntryIndex)>, WalkError> {
        if offset < self.base_offset {
            return Ok(Some((FilePos(0), self.base_entry)));
        }
        let start = RelativeOffset::between(offset, self.base_offset)
            .and_then(|rel| self.indexes.entry.last_before_offset(rel))
            .unwrap_or(self.start_point());
        self.walk_from(start, |walked| {
            let batch = &walked.batch;
            batch.base_offset() >= offset || (!batch.is_meta() && walked.next_offset() > offset)
        })
    }

    /// The start of entry `entry` in this segment and its base offset, or `None` when the
    /// segment ends before it.
    pub(crate) fn locate_entry(
        &self,
        entry: EntryIndex,
    ) -> Result<Option<(FilePos, EntryIndex)>, WalkError> {
        if entry <= self.base_entry {
            return Ok(Some((FilePos(0), self.base_entry)));
        }
        let start = self
            .indexes
            .entry
            .lookup(entry)
            .unwrap_or(self.start_point());
        let mut current = start.entry;
        self.walk_from(start, |_| {
            let found = current >= entry;
            current = current.plus(1);
            found
        })
    }

    fn start_point(&self) -> EntryPoint {
        EntryPoint {
            entry: self.base_entry,
            relative_offset: Default::default(),
            position: FilePos(0),
        }
    }

    fn walk_from(
        &self,
        start: EntryPoint,
        mut is_target: impl FnMut(&super::WalkedBatch) -> bool,
    ) -> Result<Option<(FilePos, EntryIndex)>, WalkError> {
        let expected = start.relative_offset.absolute(self.base_offset);
        let walker = BatchWalker::new(self.data(), start.position, self.state.size, Some(expected))
            .allow_gaps(self.compacted);
        let mut entry = start.entry;
        for walked in walker {
            let walked = walked?;
            if is_target(&walked) {
                return Ok(Some((walked.position, entry)));
            }
            entry = entry.plus(1);
        }
        Ok(None)
    }
}

//! Finding an entry inside one segment, by offset or by entry index: a sparse index lookup, then
//! a short walk. Used to place the high watermark and to cut the log on truncation.

use super::appender::Segment;
use super::walker::{BatchWalker, SteppedOver, WalkError, step_over_damaged};
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
        self.walk_from(start, |at| {
            at.base_offset >= offset || (!at.is_meta && at.next_offset > offset)
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

    /// Walks from `start` to the first batch `is_target` accepts: its position and entry.
    /// A damaged batch is judged by its header when [`step_over_damaged`] vouches for it (so
    /// one damaged committed batch does not stop the high watermark or a truncation behind it);
    /// otherwise the damage is the error.
    fn walk_from(
        &self,
        start: EntryPoint,
        mut is_target: impl FnMut(&SteppedOver) -> bool,
    ) -> Result<Option<(FilePos, EntryIndex)>, WalkError> {
        let expected = start.relative_offset.absolute(self.base_offset);
        let data = self.data();
        let end = self.state.size;
        let mut walker = BatchWalker::new(data.clone(), start.position, end, Some(expected))
            .allow_gaps(self.compacted);
        let mut entry = start.entry;
        while let Some(walked) = walker.next() {
            let (position, at) = match walked {
                Ok(walked) => (
                    walked.position,
                    SteppedOver {
                        next_position: walked.end(),
                        base_offset: walked.batch.base_offset(),
                        next_offset: walked.next_offset(),
                        is_meta: walked.batch.is_meta(),
                    },
                ),
                Err(err) => {
                    let floor = walker.offset_floor();
                    let stepped = step_over_damaged(&data, &err, end, floor, self.compacted)
                        .ok_or_else(|| err.clone())?;
                    walker.resume_at(stepped.next_position);
                    (err.position, stepped)
                }
            };
            if is_target(&at) {
                return Ok(Some((position, entry)));
            }
            entry = entry.plus(1);
        }
        Ok(None)
    }
}

//! Removing a suffix of the log (a follower dropping entries its leader never committed) and
//! moving the high watermark. Truncation never reaches at or below the high watermark, which is
//! what makes it safe for readers holding zero-copy slices of the mapped segments.

use std::sync::Arc;

use super::Log;
use crate::batch::BatchHeader;
use crate::checkpoint::fsync_dir;
use crate::error::LogError;
use crate::index::EntryPoint;
use crate::segment::{delete_segment_files, open::walk_tail};
use crate::types::{EntryIndex, FilePos, Offset, RelativeOffset};

impl Log {
    /// Removes every entry whose base offset is at or past `offset`, and the data batch holding
    /// `offset` if it starts before it (batches are never split). Returns the new log end
    /// offset, which can be below `offset` in that case.
    ///
    /// # Errors
    /// [`LogError::TruncateBelowHighWatermark`] if visible data would go; I/O errors;
    /// [`LogError::Poisoned`].
    pub fn truncate_to(&mut self, offset: Offset) -> Result<Offset, LogError> {
        self.check_writable()?;
        if offset < self.high_watermark {
            return Err(LogError::TruncateBelowHighWatermark {
                requested: offset,
                high_watermark: self.high_watermark,
            });
        }
        let (idx, pos, _) = self.locate(offset)?;
        if self.cuts_visible(idx, pos) {
            // Meta entries at the high watermark can already be visible (a single replica
            // shows everything flushed): their bytes may sit in a reader's hands.
            return Err(LogError::TruncateBelowHighWatermark {
                requested: offset,
                high_watermark: self.high_watermark,
            });
        }
        self.cut(idx, pos)?;
        Ok(self.log_end_offset())
    }

    /// Removes entry `entry` and every entry after it (Raft's truncation of a conflicting
    /// suffix).
    ///
    /// # Errors
    /// [`LogError::TruncateBelowHighWatermark`] if the entry holds visible offsets; I/O errors.
    pub fn truncate_entries_from(&mut self, entry: EntryIndex) -> Result<(), LogError> {
        self.check_writable()?;
        let Some((idx, pos)) = self.locate_entry(entry)? else {
            return Ok(());
        };
        let base = self.base_offset_at(idx, pos);
        if base < self.high_watermark || entry < self.log_start.entry || self.cuts_visible(idx, pos)
        {
            return Err(LogError::TruncateBelowHighWatermark {
                requested: base,
                high_watermark: self.high_watermark,
            });
        }
        self.cut(idx, pos)
    }

    /// Sets the high watermark (for a replica whose commit point replication decides). It may
    /// only move forward, never past the log end, and only to a batch boundary (replication
    /// commits whole entries, so a watermark inside a batch is a caller's bug).
    ///
    /// # Errors
    /// [`LogError::InvalidHighWatermark`]; [`LogError::Poisoned`] (after a failed fsync nothing
    /// more may become visible).
    pub fn set_high_watermark(&mut self, high_watermark: Offset) -> Result<(), LogError> {
        self.check_writable()?;
        let log_end = self.log_end_offset();
        let invalid = LogError::InvalidHighWatermark {
            requested: high_watermark,
            current: self.high_watermark,
            log_end,
        };
        if high_watermark < self.high_watermark || high_watermark > log_end {
            return Err(invalid);
        }
        let (idx, pos, _) = self.locate(high_watermark)?;
        if high_watermark != log_end && self.base_offset_at(idx, pos) != high_watermark {
            return Err(invalid);
        }
        self.high_watermark = high_watermark;
        self.visible = self.visible.max((self.segments[idx].base_offset, pos));
        self.publish_high_watermark();
        Ok(())
    }

    /// Truncation without the high-watermark check, to undo a group that failed mid-write.
    pub(crate) fn truncate_entries_unchecked(&mut self, entry: EntryIndex) -> Result<(), LogError> {
        match self.locate_entry(entry)? {
            Some((idx, pos)) => self.cut(idx, pos),
            None => Ok(()),
        }
    }

    fn locate_entry(&self, entry: EntryIndex) -> Result<Option<(usize, FilePos)>, LogError> {
        if entry >= self.next_entry() {
            return Ok(None);
        }
        let idx = self
            .segments
            .partition_point(|s| s.base_entry <= entry)
            .saturating_sub(1);
        let segment = &self.segments[idx];
        let found = segment
            .locate_entry(entry)
            .map_err(|e| self.corrupt(segment, e, segment.base_offset))?;
        Ok(found.map(|(pos, _)| (idx, pos)))
    }

    fn base_offset_at(&self, idx: usize, pos: FilePos) -> Offset {
        let segment = &self.segments[idx];
        let header = segment
            .data()
            .get(pos.as_usize()..)
            .and_then(|b| BatchHeader::parse(b).ok());
        header
            .and_then(|h| Offset::from_i64(h.base_offset))
            .unwrap_or(segment.state.next_offset)
    }

    /// Cuts the log at `pos` in segment `idx`: later segments are deleted, that one is cut and
    /// becomes the active segment. Any failure part-way poisons the log: the segment list and
    /// the files may no longer agree, and only recovery can tell what is on disk.
    fn cut(&mut self, idx: usize, pos: FilePos) -> Result<(), LogError> {
        assert!(
            !self.cuts_visible(idx, pos),
            "cut at {pos} in segment {} below the visible end {:?}",
            self.segments[idx].base_offset,
            self.visible
        );
        // Entry readers copying bytes past the visible end must not see the file shrink under
        // them: they hold this lock for reading while they copy.
        let shared = Arc::clone(&self.shared);
        let _cutting = shared.cut_lock.write().unwrap_or_else(|e| e.into_inner());
        match self.cut_unchecked(idx, pos) {
            Ok(()) => {
                self.publish();
                Ok(())
            }
            Err(err) => {
                let err = self.poison(format!("truncation failed part-way: {err}"));
                // Publish what the segment list says now, so entry readers never walk past a
                // file that was cut.
                self.publish();
                Err(err)
            }
        }
    }

    fn cut_unchecked(&mut self, idx: usize, pos: FilePos) -> Result<(), LogError> {
        let cut_offset = self.base_offset_at(idx, pos);
        let removed = self.segments.split_off(idx + 1);
        for segment in &removed {
            delete_segment_files(&self.dir, segment.base_offset)?;
        }
        // Make the deletions durable before shortening the cut segment: otherwise a crash could
        // keep the shorter file yet bring the later segments back, after a gap.
        fsync_dir(&self.dir)?;
        let (cfg, now_ms) = (self.cfg.clone(), self.last_now_ms);
        let segment = self.segments.last_mut().expect("idx is a valid segment");
        if segment.sealed {
            // A sealed segment was opened read-only with trimmed indexes: reopen it for writing
            // first, since it is about to be cut and become the active segment.
            segment.reactivate(&cfg, now_ms)?;
        }
        if pos < segment.state.size {
            let indexes = &segment.indexes;
            let cut_relative =
                RelativeOffset::between(cut_offset, segment.base_offset).unwrap_or_default();
            indexes.time.truncate_from_offset(cut_relative);
            indexes.offset.truncate_from_position(pos);
            indexes.entry.truncate_from_position(pos);
            let start = indexes.entry.last().unwrap_or(EntryPoint {
                entry: segment.base_entry,
                relative_offset: Default::default(),
                position: FilePos(0),
            });
            let data = segment.data();
            let state = walk_tail(
                &data,
                indexes,
                segment.base_offset,
                start,
                pos,
                segment.compacted,
            )
            .map_err(|e| LogError::CorruptBatch {
                path: segment.log_path.to_path_buf(),
                position: e.position,
                offset: cut_offset,
                reason: e.reason,
            })?;
            segment.truncate(state)?;
        }
        Ok(())
    }
}

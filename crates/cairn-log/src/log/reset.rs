//! Starting the log over: every segment goes and an empty one begins at a given entry index and
//! offset. A Raft follower does this when it installs a snapshot past the end of its log (or
//! purges past it): what it had is either older than the snapshot or a suffix the leader never
//! committed, and the next entry it takes is the one after the snapshot.
//!
//! Crash safety: the old segments are retired (renamed) and the directory fsynced before the
//! new segment and then the log start checkpoint are written, so every state a crash can leave
//! is the old log start over an empty log, or the new one; never old entries renumbered.

use std::sync::Arc;

use super::Log;
use crate::checkpoint::{CLEANER_FILE, LogStart, fsync_dir};
use crate::error::LogError;
use crate::segment::{MAX_SEGMENT_BASE, Segment, retire_segment_files, unlink_retired};
use crate::types::{EntryIndex, FilePos, Offset};

impl Log {
    /// Empties the log and starts it at `entry` and `offset`: the log start, the high
    /// watermark and the log end all become `offset`, and the next entry appended gets index
    /// `entry`. Durable when this returns. Readers holding slices of the old segments keep them
    /// (the files are unlinked, never cut); new reads see the empty log.
    ///
    /// # Errors
    /// [`LogError::OffsetOutOfRange`] for an offset too large for a segment name; I/O errors,
    /// after which the log is poisoned and the next open finds either the old log start over
    /// an empty log or the new one.
    pub fn reset(
        &mut self,
        entry: EntryIndex,
        offset: Offset,
        now_ms: i64,
    ) -> Result<(), LogError> {
        self.check_writable()?;
        if offset.0 > MAX_SEGMENT_BASE {
            // No segment file name can carry it (offset arithmetic on the segment would overflow).
            return Err(LogError::OffsetOutOfRange {
                requested: i64::try_from(offset.0).unwrap_or(i64::MAX),
                log_start: self.log_start.offset,
                high_watermark: self.high_watermark,
            });
        }
        self.last_now_ms = self.last_now_ms.max(now_ms);
        let shared = Arc::clone(&self.shared);
        let _cutting = shared.cut_lock.write().unwrap_or_else(|e| e.into_inner());
        match self.reset_unchecked(entry, offset) {
            Ok(retired) => {
                self.publish();
                unlink_retired(retired);
                tracing::info!(dir = %self.dir.display(), %entry, %offset, "log reset: it now starts empty here");
                Ok(())
            }
            Err(err) => Err(self.poison(format!("reset failed part-way: {err}"))),
        }
    }

    fn reset_unchecked(
        &mut self,
        entry: EntryIndex,
        offset: Offset,
    ) -> Result<Vec<std::path::PathBuf>, LogError> {
        let mut retired = Vec::new();
        for segment in &self.segments {
            retired.extend(retire_segment_files(&self.dir, segment.base_offset)?);
        }
        // The cleaner checkpoint describes segments that are gone.
        let cleaner = self.dir.join(CLEANER_FILE);
        match std::fs::remove_file(&cleaner) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(LogError::io("remove cleaner checkpoint", &cleaner, e));
            }
            _ => {}
        }
        fsync_dir(&self.dir)?;
        let segment = Segment::create(&self.dir, offset, entry, &self.cfg, self.last_now_ms)?;
        fsync_dir(&self.dir)?;
        let start = LogStart { offset, entry };
        start.write(&self.dir)?;
        self.segments = vec![segment];
        self.log_start = start;
        self.high_watermark = offset;
        self.visible = (offset, FilePos(0));
        self.cleaner = None;
        self.entry_floor = self.entry_floor.map(|floor| floor.max(entry));
        Ok(retired)
    }
}

//! Retention: deleting whole sealed segments by age (`retention.ms`) or total size
//! (`retention.bytes`), oldest first, and by entry index for a Raft purge. The new log start is
//! checkpointed before any file goes, so a crash mid-way never leaves the log start pointing at
//! a deleted segment. An entry floor keeps retention off entries Raft has not purged yet.

use super::Log;
use crate::checkpoint::{LogStart, fsync_dir};
use crate::error::LogError;
use crate::segment::{retire_segment_files, unlink_retired};
use crate::types::{EntryIndex, Offset};

/// What a retention pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Segments deleted.
    pub deleted_segments: usize,
    /// Bytes of log deleted.
    pub deleted_bytes: u64,
    /// The log start offset after the pass.
    pub log_start_offset: Offset,
}

impl Log {
    /// Deletes the sealed segments that `retention.ms` or `retention.bytes` no longer keep. The
    /// active segment is never deleted, nor any segment holding offsets at or past the high
    /// watermark, nor any segment holding an entry at or above the entry floor
    /// ([`Log::set_entry_floor`]). Readers below the new log start get
    /// [`LogError::OffsetOutOfRange`].
    ///
    /// # Errors
    /// I/O errors writing the checkpoint (nothing deleted) or removing files.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<RetentionOutcome, LogError> {
        self.last_now_ms = self.last_now_ms.max(now_ms);
        let count = self.expired_prefix(now_ms, true);
        self.delete_prefix(count, "retention")
    }

    /// The first entry retention would keep if no entry floor held it back: what a Raft group
    /// purges up to (exclusive) to let retention happen. `None` when retention would delete
    /// nothing.
    pub fn retention_entry_bound(&self, now_ms: i64) -> Option<EntryIndex> {
        match self.expired_prefix(now_ms, false) {
            0 => None,
            count => Some(self.segments[count - 1].state.next_entry),
        }
    }

    /// The first entry that would be kept if every leading sealed segment whose records all lie
    /// below `offset` (and below the high watermark) were deleted, whatever retention says:
    /// what a Raft group purges up to (exclusive) before deleting records it knows are no
    /// longer needed (a compacted topic's superseded prefix). `None` when no such segment
    /// exists.
    pub fn entry_bound_below_offset(&self, offset: Offset) -> Option<EntryIndex> {
        let below = offset.min(self.high_watermark);
        let sealed = &self.segments[..self.segments.len() - 1];
        match sealed
            .iter()
            .take_while(|s| s.state.next_offset <= below)
            .count()
        {
            0 => None,
            count => Some(self.segments[count - 1].state.next_entry),
        }
    }

    /// Deletes the leading sealed segments whose entries all lie below `entry` (and whose
    /// offsets all lie below the high watermark), whatever retention says: an explicit deletion
    /// by entry index. The log start offset and entry move to the first segment kept; entries
    /// below `entry` in it stay on disk until a later call can delete the whole segment.
    ///
    /// # Errors
    /// As [`Log::enforce_retention`].
    pub fn delete_segments_before_entry(
        &mut self,
        entry: EntryIndex,
    ) -> Result<RetentionOutcome, LogError> {
        let sealed = &self.segments[..self.segments.len() - 1];
        let count = sealed
            .iter()
            .take_while(|s| {
                s.state.next_entry <= entry && s.state.next_offset <= self.high_watermark
            })
            .count();
        self.delete_prefix(count, "raft purge")
    }

    /// Deletes the first `count` segments: checkpoints the new log start first, then retires
    /// the files and unlinks them off the writer's path.
    fn delete_prefix(
        &mut self,
        count: usize,
        why: &'static str,
    ) -> Result<RetentionOutcome, LogError> {
        if count == 0 {
            return Ok(RetentionOutcome {
                log_start_offset: self.log_start.offset,
                ..Default::default()
            });
        }
        assert!(
            count < self.segments.len(),
            "deleting {count} of {} segments would delete the active one",
            self.segments.len()
        );
        let first_kept = &self.segments[count];
        let start = LogStart {
            offset: first_kept.base_offset,
            entry: first_kept.base_entry,
        };
        start.write(&self.dir)?;
        self.log_start = start;
        let removed: Vec<_> = self.segments.drain(..count).collect();
        self.publish();
        let mut deleted_bytes = 0;
        let mut retired = Vec::new();
        for segment in &removed {
            deleted_bytes += segment.state.size.as_u64();
            retired.extend(retire_segment_files(&self.dir, segment.base_offset)?);
        }
        fsync_dir(&self.dir)?;
        // Freeing gigabytes takes a while and, done at once, stalls the disk: the deleter
        // thread does it, paced.
        unlink_retired(retired);
        tracing::info!(dir = %self.dir.display(), segments = count, bytes = deleted_bytes, log_start = %start.offset, why, "deleted segments");
        Ok(RetentionOutcome {
            deleted_segments: count,
            deleted_bytes,
            log_start_offset: start.offset,
        })
    }

    /// How many of the oldest segments retention may delete (held back by the entry floor
    /// when `respect_floor`).
    fn expired_prefix(&self, now_ms: i64, respect_floor: bool) -> usize {
        let sealed = &self.segments[..self.segments.len() - 1];
        let mut excess_bytes = self
            .cfg
            .retention_bytes
            .map(|limit| self.size_bytes().saturating_sub(limit));
        let mut count = 0;
        for segment in sealed {
            if segment.state.next_offset > self.high_watermark
                || (respect_floor && !self.below_entry_floor(segment.state.next_entry))
            {
                break;
            }
            let too_old = self.cfg.retention_ms.is_some_and(|ms| {
                let max_ts = segment.state.max_timestamp;
                max_ts != i64::MIN
                    && now_ms.saturating_sub(max_ts) > i64::try_from(ms).unwrap_or(i64::MAX)
            });
            let size = segment.state.size.as_u64();
            let too_big = excess_bytes.is_some_and(|excess| excess >= size);
            if !(too_old || too_big) {
                break;
            }
            if let Some(excess) = excess_bytes.as_mut() {
                *excess = excess.saturating_sub(size);
            }
            count += 1;
        }
        count
    }
}

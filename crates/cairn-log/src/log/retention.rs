//! Retention: deleting whole sealed segments by age (`retention.ms`) or total size
//! (`retention.bytes`), oldest first. The new log start is checkpointed before any file goes, so
//! a crash mid-way never leaves the log start pointing at a deleted segment.

use super::Log;
use crate::checkpoint::{LogStart, fsync_dir};
use crate::error::LogError;
use crate::segment::{retire_segment_files, unlink_retired};
use crate::types::Offset;

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
    /// watermark. Readers below the new log start get [`LogError::OffsetOutOfRange`].
    ///
    /// # Errors
    /// I/O errors writing the checkpoint (nothing deleted) or removing files.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<RetentionOutcome, LogError> {
        self.last_now_ms = self.last_now_ms.max(now_ms);
        let count = self.expired_prefix(now_ms);
        if count == 0 {
            return Ok(RetentionOutcome {
                log_start_offset: self.log_start.offset,
                ..Default::default()
            });
        }
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
        // Unlinking gigabytes can take a while; keep it off the writer's path.
        let spawned = std::thread::Builder::new()
            .name("cairn-log-delete".to_string())
            .spawn(move || unlink_retired(&retired));
        if let Err(err) = spawned {
            tracing::warn!(%err, "no thread to delete retired segments; the next open will");
        }
        tracing::info!(dir = %self.dir.display(), segments = count, bytes = deleted_bytes, log_start = %start.offset, "retention deleted segments");
        Ok(RetentionOutcome {
            deleted_segments: count,
            deleted_bytes,
            log_start_offset: start.offset,
        })
    }

    /// How many of the oldest segments retention may delete.
    fn expired_prefix(&self, now_ms: i64) -> usize {
        let sealed = &self.segments[..self.segments.len() - 1];
        let mut excess_bytes = self
            .cfg
            .retention_bytes
            .map(|limit| self.size_bytes().saturating_sub(limit));
        let mut count = 0;
        for segment in sealed {
            if segment.state.next_offset > self.high_watermark {
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

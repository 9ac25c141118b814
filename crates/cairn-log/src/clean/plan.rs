//! Choosing what a clean covers, on the writer's thread: the longest prefix of sealed segments
//! that readers see whole and that `min.compaction.lag.ms` lets go, and whether the dirty share
//! of it (`min.cleanable.dirty.ratio`) or a due tombstone horizon makes a clean worth it. Only
//! views (`Arc`s of immutable mappings) leave this module; no byte is read here.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::job::CleanJob;
use crate::checkpoint::CleanerCheckpoint;
use crate::log::Log;
use crate::segment::SegmentView;
use crate::types::FilePos;

impl Log {
    /// A clean to run off the writer's thread ([`CleanJob::run`], then
    /// [`Log::finish_clean`]), or `None` when the log does not compact or nothing is due:
    /// the dirty share of the cleanable segments is below `min.cleanable.dirty.ratio` and no
    /// kept tombstone's delete horizon has passed.
    pub fn plan_clean(&self, now_ms: i64) -> Option<CleanJob> {
        self.plan(now_ms, false)
    }

    pub(crate) fn plan(&self, now_ms: i64, force: bool) -> Option<CleanJob> {
        if !self.cfg.compact || self.poisoned.is_some() {
            return None;
        }
        let end = self.cleanable_count(now_ms);
        if end == 0 {
            return None;
        }
        let cleaned = self
            .cleaner
            .map_or(0, |c| {
                self.segments
                    .partition_point(|s| s.base_offset < c.first_dirty)
            })
            .min(end);
        let sizes = |range: std::ops::Range<usize>| -> u64 {
            self.segments[range]
                .iter()
                .map(|s| s.state.size.as_u64())
                .sum()
        };
        let dirty_due = self
            .cfg
            .min_cleanable_dirty_ratio
            .is_reached_by(sizes(cleaned..end), sizes(0..end))
            && cleaned < end;
        let horizon_due = self.next_delete_horizon_ms.is_some_and(|h| now_ms >= h);
        if !(force || dirty_due || horizon_due) {
            return None;
        }
        let first_dirty = &self.segments[end];
        Some(CleanJob {
            dir: self.dir.clone(),
            cfg: self.cfg.clone(),
            now_ms,
            sources: self.segments[..end].iter().map(|s| s.view()).collect(),
            visible: self.visible_views(0),
            log_start: self.log_start,
            checkpoint: CleanerCheckpoint {
                first_dirty: first_dirty.base_offset,
                first_dirty_entry: first_dirty.base_entry,
            },
            cancel: Arc::new(AtomicBool::new(false)),
        })
    }

    /// How many leading segments may be cleaned: sealed, wholly below the visible end (so no
    /// truncation can reach them and no reader waits for their bytes), and at least
    /// `min.compaction.lag.ms` old by their newest record.
    fn cleanable_count(&self, now_ms: i64) -> usize {
        let lag_ms = i64::try_from(self.cfg.min_compaction_lag_ms).unwrap_or(i64::MAX);
        let sealed = self.segments.len() - 1;
        let mut count = 0;
        for segment in &self.segments[..sealed] {
            // Every byte of the segment is below the visible end (which a roll does not move:
            // right after one it still names the end of the segment just sealed).
            let visible = (segment.base_offset, segment.state.size) <= self.visible
                && segment.state.next_offset <= self.high_watermark;
            let max_ts = segment.state.max_timestamp;
            let old_enough =
                lag_ms == 0 || max_ts == i64::MIN || now_ms.saturating_sub(max_ts) >= lag_ms;
            // Cleaning drops and renumbers entries: never where Raft still reads by index.
            let floor_ok = self.below_entry_floor(segment.state.next_entry);
            if !(visible && old_enough && floor_ok) {
                break;
            }
            count += 1;
        }
        count
    }

    /// The segments from `from` on with how far readers may see into each: what the producer
    /// scan reads. Bytes past the visible end may still be truncated, so they are left alone.
    fn visible_views(&self, from: usize) -> Vec<(SegmentView, FilePos)> {
        let (visible_base, visible_pos) = self.visible;
        self.segments[from..]
            .iter()
            .take_while(|s| s.base_offset <= visible_base)
            .map(|s| {
                let end = if s.base_offset == visible_base {
                    visible_pos
                } else {
                    s.state.size
                };
                (s.view(), end)
            })
            .collect()
    }
}

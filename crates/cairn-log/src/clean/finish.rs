//! The brief part of a clean, on the writer's thread: check that the log still holds the
//! segments the clean read, commit the staged files (one rename), move them into place, open
//! them and swap them into the segment list, then publish.
//!
//! Why readers stay safe: a reader holds a view of an old segment, that is, an `Arc` of its
//! mapping. Moving a cleaned file over the old name unlinks the old inode but does not free it
//! while it is mapped, exactly as retention's rename-then-unlink does, so every `Bytes` slice a
//! reader was handed stays valid until the reader drops it.

use super::CleanOutcome;
use super::job::CleanedSegments;
use super::swap::{commit, discard_staging, roll_forward};
use crate::error::LogError;
use crate::log::Log;
use crate::segment::Segment;
use crate::segment::open::{SegmentHints, open_sealed};
use crate::types::FilePos;

impl Log {
    /// Commits a clean that [`super::CleanJob::run`] staged. If the log changed in a way the
    /// clean did not see (retention deleted some of its segments, the log start moved), the
    /// staged files are discarded and the outcome says `ran: false`.
    ///
    /// When this returns `Ok` with `ran: true`, the cleaned segments are durable, in the
    /// segment list, and what readers see.
    ///
    /// # Errors
    /// [`LogError::Poisoned`] if the log was poisoned before, or if committing or moving the
    /// files fails: the clean is then finished by the next open.
    pub fn finish_clean(&mut self, cleaned: CleanedSegments) -> Result<CleanOutcome, LogError> {
        if let Err(err) = self.check_writable() {
            discard_staging(&self.dir);
            return Err(err);
        }
        if !self.still_holds(&cleaned) {
            tracing::info!(dir = %self.dir.display(), "the log changed during compaction; discarding the cleaned segments");
            discard_staging(&self.dir);
            return Ok(self.idle_outcome());
        }
        if let Err(err) = commit(&self.dir).and_then(|()| roll_forward(&self.dir)) {
            return Err(self.poison(format!("compaction swap failed part-way: {err}")));
        }
        if let Err(err) = self.swap_in(&cleaned) {
            return Err(self.poison(format!("opening cleaned segments failed: {err}")));
        }
        let outcome = cleaned.outcome;
        self.next_delete_horizon_ms = outcome.next_delete_horizon_ms;
        self.shared.cleaner_counters.record(&outcome);
        tracing::info!(
            dir = %self.dir.display(), segments = outcome.segments_cleaned,
            records_removed = outcome.records_removed, bytes_before = outcome.bytes_before,
            bytes_after = outcome.bytes_after, first_dirty = %outcome.first_dirty_offset,
            "compaction committed"
        );
        Ok(outcome)
    }

    /// True when the segments the clean read are still the log's first ones, followed by the
    /// segment its checkpoint names. Truncation never reaches them (they are below the visible
    /// end), so only retention can have moved them.
    fn still_holds(&self, cleaned: &CleanedSegments) -> bool {
        let count = cleaned.bases.len();
        self.log_start == cleaned.log_start
            && self.segments.len() > count
            && self.segments[..count]
                .iter()
                .zip(&cleaned.bases)
                .all(|(segment, base)| segment.base_offset == *base)
            && self.segments[count].base_offset == cleaned.checkpoint.first_dirty
            && self.segments[count].base_entry == cleaned.checkpoint.first_dirty_entry
    }

    /// Opens the cleaned segments (their indexes were written with them, so this is the cheap
    /// trusted open) and replaces the old ones in the list. The old handles are dropped off
    /// the writer's thread: closing the last handle of a replaced file frees its blocks.
    fn swap_in(&mut self, cleaned: &CleanedSegments) -> Result<(), LogError> {
        let count = cleaned.bases.len();
        let mut fresh = Vec::with_capacity(count);
        for (idx, (&base, &entry)) in cleaned.bases.iter().zip(&cleaned.base_entries).enumerate() {
            let hints = SegmentHints {
                base,
                base_entry: Some(entry),
                next_base: Some(self.segments[idx + 1].base_offset),
                compacted: true,
            };
            fresh.push(open_sealed(&self.dir, hints, &self.cfg)?);
        }
        let old: Vec<Segment> = self.segments.splice(..count, fresh).collect();
        self.cleaner = Some(cleaned.checkpoint);
        // The visible end can still name a position in a segment just replaced (a roll does
        // not move it), and that position means nothing in the cleaned file. Every cleaned
        // segment was wholly visible, so the start of the next one says the same thing.
        if self.visible.0 < cleaned.checkpoint.first_dirty {
            self.visible = (cleaned.checkpoint.first_dirty, FilePos(0));
        }
        self.publish();
        let spawned = std::thread::Builder::new()
            .name("cairn-log-delete".to_string())
            .spawn(move || drop(old));
        if let Err(err) = spawned {
            tracing::warn!(%err, "no thread to release replaced segments; releasing them here");
        }
        Ok(())
    }
}

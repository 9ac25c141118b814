//! Log compaction (Kafka's `cleanup.policy=compact`): keeping the newest record of each key in
//! the sealed, fully visible segments, and dropping tombstones once their delete horizon has
//! passed. The normative rules are `segments-format.md`, "Compaction".
//!
//! A clean has three steps, so that the writer is never blocked by the heavy part:
//! 1. [`Log::plan_clean`] (writer's thread, cheap): choose the segments, snapshot their views.
//! 2. [`CleanJob::run`] (any thread): read the snapshot, build the key map, write the cleaned
//!    segments into a staging directory and fsync them. It touches none of the writer's state.
//! 3. [`Log::finish_clean`] (writer's thread, brief): commit with one directory rename, move the
//!    files into place, open them and swap them into the segment list.
//!
//! What it deliberately does not do: clean the active segment or anything a reader cannot see
//! yet, change a kept record's offset, reorder records, or merge segments. The invariant a
//! reader must carry: a cleaned segment keeps its base offset, its first and last batch, and so
//! its offset range; only batches strictly inside it can leave gaps.

mod batch_filter;
mod finish;
mod job;
mod key_map;
mod plan;
mod rewrite;
pub(crate) mod swap;

use std::sync::atomic::{AtomicU64, Ordering};

pub use job::{CleanJob, CleanedSegments};
pub use key_map::MAX_KEY_MAP_BYTES;

use crate::error::LogError;
use crate::log::Log;
use crate::types::Offset;

/// What one clean did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanOutcome {
    /// False when there was nothing to clean, or the clean was abandoned because the log
    /// changed under it (retention deleted one of its segments); nothing changed then.
    pub ran: bool,
    /// Segments rewritten.
    pub segments_cleaned: usize,
    /// Records removed (superseded values and expired tombstones).
    pub records_removed: u64,
    /// Of those, tombstones removed because their delete horizon had passed.
    pub tombstones_removed: u64,
    /// Batches left out entirely.
    pub batches_removed: u64,
    /// Bytes of the cleaned segments before the clean.
    pub bytes_before: u64,
    /// Bytes of the same segments after it.
    pub bytes_after: u64,
    /// Everything below this offset has been cleaned (the cleaner checkpoint).
    pub first_dirty_offset: Offset,
    /// The earliest delete horizon of a tombstone still kept, if any: a clean at or after it
    /// can remove that tombstone.
    pub next_delete_horizon_ms: Option<i64>,
}

/// Running totals of the cleaner since the log was opened, for a metrics layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanerStats {
    /// Cleans that committed.
    pub runs: u64,
    /// Records removed.
    pub records_removed: u64,
    /// Tombstones removed after their delete horizon.
    pub tombstones_removed: u64,
    /// Batches left out entirely.
    pub batches_removed: u64,
    /// Bytes the cleaned segments shrank by.
    pub bytes_removed: u64,
}

/// The counters behind [`CleanerStats`], shared with readers.
#[derive(Debug, Default)]
pub(crate) struct CleanerCounters {
    runs: AtomicU64,
    records_removed: AtomicU64,
    tombstones_removed: AtomicU64,
    batches_removed: AtomicU64,
    bytes_removed: AtomicU64,
}

impl CleanerCounters {
    pub(crate) fn record(&self, outcome: &CleanOutcome) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.records_removed
            .fetch_add(outcome.records_removed, Ordering::Relaxed);
        self.tombstones_removed
            .fetch_add(outcome.tombstones_removed, Ordering::Relaxed);
        self.batches_removed
            .fetch_add(outcome.batches_removed, Ordering::Relaxed);
        self.bytes_removed.fetch_add(
            outcome.bytes_before.saturating_sub(outcome.bytes_after),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn snapshot(&self) -> CleanerStats {
        CleanerStats {
            runs: self.runs.load(Ordering::Relaxed),
            records_removed: self.records_removed.load(Ordering::Relaxed),
            tombstones_removed: self.tombstones_removed.load(Ordering::Relaxed),
            batches_removed: self.batches_removed.load(Ordering::Relaxed),
            bytes_removed: self.bytes_removed.load(Ordering::Relaxed),
        }
    }
}

impl Log {
    /// Runs one clean now, on the calling thread, whatever `min.cleanable.dirty.ratio` says
    /// (for tests and tools; the writer cleans in the background). `min.compaction.lag.ms` and
    /// the high watermark still bound what is cleaned. Does nothing unless the log compacts
    /// ([`crate::LogConfig::compact`]).
    ///
    /// When this returns `Ok`, the cleaned segments are durable and readers see them.
    ///
    /// # Errors
    /// [`LogError::CorruptBatch`] for a damaged batch in the range (nothing changes);
    /// [`LogError::CleanerKeyMapFull`]; I/O errors writing the cleaned segments (nothing
    /// changes); [`LogError::Poisoned`] if the swap fails part-way (the next open finishes it).
    pub fn clean(&mut self, now_ms: i64) -> Result<CleanOutcome, LogError> {
        self.check_writable()?;
        self.last_now_ms = self.last_now_ms.max(now_ms);
        match self.plan(now_ms, true) {
            Some(job) => {
                let cleaned = job.run()?;
                self.finish_clean(cleaned)
            }
            None => Ok(self.idle_outcome()),
        }
    }

    /// How far the log has been cleaned: every segment below this offset was rewritten by the
    /// cleaner.
    pub fn first_dirty_offset(&self) -> Offset {
        self.cleaner.map_or(self.log_start.offset, |c| {
            c.first_dirty.max(self.log_start.offset)
        })
    }

    fn idle_outcome(&self) -> CleanOutcome {
        CleanOutcome {
            first_dirty_offset: self.first_dirty_offset(),
            next_delete_horizon_ms: self.next_delete_horizon_ms,
            ..CleanOutcome::default()
        }
    }
}

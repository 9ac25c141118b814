//! The heavy part of a clean, safe to run on any thread: read a snapshot of the sealed segments,
//! build the key map, and write each cleaned segment (log and indexes) into the staging
//! directory, fsynced, with the new cleaner checkpoint beside them. It reads only immutable
//! mappings and writes only inside the staging directory, so the writer carries on meanwhile.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::CleanOutcome;
use super::batch_filter::{FilterContext, Filtered, filter_batch};
use super::key_map::{KeyMap, corrupt, last_producer_batches, walk_segment};
use super::swap::{discard_staging, prepare_staging, seal_staging};
use crate::batch::Batch;
use crate::checkpoint::{CleanerCheckpoint, LogStart};
use crate::config::LogConfig;
use crate::error::LogError;
use crate::segment::{Segment, SegmentView};
use crate::types::{EntryIndex, FilePos, Offset};

/// Bytes of cleaned batches gathered before one write to the staged segment.
const WRITE_CHUNK_BYTES: usize = 8 << 20;

/// A planned clean ([`crate::Log::plan_clean`]). It holds views of the segments it reads (their
/// mappings stay valid whatever the writer does meanwhile) and no reference to the log.
#[derive(Debug)]
pub struct CleanJob {
    pub(super) dir: PathBuf,
    pub(super) cfg: LogConfig,
    pub(super) now_ms: i64,
    /// The segments to clean: a prefix of the log, sealed and wholly visible.
    pub(super) sources: Vec<SegmentView>,
    /// The whole visible log, with where visibility ends in each segment: scanned for the last
    /// batch of each producer id.
    pub(super) visible: Vec<(SegmentView, FilePos)>,
    pub(super) log_start: LogStart,
    /// The cleaner checkpoint once this clean commits: the first segment it leaves alone.
    pub(super) checkpoint: CleanerCheckpoint,
    pub(super) cancel: Arc<AtomicBool>,
}

/// A clean whose segments are written and fsynced in the staging directory, waiting for
/// [`crate::Log::finish_clean`] to commit them. Dropping it without finishing leaves the
/// staging directory, which the next clean or open removes: the log stays as it was.
#[derive(Debug)]
pub struct CleanedSegments {
    pub(super) log_start: LogStart,
    pub(super) bases: Vec<Offset>,
    pub(super) base_entries: Vec<EntryIndex>,
    pub(super) checkpoint: CleanerCheckpoint,
    pub(super) outcome: CleanOutcome,
}

impl CleanJob {
    /// A flag that stops [`CleanJob::run`] between batches (it then fails with
    /// [`LogError::Closed`] and leaves the log as it was).
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancel)
    }

    /// Reads the snapshot and writes the cleaned segments into the staging directory. Durable
    /// when it returns (every file and the staging directory fsynced), but not yet part of the
    /// log: [`crate::Log::finish_clean`] commits it.
    ///
    /// # Errors
    /// [`LogError::CorruptBatch`] for a damaged batch in the range,
    /// [`LogError::CleanerKeyMapFull`], I/O errors, [`LogError::Closed`] when cancelled. In
    /// every case the staging directory is removed and the log is unchanged.
    pub fn run(self) -> Result<CleanedSegments, LogError> {
        let result = self.run_staged();
        if result.is_err() {
            discard_staging(&self.dir);
        }
        result
    }

    fn run_staged(&self) -> Result<CleanedSegments, LogError> {
        let producers = last_producer_batches(&self.visible, &self.cancel)?;
        let keys = KeyMap::build(&self.dir, &self.sources, &self.cancel)?;
        let staging = prepare_staging(&self.dir)?;
        let ctx = FilterContext {
            keys: &keys,
            now_ms: self.now_ms,
            delete_retention_ms: self.cfg.delete_retention_ms,
            decompress_limit_bytes: crate::batch::MAX_DECOMPRESSED_BATCH_BYTES,
        };
        let mut outcome = CleanOutcome {
            ran: true,
            segments_cleaned: self.sources.len(),
            first_dirty_offset: self.checkpoint.first_dirty,
            ..CleanOutcome::default()
        };
        let mut base_entries = Vec::with_capacity(self.sources.len());
        let mut next_entry = self.log_start.entry;
        for view in &self.sources {
            base_entries.push(next_entry);
            next_entry =
                self.write_segment(&staging, view, next_entry, &ctx, &producers, &mut outcome)?;
        }
        // Cleaning only removes entries, so the cleaned prefix ends at or before the first
        // dirty segment's entry index; the gap between them is recorded by the checkpoint.
        assert!(
            next_entry <= self.checkpoint.first_dirty_entry,
            "cleaned entries end at {next_entry}, past the first dirty entry {}",
            self.checkpoint.first_dirty_entry
        );
        self.checkpoint.write(&staging)?;
        seal_staging(&self.dir)?;
        Ok(CleanedSegments {
            log_start: self.log_start,
            bases: self.sources.iter().map(|v| v.base_offset).collect(),
            base_entries,
            checkpoint: self.checkpoint,
            outcome,
        })
    }

    /// Writes the cleaned copy of one segment into `staging` and seals it (fsync of the log,
    /// trim and fsync of the indexes). Returns the entry index after it.
    fn write_segment(
        &self,
        staging: &Path,
        view: &SegmentView,
        base_entry: EntryIndex,
        ctx: &FilterContext<'_>,
        producers: &HashMap<i64, Offset>,
        outcome: &mut CleanOutcome,
    ) -> Result<EntryIndex, LogError> {
        let end = view.sealed_bytes.unwrap_or_default();
        let walked = walk_segment(view, end)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| corrupt(view, e))?;
        let mut segment = Segment::create(
            staging,
            view.base_offset,
            base_entry,
            &self.cfg,
            self.now_ms,
        )?;
        let last_idx = walked.len().saturating_sub(1);
        let mut pending: Vec<Batch> = Vec::new();
        let mut pending_bytes = 0;
        for (idx, walked) in walked.iter().enumerate() {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(LogError::Closed);
            }
            let batch = &walked.batch;
            let producer_id = batch.header().producer_id;
            let producers_last =
                producer_id >= 0 && producers.get(&producer_id) == Some(&batch.base_offset());
            let keep_header = idx == 0 || idx == last_idx || producers_last;
            let (filtered, counts) = filter_batch(batch, keep_header, ctx);
            outcome.records_removed += counts.records_removed;
            outcome.tombstones_removed += counts.tombstones_removed;
            if let Some(horizon) = counts.horizon_ms {
                outcome.next_delete_horizon_ms = Some(
                    outcome
                        .next_delete_horizon_ms
                        .map_or(horizon, |h| h.min(horizon)),
                );
            }
            let kept = match filtered {
                Filtered::Unchanged => batch.clone(),
                Filtered::Rewritten(rebuilt) => rebuilt,
                Filtered::Dropped => {
                    outcome.batches_removed += 1;
                    continue;
                }
            };
            pending_bytes += kept.len_bytes();
            pending.push(kept);
            if pending_bytes >= WRITE_CHUNK_BYTES {
                self.write_pending(&mut segment, &mut pending)?;
                pending_bytes = 0;
            }
        }
        self.write_pending(&mut segment, &mut pending)?;
        segment.seal()?;
        outcome.bytes_before += end.as_u64();
        outcome.bytes_after += segment.state.size.as_u64();
        debug_assert_eq!(
            segment.state.next_offset,
            walked.last().map_or(view.base_offset, |w| w.next_offset())
        );
        Ok(segment.state.next_entry)
    }

    fn write_pending(
        &self,
        segment: &mut Segment,
        pending: &mut Vec<Batch>,
    ) -> Result<(), LogError> {
        let prefixed: Vec<(&Batch, [u8; 16])> = pending
            .iter()
            .map(|batch| {
                let mut prefix = [0u8; 16];
                // A validated batch is at least its 61-byte header long.
                prefix.copy_from_slice(&batch.bytes()[..16]);
                (batch, prefix)
            })
            .collect();
        segment
            .write_batches(&prefixed, &self.cfg)
            .map_err(|source| LogError::io("write cleaned segment", &segment.log_path, source))?;
        pending.clear();
        Ok(())
    }
}

//! [`Log`]: one partition directory, owned by its single writer. It holds the segment list,
//! assigns offsets and entry indexes, and publishes what readers may see (the high watermark and
//! the segment views) through [`Shared`].
//!
//! The operations live in child modules by job: `append`, `truncate`, `retention`; opening an
//! existing directory is `crate::recovery`, and compaction is `crate::clean`.

mod append;
mod reset;
mod retention;
mod truncate;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

pub use append::AppendInfo;
pub use retention::RetentionOutcome;

use crate::checkpoint::{CleanShutdown, CleanerCheckpoint, LogStart};
use crate::clean::CleanerCounters;
use crate::config::LogConfig;
use crate::error::LogError;
use crate::reader::LogReader;
use crate::segment::{Segment, SegmentView};
use crate::types::{EntryIndex, FilePos, Offset};

/// What readers see, replaced as a whole by the writer (readers clone the `Arc`).
#[derive(Debug, Clone)]
pub(crate) struct Published {
    pub(crate) segments: Arc<[SegmentView]>,
    pub(crate) log_start: Offset,
    pub(crate) high_watermark: Offset,
    /// The segment holding the high watermark and the position in it where visible bytes end.
    pub(crate) visible_base: Offset,
    pub(crate) visible_pos: FilePos,
    pub(crate) log_end: Offset,
    /// The first entry index still in the log, and the one the next entry will get.
    pub(crate) log_start_entry: EntryIndex,
    pub(crate) next_entry: EntryIndex,
    /// Bytes written to the active segment (the last of `segments`), visible or not: how far
    /// reads by entry index may look, since a Raft leader ships entries before they commit.
    pub(crate) written_pos: FilePos,
}

/// State shared between the writer and its readers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) published: RwLock<Arc<Published>>,
    /// Signals readers waiting for data past the high watermark.
    pub(crate) high_watermark_tx: tokio::sync::watch::Sender<Offset>,
    /// The cleaner's running totals, readable from any thread.
    pub(crate) cleaner_counters: CleanerCounters,
    /// Why the log stopped taking appends, once it has: set once by the writer when it poisons
    /// the log, read by health checks through [`LogReader::poisoned`].
    pub(crate) poisoned: std::sync::OnceLock<String>,
    /// Held for writing while the writer cuts the log (truncation, reset), and for reading by
    /// reads of entries past the visible end. Those bytes can be cut away, and touching a mapped
    /// page past the end of a shortened file is `SIGBUS`; so such reads copy the bytes under
    /// this lock instead of handing out slices of the mapping.
    pub(crate) cut_lock: RwLock<()>,
}

impl Shared {
    pub(crate) fn snapshot(&self) -> Arc<Published> {
        // A poisoned lock only means a writer panicked mid-publish of an `Arc` swap, which
        // cannot leave it half-written; keep serving the last value.
        Arc::clone(&self.published.read().unwrap_or_else(|e| e.into_inner()))
    }
}

/// One partition's log. Mutations take `&mut self`: the partition has exactly one writer (see
/// [`crate::LogWriter`] for the group-commit driver). Reads go through [`Log::reader`].
#[derive(Debug)]
pub struct Log {
    pub(crate) dir: PathBuf,
    pub(crate) cfg: LogConfig,
    /// Sealed segments in offset order, then the active segment (never empty).
    pub(crate) segments: Vec<Segment>,
    pub(crate) log_start: LogStart,
    pub(crate) high_watermark: Offset,
    /// When true the high watermark follows the log end as the flush policy is met (a single
    /// replica); when false the caller sets it (replication).
    pub(crate) high_watermark_follows_end: bool,
    /// Where the bytes readers may see end: (base offset of the segment, position in it). Only a
    /// commit or `set_high_watermark` moves it, and truncation never cuts below it, which is
    /// what keeps every byte a reader was handed inside its file. Positions compare within a
    /// segment, and segments by base offset (distinct: a segment without offsets never rolls).
    pub(crate) visible: (Offset, FilePos),
    /// The directory's lock file, `flock`ed while the log is open.
    pub(crate) _lock: std::fs::File,
    pub(crate) poisoned: Option<String>,
    /// The latest time a caller passed in. Truncation, which takes no time, uses it to restart
    /// the `segment.ms` clock of a segment it makes active again.
    pub(crate) last_now_ms: i64,
    pub(crate) shared: Arc<Shared>,
    /// How far compaction has cleaned the log (`None`: never). Segments below its first dirty
    /// offset may hold offset gaps.
    pub(crate) cleaner: Option<CleanerCheckpoint>,
    /// The earliest delete horizon of a tombstone the last clean kept: a clean is due then even
    /// if the dirty ratio says not. Not persisted; after a reopen the dirty ratio decides.
    pub(crate) next_delete_horizon_ms: Option<i64>,
    /// Entries at or above this index are still needed by entry index (a Raft group that has
    /// not purged them): retention and compaction leave every segment holding one alone.
    /// `None` (the default) sets no floor. Not persisted; the replication layer sets it at open.
    pub(crate) entry_floor: Option<EntryIndex>,
}

impl Log {
    /// Opens (or creates) the log in `dir` for a single-replica partition: recovers it and makes
    /// everything recovered readable. `now_ms` starts the active segment's `segment.ms` clock.
    ///
    /// # Errors
    /// I/O errors, [`LogError::CorruptCheckpoint`] for unreadable metadata and
    /// [`LogError::DamagedSegment`] for damage recovery will not cut.
    pub fn open(dir: &Path, cfg: LogConfig, now_ms: i64) -> Result<Log, LogError> {
        crate::recovery::open_dir(dir, cfg, now_ms, true)
    }

    /// Opens the log as a replica whose high watermark the caller (replication) sets: nothing
    /// is readable until [`Log::set_high_watermark`] says so, and the uncommitted tail can be
    /// truncated.
    ///
    /// # Errors
    /// As [`Log::open`].
    pub fn open_replica(dir: &Path, cfg: LogConfig, now_ms: i64) -> Result<Log, LogError> {
        crate::recovery::open_dir(dir, cfg, now_ms, false)
    }

    /// A handle for reading; cheap to clone, usable from any thread, never blocks the writer.
    pub fn reader(&self) -> LogReader {
        LogReader::new(Arc::clone(&self.shared))
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The settings in force.
    pub fn config(&self) -> &LogConfig {
        &self.cfg
    }

    /// Replaces the settings (takes effect for the next append, roll or retention pass).
    pub fn set_config(&mut self, cfg: LogConfig) {
        self.cfg = cfg;
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> Offset {
        self.log_start.offset
    }

    /// The offset the next record will get (Kafka's log end offset).
    pub fn log_end_offset(&self) -> Offset {
        self.active().state.next_offset
    }

    /// The entry index the next entry will get.
    pub fn next_entry(&self) -> EntryIndex {
        self.active().state.next_entry
    }

    /// The first entry index still in the log.
    pub fn log_start_entry(&self) -> EntryIndex {
        self.log_start.entry
    }

    /// Sets the entry floor: retention and compaction never touch a segment holding an entry
    /// at or above `floor` (`None`: no floor). A Raft group sets it to the first entry it has
    /// not purged, so that deleting or renumbering entries stays its decision
    /// (`segments-format.md`, "Raft log storage").
    pub fn set_entry_floor(&mut self, floor: Option<EntryIndex>) {
        self.entry_floor = floor;
    }

    /// The entry floor in force (see [`Log::set_entry_floor`]).
    pub fn entry_floor(&self) -> Option<EntryIndex> {
        self.entry_floor
    }

    /// True when the segment starting at `base_entry` and ending before `next_entry` is wholly
    /// below the entry floor.
    pub(crate) fn below_entry_floor(&self, next_entry: EntryIndex) -> bool {
        self.entry_floor.is_none_or(|floor| next_entry <= floor)
    }

    /// The end of what readers may see.
    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }

    /// Number of segments (sealed and active).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Bytes of batches in all segments, written or not yet flushed. Not the files' lengths:
    /// the active segment's file also holds space reserved ahead of its data
    /// (`segments-format.md` §7.2).
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.state.size.as_u64()).sum()
    }

    /// Why the log stopped taking appends, if it did.
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    /// Closes cleanly: fsyncs and seals the active segment and writes the clean-shutdown marker
    /// so the next open need not scan it. A poisoned log writes no marker, so the next open
    /// recovers it.
    ///
    /// # Errors
    /// I/O errors; the log is then recovered on the next open.
    pub fn close(mut self) -> Result<(), LogError> {
        if self.poisoned.is_some() {
            return Ok(());
        }
        let dir = self.dir.clone();
        let active = self.active_mut();
        active.seal()?;
        let marker = CleanShutdown {
            active_base: active.base_offset,
            active_bytes: active.state.size.as_u64(),
        };
        marker.write(&dir)
    }

    pub(crate) fn active(&self) -> &Segment {
        self.segments
            .last()
            .expect("a log always has an active segment")
    }

    pub(crate) fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a log always has an active segment")
    }

    pub(crate) fn check_writable(&self) -> Result<(), LogError> {
        match &self.poisoned {
            Some(reason) => Err(LogError::Poisoned {
                dir: self.dir.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Stops the log after an I/O failure it cannot undo.
    pub(crate) fn poison(&mut self, reason: String) -> LogError {
        tracing::error!(dir = %self.dir.display(), %reason, "partition log stopped: no more appends until it is reopened and recovered");
        self.poisoned.get_or_insert(reason.clone());
        let _ = self.shared.poisoned.set(reason.clone());
        LogError::Poisoned {
            dir: self.dir.clone(),
            reason,
        }
    }

    /// Publishes a new segment list and visible end to readers.
    pub(crate) fn publish(&mut self) {
        let segments: Arc<[SegmentView]> = self.segments.iter().map(Segment::view).collect();
        self.store(segments);
    }

    /// Publishes only a new high watermark (the common case after a group commit), reusing the
    /// segment views.
    pub(crate) fn publish_high_watermark(&mut self) {
        let segments = Arc::clone(&self.shared.snapshot().segments);
        self.store(segments);
    }

    fn store(&self, segments: Arc<[SegmentView]>) {
        let (visible_base, visible_pos) = self.visible;
        let published = Published {
            segments,
            log_start: self.log_start.offset,
            high_watermark: self.high_watermark,
            visible_base,
            visible_pos,
            log_end: self.log_end_offset(),
            log_start_entry: self.log_start.entry,
            next_entry: self.next_entry(),
            written_pos: self.active().state.size,
        };
        *self
            .shared
            .published
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(published);
        // Only a moved watermark wakes long polls: a publish of newly written (not yet visible)
        // bytes, which every group commit now makes, must not wake them for nothing.
        let high_watermark = self.high_watermark;
        self.shared.high_watermark_tx.send_if_modified(|current| {
            let moved = *current != high_watermark;
            *current = high_watermark;
            moved
        });
    }

    /// True when cutting at `pos` in segment `idx` would remove bytes readers may see.
    pub(crate) fn cuts_visible(&self, idx: usize, pos: FilePos) -> bool {
        (self.segments[idx].base_offset, pos) < self.visible
    }

    /// The start of the first entry whose base offset is at or past `offset`, or of the data
    /// batch holding `offset`: (segment index, position, entry index there).
    pub(crate) fn locate(&self, offset: Offset) -> Result<(usize, FilePos, EntryIndex), LogError> {
        // Start in the last segment that begins strictly before `offset`: meta entries at the
        // end of a segment have the next segment's base offset, and they come first.
        let idx = self
            .segments
            .partition_point(|s| s.base_offset < offset)
            .saturating_sub(1);
        for (idx, segment) in self.segments.iter().enumerate().skip(idx) {
            if let Some((pos, entry)) = segment
                .locate(offset)
                .map_err(|e| self.corrupt(segment, e, offset))?
            {
                return Ok((idx, pos, entry));
            }
        }
        let active = self.active();
        Ok((
            self.segments.len() - 1,
            active.state.size,
            active.state.next_entry,
        ))
    }

    pub(crate) fn corrupt(
        &self,
        segment: &Segment,
        err: crate::segment::WalkError,
        offset: Offset,
    ) -> LogError {
        LogError::CorruptBatch {
            path: segment.log_path.to_path_buf(),
            position: err.position,
            offset,
            reason: err.reason,
        }
    }
}

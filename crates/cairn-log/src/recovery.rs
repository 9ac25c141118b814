//! Opening a partition directory: find the segments, read the checkpoints, open each segment in
//! order (each one's entry numbering continues the previous one's), recover the active segment
//! unless a clean-shutdown marker vouches for it, and finish what an interrupted retention pass
//! left behind. What recovery does with each kind of damage: `segments-format.md`, "Recovery".

use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::checkpoint::{CleanShutdown, CleanerCheckpoint, LogStart, fsync_dir};
use crate::clean::swap::resolve_at_open;
use crate::config::LogConfig;
use crate::error::LogError;
use crate::log::{Log, Published, Shared};
use crate::segment::open::{SegmentHints, open_active, open_sealed};
use crate::segment::{
    INDEX_EXTENSIONS, RETIRED_SUFFIX, Segment, delete_segment_files, parse_segment_name,
    segment_path, unlink_retired,
};
use crate::types::{EntryIndex, FilePos, Offset};

/// Opens or creates the log in `dir`.
pub(crate) fn open_dir(
    dir: &Path,
    cfg: LogConfig,
    now_ms: i64,
    follows_end: bool,
) -> Result<Log, LogError> {
    cfg.validate()?;
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .map_err(|source| LogError::io("create log directory", dir, source))?;
        if let Some(parent) = dir.parent() {
            fsync_dir(parent)?;
        }
    }
    let lock = lock_dir(dir)?;
    // Before anything is listed: a crash mid-compaction leaves the log before or after it.
    resolve_at_open(dir)?;
    let mut bases = list_segments(dir)?;
    let checkpoint = LogStart::read(dir)?;
    let cleaner = CleanerCheckpoint::read(dir)?;
    let marker = CleanShutdown::take(dir)?;
    if let Some(start) = checkpoint {
        bases = delete_below_log_start(dir, bases, start.offset)?;
    }
    let segments = if bases.is_empty() {
        let start = checkpoint.unwrap_or(LogStart {
            offset: Offset(0),
            entry: EntryIndex(0),
        });
        vec![Segment::create(
            dir,
            start.offset,
            start.entry,
            &cfg,
            now_ms,
        )?]
    } else {
        let starts = EntryStarts {
            log_start: checkpoint,
            cleaner,
        };
        open_segments(dir, &bases, starts, marker, &cfg, now_ms)?
    };
    fsync_dir(dir)?;
    let first = &segments[0];
    let log_start = LogStart {
        offset: first.base_offset,
        entry: first.base_entry,
    };
    if checkpoint != Some(log_start) {
        log_start.write(dir)?;
    }
    let active = segments.last().expect("at least one segment");
    let high_watermark = if follows_end {
        active.state.next_offset
    } else {
        log_start.offset
    };
    let visible = if follows_end {
        (active.base_offset, active.state.size)
    } else {
        (log_start.offset, FilePos(0))
    };
    let published = Published {
        segments: Arc::from(Vec::new()),
        log_start: log_start.offset,
        high_watermark,
        visible_base: log_start.offset,
        visible_pos: FilePos(0),
        log_end: active.state.next_offset,
        log_start_entry: log_start.entry,
        next_entry: active.state.next_entry,
        written_pos: active.state.size,
    };
    let (high_watermark_tx, _) = tokio::sync::watch::channel(high_watermark);
    let shared = Arc::new(Shared {
        published: RwLock::new(Arc::new(published)),
        high_watermark_tx,
        cleaner_counters: Default::default(),
        poisoned: Default::default(),
        cut_lock: Default::default(),
    });
    let mut log = Log {
        dir: dir.to_path_buf(),
        cfg,
        segments,
        log_start,
        high_watermark,
        high_watermark_follows_end: follows_end,
        visible,
        _lock: lock,
        poisoned: None,
        last_now_ms: now_ms,
        shared,
        cleaner,
        next_delete_horizon_ms: None,
        entry_floor: None,
    };
    log.publish();
    tracing::debug!(dir = %dir.display(), log_start = %log.log_start_offset(), log_end = %log.log_end_offset(), segments = log.segment_count(), "log opened");
    Ok(log)
}

/// Name of the lock file every open log holds.
pub(crate) const LOCK_FILE: &str = ".lock";

/// Takes an exclusive `flock` on the directory's lock file, held as long as the returned file
/// is open: two logs on one directory would truncate and remap each other's files under their
/// readers (Kafka holds the same kind of lock).
fn lock_dir(dir: &Path) -> Result<std::fs::File, LogError> {
    use std::os::fd::AsRawFd;
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| LogError::io("open lock file", &path, source))?;
    // SAFETY: a plain syscall on an fd we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let source = std::io::Error::last_os_error();
        if source.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(LogError::Locked {
                dir: dir.to_path_buf(),
            });
        }
        return Err(LogError::io("lock log directory", &path, source));
    }
    Ok(file)
}

/// The checkpoints that fix entry numbering where counting batches cannot: the log start, and
/// the first segment after the compacted prefix (cleaning drops entries, so the cleaned
/// segments' batches no longer count up to it).
#[derive(Clone, Copy, Debug)]
struct EntryStarts {
    log_start: Option<LogStart>,
    cleaner: Option<CleanerCheckpoint>,
}

fn open_segments(
    dir: &Path,
    bases: &[Offset],
    starts: EntryStarts,
    marker: Option<CleanShutdown>,
    cfg: &LogConfig,
    now_ms: i64,
) -> Result<Vec<Segment>, LogError> {
    let mut segments: Vec<Segment> = Vec::with_capacity(bases.len());
    for (idx, &base) in bases.iter().enumerate() {
        let cleaner_entry = starts
            .cleaner
            .filter(|c| c.first_dirty == base)
            .map(|c| c.first_dirty_entry);
        let base_entry = match segments.last() {
            Some(previous) => Some(cleaner_entry.unwrap_or(previous.state.next_entry)),
            None => starts
                .log_start
                .filter(|start| start.offset == base)
                .map(|start| start.entry)
                .or(cleaner_entry),
        };
        if let Some(previous) = segments.last()
            && previous.state.next_offset != base
        {
            tracing::error!(dir = %dir.display(), expected = %previous.state.next_offset, found = %base,
                "segment base offset does not continue the previous segment; offsets in between are missing");
        }
        let hints = SegmentHints {
            base,
            base_entry,
            next_base: bases.get(idx + 1).copied(),
            compacted: starts.cleaner.is_some_and(|c| base < c.first_dirty),
        };
        let segment = if idx + 1 == bases.len() {
            let clean = marker.is_some_and(|m| {
                m.active_base == base && file_len(dir, base) == Some(m.active_bytes)
            });
            if !clean {
                tracing::info!(dir = %dir.display(), segment = %base, "no clean shutdown: recovering the active segment");
            }
            open_active(dir, hints, clean, cfg, now_ms)?
        } else {
            open_sealed(dir, hints, cfg)?
        };
        segments.push(segment);
    }
    Ok(segments)
}

fn file_len(dir: &Path, base: Offset) -> Option<u64> {
    std::fs::metadata(segment_path(dir, base, "log"))
        .ok()
        .map(|m| m.len())
}

/// The base offsets of the `.log` files in `dir`, in order. Leftover temporary files of an
/// interrupted checkpoint write are removed, retired (`.deleted`) segment files are handed to
/// the deleter, and index files are removed whose `.log` is gone (a crash while a segment was
/// being deleted): an index without its log indexes nothing.
fn list_segments(dir: &Path) -> Result<Vec<Offset>, LogError> {
    let mut bases = Vec::new();
    let mut index_files = Vec::new();
    let mut retired = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|source| LogError::io("list log directory", dir, source))?;
    for entry in entries {
        let entry = entry.map_err(|source| LogError::io("list log directory", dir, source))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = parse_segment_name(name) {
            bases.push(base);
        } else if let Some(base) = parse_index_name(name) {
            index_files.push((base, entry.path()));
        } else if name.ends_with(".checkpoint.tmp") {
            // An interrupted checkpoint write.
            remove_if_present(&entry.path(), "remove leftover file")?;
        } else if name.ends_with(RETIRED_SUFFIX) {
            // A segment retired but not yet freed: the deleter finishes it, paced.
            retired.push(entry.path());
        }
    }
    unlink_retired(retired);
    bases.sort_unstable();
    for (base, path) in index_files {
        if bases.binary_search(&base).is_err() {
            tracing::info!(file = %path.display(), "removing an index file whose segment is gone");
            remove_if_present(&path, "remove orphan index")?;
        }
    }
    Ok(bases)
}

/// Removes a file; one already gone is fine (a background unlink may have got there first).
fn remove_if_present(path: &Path, op: &'static str) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LogError::io(op, path, e)),
        _ => Ok(()),
    }
}

/// The base offset an index file name encodes (`<20 digits>.index` and the like).
fn parse_index_name(name: &str) -> Option<Offset> {
    let (stem, extension) = name.split_once('.')?;
    if !INDEX_EXTENSIONS.contains(&extension) {
        return None;
    }
    parse_segment_name(&format!("{stem}.log"))
}

/// Finishes a retention pass that checkpointed the new log start but crashed before deleting
/// every segment below it.
fn delete_below_log_start(
    dir: &Path,
    bases: Vec<Offset>,
    log_start: Offset,
) -> Result<Vec<Offset>, LogError> {
    let (below, kept): (Vec<_>, Vec<_>) = bases.into_iter().partition(|&base| base < log_start);
    for base in below {
        tracing::info!(dir = %dir.display(), segment = %base, "deleting a segment below the log start (interrupted retention)");
        delete_segment_files(dir, base)?;
    }
    Ok(kept)
}

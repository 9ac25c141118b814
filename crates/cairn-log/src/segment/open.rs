//! Opening an existing segment: trust its indexes after cheap checks, or rebuild them by walking
//! the whole file. Also where the active segment's torn tail is cut after a crash.
//!
//! The rule for damage (argued in `segments-format.md`, "Recovery"): bytes after the last valid
//! batch of the *active* segment that hold no valid batch are a torn write and are cut. Damage
//! followed by valid batches is never cut, because those batches may have been acknowledged:
//! a damaged batch whose length is intact is skipped (and reported as corrupt when read); damage
//! that hides where the next batch starts makes the open fail with an operator error. One more
//! rule comes from the space reserved ahead of the active segment's data (`preallocation.rs`):
//! zeros where a batch header should start are where the writes stopped, so the data ends there
//! whatever follows them (`segments-format.md` §8.3, "Zero tail").

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::appender::{Segment, SegmentIndexes, SegmentState, map_log, open_for_write};
use super::segment_path;
use super::walker::{
    BatchWalker, any_valid_batch_from, count_framed, next_valid_after, starts_zero_run,
    step_over_damaged,
};
use crate::config::LogConfig;
use crate::error::LogError;
use crate::index::{EntryIndexFile, EntryPoint, OffsetIndex, TimeIndex};
use crate::types::{EntryIndex, FilePos, Offset};

/// What the caller knows about a segment it is opening.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SegmentHints {
    pub(crate) base: Offset,
    /// The entry index the segment must start at (the previous segment's end, or the log start
    /// checkpoint), when known.
    pub(crate) base_entry: Option<EntryIndex>,
    /// The base offset of the following segment, where this one's offsets must end.
    pub(crate) next_base: Option<Offset>,
    /// True when the segment lies below the cleaner checkpoint's first dirty offset, so
    /// compaction may have left gaps between its batches.
    pub(crate) compacted: bool,
}

/// Opens a sealed (not last) segment. Never cuts acknowledged data; rebuilds indexes that fail
/// their checks.
pub(crate) fn open_sealed(
    dir: &Path,
    hints: SegmentHints,
    cfg: &LogConfig,
) -> Result<Segment, LogError> {
    let log_path = segment_path(dir, hints.base, "log");
    let file =
        File::open(&log_path).map_err(|source| LogError::io("open segment", &log_path, source))?;
    let size = file_size(&file, &log_path)?;
    let data = map_log(&file, &log_path, size.as_usize())?;
    if let Some((indexes, state, base_entry)) = load_trusted(dir, hints, &data, size)? {
        let mut segment = Segment::assemble_sealed(
            dir,
            hints.base,
            base_entry,
            file,
            data,
            Arc::new(indexes),
            state,
        );
        segment.compacted = hints.compacted;
        return Ok(segment);
    }
    tracing::warn!(segment = %log_path.display(), "index files missing or inconsistent; rebuilding them");
    drop(file);
    let mut segment = rebuild(dir, hints, cfg, 0, TailPolicy::Sealed)?;
    segment.seal()?;
    Ok(segment)
}

/// Opens the last segment for appending. After a clean shutdown (`clean`) its indexes are
/// trusted like a sealed segment's; otherwise it is walked in full and its torn tail cut.
pub(crate) fn open_active(
    dir: &Path,
    hints: SegmentHints,
    clean: bool,
    cfg: &LogConfig,
    now_ms: i64,
) -> Result<Segment, LogError> {
    if clean {
        let log_path = segment_path(dir, hints.base, "log");
        let file = open_for_write(&log_path)?;
        let size = file_size(&file, &log_path)?;
        let data = map_log(&file, &log_path, size.as_usize())?;
        if let Some((indexes, state, base_entry)) = load_trusted(dir, hints, &data, size)? {
            let keep = indexes.lens();
            drop(indexes);
            let indexes = SegmentIndexes::open_active(dir, hints.base, cfg, keep)?;
            let mut segment = Segment::assemble(
                dir, hints.base, base_entry, file, indexes, state, cfg, now_ms,
            )?;
            segment.compacted = hints.compacted;
            return Ok(segment);
        }
        tracing::warn!(segment = %log_path.display(), "clean shutdown, but the indexes fail their checks; rebuilding");
    }
    rebuild(dir, hints, cfg, now_ms, TailPolicy::Active)
}

fn file_size(file: &File, path: &Path) -> Result<FilePos, LogError> {
    let len = file
        .metadata()
        .map_err(|source| LogError::io("stat segment", path, source))?
        .len();
    u32::try_from(len).map(FilePos).map_err(|_| {
        LogError::io(
            "stat segment",
            path,
            std::io::Error::other("segment file larger than 4 GiB"),
        )
    })
}

/// Loads the indexes of a segment and checks them against the log: sizes, the entry index's
/// claim about the base entry, and a walk from the last index point to the end of the file that
/// must land exactly on the file's end. `None` means "rebuild".
fn load_trusted(
    dir: &Path,
    hints: SegmentHints,
    data: &Bytes,
    size: FilePos,
) -> Result<Option<(SegmentIndexes, SegmentState, EntryIndex)>, LogError> {
    let base = hints.base;
    let (Some(offset), Some(time), Some(entry)) = (
        OffsetIndex::open_sealed(&segment_path(dir, base, "index"))?,
        TimeIndex::open_sealed(&segment_path(dir, base, "timeindex"))?,
        EntryIndexFile::open_sealed(&segment_path(dir, base, "entryindex"))?,
    ) else {
        return Ok(None);
    };
    let indexes = SegmentIndexes {
        offset,
        time,
        entry,
    };
    if size.0 == 0 {
        let base_entry = hints.base_entry.unwrap_or(EntryIndex(base.0));
        let empty = indexes.lens() == [0, 0, 0];
        return Ok(empty.then(|| (indexes, SegmentState::empty(base, base_entry), base_entry)));
    }
    let Some(first) = (indexes.entry.len() > 0).then(|| indexes.entry.entry(0)) else {
        return Ok(None);
    };
    let base_entry = hints.base_entry.unwrap_or(first.entry);
    let last_point = indexes.entry.last().unwrap_or(first);
    let plausible = first.position == FilePos(0)
        && first.relative_offset.0 == 0
        && first.entry == base_entry
        && last_point.position < size
        && (indexes.time.len() > 0 || indexes.offset.len() == 0)
        && index_tails_increase(&indexes);
    if !plausible {
        return Ok(None);
    }
    // Walk from the last offset-index point, not the last entry point: the time index was last
    // updated there, and batches after it (meta entries may come between) still count towards
    // the segment's largest timestamp.
    let anchor = indexes
        .offset
        .len()
        .checked_sub(1)
        .map_or(FilePos(0), |idx| indexes.offset.entry(idx).1);
    let Some(start) = indexes.entry.floor_by_position(anchor) else {
        return Ok(None);
    };
    let Ok(mut state) = walk_tail(data, &indexes, base, start, size, hints.compacted) else {
        return Ok(None);
    };
    state.bytes_since_index = state.size.0.saturating_sub(last_point.position.0);
    if state.size != size
        || hints
            .next_base
            .is_some_and(|next| next != state.next_offset)
    {
        return Ok(None);
    }
    Ok(Some((indexes, state, base_entry)))
}

/// The last two entries of each index must increase. An index file that was never trimmed (a
/// crash before its segment was sealed) ends in zeroed entries, which this catches.
fn index_tails_increase(indexes: &SegmentIndexes) -> bool {
    let offset_ok = match indexes.offset.len() {
        0 | 1 => true,
        n => {
            let (a, b) = (indexes.offset.entry(n - 2), indexes.offset.entry(n - 1));
            a.0 < b.0 && a.1 < b.1
        }
    };
    let time_ok = match indexes.time.len() {
        0 | 1 => true,
        n => {
            let (a, b) = (indexes.time.entry(n - 2), indexes.time.entry(n - 1));
            a.0 < b.0 && a.1 < b.1
        }
    };
    let entry_ok = match indexes.entry.len() {
        0 | 1 => true,
        n => {
            let (a, b) = (indexes.entry.entry(n - 2), indexes.entry.entry(n - 1));
            a.entry < b.entry && a.position < b.position && a.relative_offset <= b.relative_offset
        }
    };
    offset_ok && time_ok && entry_ok
}

/// Computes a segment's append state at `end` by walking from an entry index point, so that
/// only the bytes after the last sparse index point are read. `gaps` as in
/// [`BatchWalker::allow_gaps`].
pub(crate) fn walk_tail(
    data: &Bytes,
    indexes: &SegmentIndexes,
    base: Offset,
    from: EntryPoint,
    end: FilePos,
    gaps: bool,
) -> Result<SegmentState, super::WalkError> {
    let last_time = indexes.time.last();
    let mut state = SegmentState {
        size: from.position,
        next_offset: from.relative_offset.absolute(base),
        next_entry: from.entry,
        max_timestamp: last_time.map_or(i64::MIN, |(ts, _)| ts),
        offset_of_max_timestamp: last_time.map_or(base, |(_, rel)| rel.absolute(base)),
        bytes_since_index: 0,
    };
    let mut walker = BatchWalker::new(data.clone(), from.position, end, Some(state.next_offset))
        .allow_gaps(gaps);
    while let Some(walked) = walker.next() {
        let walked = match walked {
            Ok(walked) => walked,
            // A damaged batch kept inside committed data (a replica heals it later) must not
            // stop a truncation behind it, which would poison the log: it is counted when its
            // header proves where the next batch starts. Its timestamps are not trusted.
            Err(err) => {
                let floor = walker.offset_floor();
                let stepped =
                    step_over_damaged(data, &err, end, floor, gaps).ok_or_else(|| err.clone())?;
                walker.resume_at(stepped.next_position);
                state.next_offset = stepped.next_offset;
                state.next_entry = state.next_entry.plus(1);
                state.size = stepped.next_position;
                continue;
            }
        };
        let header = walked.batch.header();
        if !walked.batch.is_meta() && header.max_timestamp > state.max_timestamp {
            state.max_timestamp = header.max_timestamp;
            state.offset_of_max_timestamp = Offset::from_i64(header.last_offset()).unwrap_or(base);
        }
        state.next_offset = walked.next_offset();
        state.next_entry = state.next_entry.plus(1);
        state.size = walked.end();
    }
    // Appends index again once more than an interval has passed since the last point, counting
    // the point's own batch, exactly as `Segment::note_batch` counts.
    state.bytes_since_index = state.size.0 - from.position.0;
    Ok(state)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TailPolicy {
    /// The last segment after a crash: an invalid tail with nothing valid after it is cut.
    Active,
    /// A sealed segment: nothing is cut unless it is provably past the segment's last offset.
    Sealed,
}

/// Rebuilds a segment's indexes by walking every batch, deciding what to do with damage by
/// `policy`.
fn rebuild(
    dir: &Path,
    hints: SegmentHints,
    cfg: &LogConfig,
    now_ms: i64,
    policy: TailPolicy,
) -> Result<Segment, LogError> {
    let base = hints.base;
    let log_path = segment_path(dir, base, "log");
    let file = open_for_write(&log_path)?;
    let size = file_size(&file, &log_path)?;
    let base_entry = hints.base_entry.unwrap_or_else(|| {
        tracing::warn!(segment = %log_path.display(), "base entry index unknown; assuming one entry per offset before it");
        EntryIndex(base.0)
    });
    let indexes = SegmentIndexes::open_active(dir, base, cfg, [0, 0, 0])?;
    let empty = SegmentState::empty(base, base_entry);
    let mut segment = Segment::assemble(dir, base, base_entry, file, indexes, empty, cfg, now_ms)?;
    segment.compacted = hints.compacted;
    // Map at least the whole file, whatever the recovered size turns out to be.
    segment.state.size = size;
    segment.ensure_mapped(cfg)?;
    let data = segment.data();
    segment.state = empty;

    let mut walker =
        BatchWalker::new(data.clone(), FilePos(0), size, Some(base)).allow_gaps(hints.compacted);
    let mut stepped_over_damage = false;
    while let Some(walked) = walker.next() {
        let err = match walked {
            Ok(walked) => {
                let (header, len) = (*walked.batch.header(), walked.batch.len_bytes() as u32);
                segment.note_batch(
                    &header,
                    walked.batch.base_offset(),
                    walked.position,
                    len,
                    cfg,
                );
                continue;
            }
            Err(err) => err,
        };
        if policy == TailPolicy::Active && ends_in_reserved_space(&data, err.position, size) {
            let tail = if starts_zero_run(&data, err.position, size) {
                Tail::Reserved
            } else {
                Tail::Torn
            };
            return cut_tail(
                segment,
                policy,
                err.position,
                size,
                hints,
                tail,
                "zeros where the next batch would start: space reserved ahead, never written",
            );
        }
        let min_base = segment.state.next_offset;
        let max_last = base.plus(u64::from(u32::MAX));
        let Some(next_valid) =
            next_valid_after(&data, &err, size, min_base, max_last, true).map(|w| w.position)
        else {
            // After stepping over damage, the offsets expected next come from a batch whose
            // base offset (outside the CRC) nothing confirmed. A later batch that passes its CRC
            // but not that expectation is not a torn write: either may be acknowledged data.
            // Refuse rather than cut.
            if stepped_over_damage
                && policy == TailPolicy::Active
                && let Some(next_valid) = any_valid_batch_from(&data, err.position, size)
            {
                return Err(LogError::DamagedSegment {
                    path: log_path,
                    position: err.position,
                    next_valid,
                });
            }
            return cut_tail(
                segment,
                policy,
                err.position,
                size,
                hints,
                Tail::Torn,
                &err.reason.to_string(),
            );
        };
        // Only lengths that chain exactly onto the next valid batch prove where the damaged
        // batches lie; anything else (a wrong length, a lost magic byte) is framing lost.
        let framed = count_framed(&data, err.position, next_valid).1 == next_valid;
        if !framed && policy == TailPolicy::Active {
            return Err(LogError::DamagedSegment {
                path: log_path,
                position: err.position,
                next_valid,
            });
        }
        tracing::error!(
            segment = %log_path.display(), position = err.position.0, next_valid = next_valid.0,
            reason = %err.reason,
            "damaged batches inside acknowledged data: kept on disk, never served; reads of their offsets fail"
        );
        step_over_damage(&mut segment, &data, err.position, next_valid);
        stepped_over_damage = true;
        walker.resume_at(next_valid);
    }
    Ok(segment)
}

/// True when the invalid bytes at `from` lead, following whatever batch lengths still frame,
/// to a run of zeros where the next batch header would start, and hold no valid batch on the
/// way (`segments-format.md` §8.3, "Zero tail"). The active segment's file is reserved ahead of
/// its data with `fallocate`, so after a crash that is where the writes stopped: nothing after
/// it was acknowledged, since the `fdatasync` that acknowledged it would have made those header
/// bytes durable too. Whatever lies past the zeros (a later page of the same unsynced write that
/// reached the disk first) is torn, not damage to keep.
///
/// The search for a valid batch on the way matters: a damaged length can jump over intact
/// batches straight into the reserved zeros, and those batches may have been acknowledged.
fn ends_in_reserved_space(data: &Bytes, from: FilePos, size: FilePos) -> bool {
    let (_, framed_end) = count_framed(data, from, size);
    starts_zero_run(data, framed_end, size)
        && (framed_end == from || any_valid_batch_from(data, from, framed_end).is_none())
}

/// Accounts for damaged batches kept in `[from, to)`: each still occupies an entry index (their
/// offsets are unknown and are skipped). Where framing is lost the count is a lower bound, which
/// is logged: replication must re-fetch such a range rather than trust its numbering.
fn step_over_damage(segment: &mut Segment, data: &Bytes, from: FilePos, to: FilePos) {
    let (framed, stop) = count_framed(data, from, to);
    // Lengths that overshoot `to` still count one entry per frame started inside the range.
    let entries = if stop < to { framed + 1 } else { framed };
    if stop != to {
        tracing::error!(segment = %segment.log_path.display(), position = stop.0,
            "batch boundaries lost inside a damaged range; entry indexes after it assume one entry there");
    }
    segment.state.next_entry = segment.state.next_entry.plus(entries.max(1));
    segment.state.size = to;
}

/// What a cut tail starts with, for how loudly it is logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tail {
    /// Zeros right after the last batch: space reserved ahead that no write reached.
    Reserved,
    /// Anything else: a torn write, or garbage.
    Torn,
}

/// Handles damage after which no valid batch follows. In the active segment that is a torn
/// write (or trailing garbage) and is cut. In a sealed segment, damaged batches whose lengths
/// still chain are kept (they hold entry indexes and unknown offsets); only bytes past where
/// framing is lost are cut, and only when the segment's offsets already reach the next
/// segment's base, which proves nothing acknowledged is there.
fn cut_tail(
    mut segment: Segment,
    policy: TailPolicy,
    position: FilePos,
    size: FilePos,
    hints: SegmentHints,
    tail: Tail,
    reason: &str,
) -> Result<Segment, LogError> {
    let path = segment.log_path.display().to_string();
    let mut cut_at = position;
    if policy == TailPolicy::Sealed {
        let data = segment.data_upto(size);
        let (_, framed_end) = count_framed(&data, position, size);
        if framed_end > position {
            tracing::error!(segment = %path, position = position.0, %reason,
                "damaged batches at the end of a sealed segment: kept on disk, never served");
            step_over_damage(&mut segment, &data, position, framed_end);
        }
        let complete = hints
            .next_base
            .is_some_and(|next| next == segment.state.next_offset);
        if framed_end == size || !complete {
            if framed_end != size {
                tracing::error!(segment = %path, position = framed_end.0,
                    "sealed segment ends in unreadable bytes before its last offset; kept and never served");
            }
            segment.state.size = size;
            return Ok(segment);
        }
        cut_at = framed_end;
    }
    // Reserved zeros right after the last batch are what any stop without a clean shutdown (a
    // SIGKILL, a crash) leaves in the active segment: routine, not a torn write. Told by the
    // caller, which has looked at the first header's worth; scanning the whole reserved tail
    // would add megabytes of reads per partition to a start-up after a crash.
    if tail == Tail::Reserved {
        tracing::info!(segment = %path, position = cut_at.0, trimmed_bytes = size.0 - cut_at.0,
            "trimming the space reserved past the last batch (the segment was not closed cleanly)");
    } else {
        tracing::warn!(segment = %path, position = cut_at.0, dropped_bytes = size.0 - cut_at.0, %reason,
            "cutting an incomplete tail (a write torn by a crash, or trailing garbage)");
    }
    let mut state = segment.state;
    state.size = cut_at;
    segment.truncate(state)?;
    Ok(segment)
}

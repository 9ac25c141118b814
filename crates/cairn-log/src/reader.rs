//! Reading a partition: by offset (sparse index lookup, then a short walk), by timestamp, and
//! the bounds (log start, high watermark). Readers work from a published snapshot and never take
//! the writer's lock; what they return are zero-copy slices of mapped segments, always whole
//! batches, each one's CRC checked on the way out. A damaged batch is an error, never data.

use std::ops::ControlFlow;
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::{Batch, BatchHeader, MAX_DECOMPRESSED_BATCH_BYTES, frame_len};
use crate::error::LogError;
use crate::log::{Published, Shared};
use crate::segment::{BatchWalker, SegmentView, WalkError, WalkedBatch, next_valid_after};
use crate::types::{FilePos, Offset, RelativeOffset};

/// A read handle on one partition's log. Cheap to clone; safe to use from many threads.
#[derive(Clone, Debug)]
pub struct LogReader {
    pub(crate) shared: Arc<Shared>,
}

/// The result of a read: whole batches laid end to end, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole RecordBatch v2 batches, contiguous, a zero-copy slice of the segment. The first
    /// batch may start before the offset asked for (batches are never split), and meta entries
    /// (batches with no records) may appear: a consumer skips both.
    pub data: Bytes,
    /// Where the next read should start: the offset after the last batch returned (or the
    /// offset asked for, when nothing was returned).
    pub next_offset: Offset,
    /// The high watermark when the read was served.
    pub high_watermark: Offset,
    /// The log start offset when the read was served.
    pub log_start_offset: Offset,
    /// True when the log produced `data` and verified every batch's CRC on the way out, so
    /// [`ReadResult::batches`] need not compute it again.
    crc_checked: bool,
}

impl ReadResult {
    /// Iterates the batches in `data`. Those from a log read had their CRCs verified by it and
    /// are not checked again; anything else is validated in full. Iteration stops at the first
    /// batch that fails.
    pub fn batches(&self) -> impl Iterator<Item = Batch> + '_ {
        let mut rest = self.data.clone();
        let crc_checked = self.crc_checked;
        std::iter::from_fn(move || {
            let total = frame_len(&rest).ok()?;
            let batch = if crc_checked {
                Batch::from_crc_checked_prefix(&rest)
            } else {
                Batch::validate_prefix(&rest)
            };
            let batch = batch.ok()?;
            rest = rest.slice(total..);
            Some(batch)
        })
    }

    /// True when no batch was returned.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

impl LogReader {
    pub(crate) fn new(shared: Arc<Shared>) -> LogReader {
        LogReader { shared }
    }

    /// The first offset in the log.
    pub fn log_start_offset(&self) -> Offset {
        self.shared.snapshot().log_start
    }

    /// The end of what is readable: the offset after the last visible record.
    pub fn high_watermark(&self) -> Offset {
        self.shared.snapshot().high_watermark
    }

    /// The offset the next appended record will get (may be past the high watermark).
    pub fn log_end_offset(&self) -> Offset {
        self.shared.snapshot().log_end
    }

    /// Bytes of record batches the log holds: every sealed segment's `.log` size plus the
    /// active segment's bytes up to the high watermark. Index files are not counted (they are
    /// caches), nor are appended bytes not yet visible.
    pub fn size_bytes(&self) -> u64 {
        let snapshot = self.shared.snapshot();
        snapshot
            .segments
            .iter()
            .map(|segment| match segment.sealed_bytes {
                Some(bytes) => bytes.0,
                None if segment.base_offset == snapshot.visible_base => snapshot.visible_pos.0,
                None => 0,
            })
            .fold(0u64, |sum, bytes| sum.saturating_add(u64::from(bytes)))
    }

    /// The compaction cleaner's running totals since the log was opened.
    pub fn cleaner_stats(&self) -> crate::clean::CleanerStats {
        self.shared.cleaner_counters.snapshot()
    }

    /// Why the log stopped taking appends (a failed write or fsync), if it has. A poisoned log
    /// still serves what it holds; it takes writes again only once reopened and recovered.
    pub fn poisoned(&self) -> Option<String> {
        self.shared.poisoned.get().cloned()
    }

    /// A receiver that changes whenever the high watermark moves, for long polls.
    pub fn subscribe_high_watermark(&self) -> tokio::sync::watch::Receiver<Offset> {
        self.shared.high_watermark_tx.subscribe()
    }

    /// Reads whole batches starting with the one holding `from`, up to `max_bytes` (but always
    /// at least one batch, however large, so a consumer can make progress, as in Kafka). A read
    /// at the high watermark returns no data. Reads never cross segment boundaries in one call.
    ///
    /// # Errors
    /// [`LogError::NegativeMaxBytes`]; [`LogError::OffsetOutOfRange`] below the log start or
    /// past the high watermark; [`LogError::CorruptBatch`] when the batch holding `from` is
    /// damaged (batches before the damage are returned by a read that starts earlier).
    pub fn read(&self, from: i64, max_bytes: i64) -> Result<ReadResult, LogError> {
        let snapshot = self.shared.snapshot();
        let max_bytes =
            usize::try_from(max_bytes).map_err(|_| LogError::NegativeMaxBytes(max_bytes))?;
        let from = check_range(&snapshot, from)?;
        let empty = ReadResult {
            data: Bytes::new(),
            next_offset: from,
            high_watermark: snapshot.high_watermark,
            log_start_offset: snapshot.log_start,
            // Every batch this read returns passes through the walker's CRC check.
            crc_checked: true,
        };
        if from == snapshot.high_watermark {
            return Ok(empty);
        }
        for (view, end) in visible_segments_from(&snapshot, from) {
            if let Some((data, next_offset)) = read_segment(view, from, end, max_bytes)? {
                return Ok(ReadResult {
                    data,
                    next_offset,
                    ..empty
                });
            }
        }
        Ok(empty)
    }

    /// [`LogReader::read`], except that an offset past the high watermark but not past the
    /// log end (appended here, not yet known committed) reads as empty instead of out of
    /// range, as a Kafka leader answers between its high watermark and log end. A Raft
    /// leader's high watermark trails what it holds for a moment after an election, until its
    /// first entry commits; a consumer whose position came from the previous leader must wait
    /// then, not be told its position does not exist (it would reset to the earliest or
    /// latest offset, re-reading or skipping records).
    ///
    /// # Errors
    /// As [`LogReader::read`], with the range `[log start, log end]`.
    pub fn read_up_to_log_end(&self, from: i64, max_bytes: i64) -> Result<ReadResult, LogError> {
        match self.read(from, max_bytes) {
            Err(LogError::OffsetOutOfRange {
                high_watermark,
                log_start,
                ..
            }) if from > high_watermark.as_i64() && from <= self.log_end_offset().as_i64() => {
                Ok(ReadResult {
                    data: Bytes::new(),
                    next_offset: Offset::from_i64(from).unwrap_or(high_watermark),
                    high_watermark,
                    log_start_offset: log_start,
                    crc_checked: true,
                })
            }
            other => other,
        }
    }

    /// The first offset whose record timestamp is at or after `timestamp_ms` (Kafka's
    /// ListOffsets by timestamp), or `None` when no visible record is that recent.
    ///
    /// # Errors
    /// [`LogError::CorruptBatch`] when a damaged batch is in the way.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<Offset>, LogError> {
        let snapshot = self.shared.snapshot();
        for view in snapshot.segments.iter() {
            let Some(end) = visible_end(&snapshot, view) else {
                break;
            };
            if view.max_timestamp.is_some_and(|max| max < timestamp_ms) {
                continue;
            }
            let start = view
                .indexes
                .time
                .lookup(timestamp_ms)
                .absolute(view.base_offset);
            for walked in start_walk(view, start, end) {
                let walked = walked.map_err(|e| corrupt(view, e, start))?;
                let header = walked.batch.header();
                if walked.batch.is_meta() || header.max_timestamp < timestamp_ms {
                    continue;
                }
                if let Some(found) = first_record_at_or_after(&walked, timestamp_ms, view)?
                    && found < snapshot.high_watermark
                {
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }
}

/// Damage met by [`LogReader::scan_batches`]: batches kept on disk but never served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedRange {
    /// The segment file.
    pub path: std::path::PathBuf,
    /// Where the damage starts in it.
    pub position: FilePos,
    /// The lowest offset the damaged batches can hold (their own offsets are unknown).
    pub from_offset: Offset,
    /// What is wrong with the first damaged batch.
    pub reason: String,
}

impl LogReader {
    /// Calls `visit` with every readable batch whose base offset is at or after `from`, up to
    /// the high watermark, in order, stepping over damaged batches instead of stopping at them
    /// (searching byte by byte for the next valid batch where framing is lost), until `visit`
    /// breaks. Meta entries are visited too. What was stepped over is returned, so the caller
    /// can report it.
    ///
    /// For rebuilding state from the log at open, where one damaged batch must not make the
    /// whole partition unusable; reads for consumers use [`LogReader::read`], which answers
    /// damage with [`LogError::CorruptBatch`].
    ///
    /// # Errors
    /// [`LogError::OffsetOutOfRange`] when `from` is outside `[log start, high watermark]`.
    pub fn scan_batches(
        &self,
        from: i64,
        mut visit: impl FnMut(&Batch) -> ControlFlow<()>,
    ) -> Result<Vec<DamagedRange>, LogError> {
        let snapshot = self.shared.snapshot();
        let from = check_range(&snapshot, from)?;
        let mut damaged = Vec::new();
        for (view, end) in visible_segments_from(&snapshot, from) {
            if scan_segment(view, from, end, &mut visit, &mut damaged).is_break() {
                break;
            }
        }
        Ok(damaged)
    }
}

/// One segment's part of [`LogReader::scan_batches`].
fn scan_segment(
    view: &SegmentView,
    from: Offset,
    end: FilePos,
    visit: &mut impl FnMut(&Batch) -> ControlFlow<()>,
    damaged: &mut Vec<DamagedRange>,
) -> ControlFlow<()> {
    let mut walker = start_walk(view, from, end);
    let max_last = view.base_offset.plus(u64::from(u32::MAX));
    while let Some(walked) = walker.next() {
        match walked {
            Ok(walked) if walked.batch.base_offset() >= from => visit(&walked.batch)?,
            Ok(_) => {}
            Err(err) => {
                let floor = walker.offset_floor();
                damaged.push(DamagedRange {
                    path: view.log_path.to_path_buf(),
                    position: err.position,
                    from_offset: floor,
                    reason: err.reason.to_string(),
                });
                match next_valid_after(&view.data, &err, end, floor, max_last, true) {
                    Some(next) => walker.resume_at(next.position),
                    None => return ControlFlow::Continue(()),
                }
            }
        }
    }
    ControlFlow::Continue(())
}

fn check_range(snapshot: &Published, from: i64) -> Result<Offset, LogError> {
    let out_of_range = || LogError::OffsetOutOfRange {
        requested: from,
        log_start: snapshot.log_start,
        high_watermark: snapshot.high_watermark,
    };
    let offset = Offset::from_i64(from).ok_or_else(out_of_range)?;
    if offset < snapshot.log_start || offset > snapshot.high_watermark {
        return Err(out_of_range());
    }
    Ok(offset)
}

/// The segments from the one holding `from` on, each with how far readers may look into it,
/// up to the last one with anything visible.
fn visible_segments_from(
    snapshot: &Published,
    from: Offset,
) -> impl Iterator<Item = (&SegmentView, FilePos)> {
    let first = snapshot
        .segments
        .partition_point(|s| s.base_offset <= from)
        .saturating_sub(1);
    snapshot
        .segments
        .iter()
        .skip(first)
        .map_while(|view| Some((view, visible_end(snapshot, view)?)))
}

/// How far readers may look into `view`, or `None` if none of it is visible.
fn visible_end(snapshot: &Published, view: &SegmentView) -> Option<FilePos> {
    if view.base_offset > snapshot.visible_base {
        return None;
    }
    if view.base_offset == snapshot.visible_base {
        return Some(snapshot.visible_pos);
    }
    view.sealed_bytes
}

/// A walk from the sparse index point at or before `from`.
fn start_walk(view: &SegmentView, from: Offset, end: FilePos) -> BatchWalker {
    let index = &view.indexes.offset;
    // The offset index is a cache, and a well-formed index of other data passes the open's
    // checks: use a point only if a batch ending at the offset it names starts there.
    let point = RelativeOffset::between(from, view.base_offset)
        .and_then(|rel| index.floor_entry(rel))
        .filter(|&(last_rel, position)| {
            let bytes = view
                .data
                .get(position.as_usize()..end.as_usize())
                .unwrap_or_default();
            frame_len(bytes).is_ok()
                && BatchHeader::parse(bytes).is_ok_and(|header| {
                    header.last_offset() == last_rel.absolute(view.base_offset).as_i64()
                })
        });
    let walker = match point {
        Some((last_rel, position)) => BatchWalker::new(view.data.clone(), position, end, None)
            .expect_first_last_offset(last_rel.absolute(view.base_offset)),
        None => BatchWalker::new(view.data.clone(), FilePos(0), end, Some(view.base_offset)),
    };
    walker.allow_gaps(view.compacted)
}

/// Reads from one segment: `Some` with the batches and the next offset, or `None` when the
/// segment holds nothing at or after `from`.
fn read_segment(
    view: &SegmentView,
    from: Offset,
    end: FilePos,
    max_bytes: usize,
) -> Result<Option<(Bytes, Offset)>, LogError> {
    let mut walker = start_walk(view, from, end);
    let mut range: Option<(FilePos, FilePos, Offset)> = None;
    while let Some(walked) = walker.next() {
        let walked = match walked {
            Ok(walked) => walked,
            Err(err) if range.is_none() => {
                // Damaged batches before the target can be stepped over if their lengths are
                // intact and the next valid batch is still at or before the target.
                let floor = walker.offset_floor();
                let max_last = view.base_offset.plus(u64::from(u32::MAX));
                match next_valid_after(&view.data, &err, end, floor, max_last, false) {
                    Some(next) if next.batch.base_offset() <= from => {
                        walker.resume_at(next.position);
                        continue;
                    }
                    _ => return Err(corrupt(view, err, from)),
                }
            }
            Err(_) => break,
        };
        let batch = &walked.batch;
        // A read starts at a data batch: meta entries take no offset, so an offset cursor could
        // never move past one that a read started with. Meta entries between data batches are
        // returned as they lie.
        let wanted = !batch.is_meta() && walked.next_offset() > from;
        match range {
            None if !wanted => continue,
            None => range = Some((walked.position, walked.end(), walked.next_offset())),
            Some((start, _, _)) if (walked.end().0 - start.0) as usize > max_bytes => break,
            Some((start, _, _)) => range = Some((start, walked.end(), walked.next_offset())),
        }
    }
    Ok(range.map(|(start, stop, next)| (view.data.slice(start.as_usize()..stop.as_usize()), next)))
}

fn first_record_at_or_after(
    walked: &WalkedBatch,
    timestamp_ms: i64,
    view: &SegmentView,
) -> Result<Option<Offset>, LogError> {
    let batch = &walked.batch;
    let corrupt = |reason| LogError::CorruptBatch {
        path: view.log_path.to_path_buf(),
        position: walked.position,
        offset: batch.base_offset(),
        reason,
    };
    let records = batch
        .records(MAX_DECOMPRESSED_BATCH_BYTES)
        .map_err(corrupt)?;
    for (record_idx, record) in (0..).zip(records.iter()) {
        let record = record.map_err(corrupt)?;
        if batch.record_timestamp(&record) >= timestamp_ms {
            let offset = batch.record_offset(&record, record_idx).map_err(corrupt)?;
            return Ok(Some(offset));
        }
    }
    Ok(None)
}

fn corrupt(view: &SegmentView, err: WalkError, offset: Offset) -> LogError {
    LogError::CorruptBatch {
        path: view.log_path.to_path_buf(),
        position: err.position,
        offset,
        reason: err.reason,
    }
}

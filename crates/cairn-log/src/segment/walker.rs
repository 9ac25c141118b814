//! Walks the batches of a segment's bytes in order, validating each one (framing, magic, CRC)
//! and checking that base offsets follow each other densely. Reads, recovery and index rebuilds
//! all walk through here, so "what counts as a valid batch on disk" is decided in one place.
//!
//! The one exception to density: in a segment that compaction rewrote (`allow_gaps`), a batch's
//! base offset may be above the previous batch's next offset, never below it
//! (`segments-format.md`, "Compaction").

use bytes::Bytes;

use crate::batch::{BATCH_HEADER_BYTES, Batch, BatchError, BatchHeader, frame_len, is_meta_header};
use crate::types::{FilePos, Offset};

/// A batch met by the walk.
#[derive(Debug, Clone)]
pub(crate) struct WalkedBatch {
    pub(crate) position: FilePos,
    pub(crate) batch: Batch,
}

impl WalkedBatch {
    /// The position just after this batch.
    pub(crate) fn end(&self) -> FilePos {
        FilePos(self.position.0 + self.batch.len_bytes() as u32)
    }

    /// The offset after this batch: what the next batch's base offset must be.
    pub(crate) fn next_offset(&self) -> Offset {
        self.batch.base_offset().plus(self.batch.offset_count())
    }
}

/// Why a walk stopped before the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WalkError {
    pub(crate) position: FilePos,
    pub(crate) reason: BatchError,
    /// Where the next batch would start, if the damaged batch's length field is still
    /// believable (framing intact); `None` when the walk cannot find the next batch.
    pub(crate) skip_to: Option<FilePos>,
}

/// An iterator over the batches in `data[from..end]`.
pub(crate) struct BatchWalker {
    data: Bytes,
    position: usize,
    end: usize,
    expected_next: Option<Offset>,
    /// The lowest base offset the next batch may have when its exact offset is unknown (after
    /// stepping over damage): offsets never go backwards.
    min_next: Offset,
    expected_first_last_offset: Option<Offset>,
    /// True in a compacted segment: a batch may start past the offset expected (a gap left by
    /// batches the cleaner dropped), but never before it.
    gaps: bool,
    done: bool,
}

impl BatchWalker {
    /// Walks from `from` to `end` (both within `data`). `expected_next` is the base offset the
    /// first batch must have, when known.
    pub(crate) fn new(
        data: Bytes,
        from: FilePos,
        end: FilePos,
        expected_next: Option<Offset>,
    ) -> BatchWalker {
        let end = end.as_usize().min(data.len());
        BatchWalker {
            data,
            position: from.as_usize().min(end),
            end,
            expected_next,
            min_next: expected_next.unwrap_or_default(),
            expected_first_last_offset: None,
            gaps: false,
            done: false,
        }
    }

    /// Accepts gaps between batches when `gaps` is set (a compacted segment): each batch's base
    /// offset must then be at or above the previous batch's next offset rather than equal to it.
    pub(crate) fn allow_gaps(mut self, gaps: bool) -> BatchWalker {
        self.gaps = gaps;
        self
    }

    /// Also requires the first batch's last offset to be `last_offset` (an index entry's claim).
    pub(crate) fn expect_first_last_offset(mut self, last_offset: Offset) -> BatchWalker {
        self.expected_first_last_offset = Some(last_offset);
        self
    }

    /// The lowest base offset the next batch may have: exactly the expected one when known.
    pub(crate) fn offset_floor(&self) -> Offset {
        self.expected_next.unwrap_or(self.min_next)
    }

    /// Continues after damage at `position`, expecting the next batch's base offset to be
    /// anything at or above what was expected before the damage (the damaged batches' own
    /// offsets are unknown).
    pub(crate) fn resume_at(&mut self, position: FilePos) {
        self.position = position.as_usize().min(self.end);
        self.min_next = self.expected_next.unwrap_or(self.min_next);
        self.expected_next = None;
        self.expected_first_last_offset = None;
        self.done = false;
    }

    fn fail(
        &mut self,
        reason: BatchError,
        skip_to: Option<usize>,
    ) -> Option<Result<WalkedBatch, WalkError>> {
        self.done = true;
        let skip_to = skip_to
            .filter(|&s| s <= self.end)
            .map(|s| FilePos(s as u32));
        Some(Err(WalkError {
            position: FilePos(self.position as u32),
            reason,
            skip_to,
        }))
    }
}

impl Iterator for BatchWalker {
    type Item = Result<WalkedBatch, WalkError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.position >= self.end {
            return None;
        }
        let window = self.data.slice(self.position..self.end);
        let total = match frame_len(&window) {
            Ok(total) => total,
            Err(reason) => return self.fail(reason, None),
        };
        let skip_to = Some(self.position + total);
        let batch = match Batch::validate_prefix(&window) {
            Ok(batch) => batch,
            Err(reason) => return self.fail(reason, skip_to),
        };
        let in_sequence = match self.expected_next {
            Some(expected) if self.gaps => batch.base_offset() >= expected,
            Some(expected) => batch.base_offset() == expected,
            None => batch.base_offset() >= self.min_next,
        };
        if !in_sequence {
            let reason = BatchError::OffsetOutOfSequence {
                expected: self.expected_next.unwrap_or(self.min_next).as_i64(),
                found: batch.header().base_offset,
            };
            return self.fail(reason, skip_to);
        }
        if let Some(expected_last) = self.expected_first_last_offset.take()
            && batch.header().last_offset() != expected_last.as_i64()
        {
            let reason = BatchError::OffsetOutOfSequence {
                expected: expected_last.as_i64(),
                found: batch.header().last_offset(),
            };
            return self.fail(reason, skip_to);
        }
        let walked = WalkedBatch {
            position: FilePos(self.position as u32),
            batch,
        };
        self.expected_next = Some(walked.next_offset());
        self.position += total;
        Some(Ok(walked))
    }
}

/// Where the first valid batch after the damage `err` starts, if any, with a base offset of at
/// least `min_base` and a last offset of at most `max_last` (a segment's offsets stay within 32
/// bits of its base, so a batch claiming more is itself damaged). Steps over consecutive damaged
/// batches whose lengths are intact, then falls back to a byte-by-byte search from the first
/// damaged byte once framing is lost or the lengths lead nowhere (only when `search` is set:
/// recovery uses it to tell a torn tail from damage inside acknowledged data; readers rely on the
/// sparse index instead, since a search can cost a pass over the segment).
pub(crate) fn next_valid_after(
    data: &Bytes,
    err: &WalkError,
    end: FilePos,
    min_base: Offset,
    max_last: Offset,
    search: bool,
) -> Option<WalkedBatch> {
    let first = err.position;
    let mut err = err.clone();
    while let Some(skip) = err.skip_to {
        let mut walker = BatchWalker::new(data.clone(), skip, end, None);
        walker.min_next = min_base;
        match walker.next() {
            Some(Ok(walked)) if walked.batch.header().last_offset() <= max_last.as_i64() => {
                return Some(walked);
            }
            Some(Ok(walked)) => {
                err = WalkError {
                    position: walked.position,
                    reason: BatchError::OffsetOutOfSequence {
                        expected: min_base.as_i64(),
                        found: walked.batch.header().base_offset,
                    },
                    skip_to: Some(walked.end()),
                }
            }
            Some(Err(next_err)) => err = next_err,
            // The lengths ran exactly to the end: one of them may be wrong and hide batches.
            None => break,
        }
    }
    let found = search.then(|| find_next_valid_batch(data, first, end, min_base, max_last))??;
    BatchWalker::new(data.clone(), found, end, None)
        .next()?
        .ok()
}

/// A damaged batch a walk may step over: its own header (read without its CRC) says where the
/// next batch starts and which offsets it held, and both are confirmed by what follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SteppedOver {
    /// Where the next batch starts (or the end of the walk).
    pub(crate) next_position: FilePos,
    /// The damaged batch's base offset.
    pub(crate) base_offset: Offset,
    /// The offset after it (its base offset for a meta entry).
    pub(crate) next_offset: Offset,
    /// True when its header is a meta entry's.
    pub(crate) is_meta: bool,
}

/// Whether the damaged batch at `err` can be stepped over without losing count of entries: its
/// header has the base offset `expected` (at least it, in a compacted segment), and its length
/// leads to `end` or to a valid batch whose base offset is exactly the one its last offset
/// delta says comes next (at least it, in a compacted segment). A damaged length or offset
/// delta fails this, and the caller fails as before rather than number what follows wrongly.
pub(crate) fn step_over_damaged(
    data: &Bytes,
    err: &WalkError,
    end: FilePos,
    expected: Offset,
    compacted: bool,
) -> Option<SteppedOver> {
    let end = FilePos(u32::try_from(end.as_usize().min(data.len())).ok()?);
    let skip = err.skip_to.filter(|s| *s <= end)?;
    let header = BatchHeader::parse(data.get(err.position.as_usize()..end.as_usize())?).ok()?;
    let base_fits = if compacted {
        header.base_offset >= expected.as_i64()
    } else {
        header.base_offset == expected.as_i64()
    };
    if !base_fits || header.last_offset_delta < -1 {
        return None;
    }
    let next = header
        .base_offset
        .checked_add(i64::from(header.last_offset_delta))?
        .checked_add(1)?;
    let stepped = SteppedOver {
        next_position: skip,
        base_offset: Offset::from_i64(header.base_offset)?,
        next_offset: Offset::from_i64(next)?,
        is_meta: is_meta_header(&header),
    };
    if skip == end {
        return Some(stepped);
    }
    let following = Batch::validate_prefix(&data.slice(skip.as_usize()..end.as_usize())).ok()?;
    let chains = if compacted {
        following.header().base_offset >= next
    } else {
        following.header().base_offset == next
    };
    chains.then_some(stepped)
}

/// Where the first batch that passes framing and CRC starts, at or after `from`, whatever its
/// offsets say.
pub(crate) fn any_valid_batch_from(data: &Bytes, from: FilePos, end: FilePos) -> Option<FilePos> {
    let end_usize = end.as_usize().min(data.len());
    let here = data.slice(from.as_usize().min(end_usize)..end_usize);
    if Batch::validate_prefix(&here).is_ok() {
        return Some(from);
    }
    find_next_valid_batch(data, from, end, Offset(0), Offset(u64::MAX))
}

/// True when `data` holds zeros at `position` for a whole batch header, or up to `end` if less
/// remains: no batch starts there (a header's `batchLength` is at least 49 and its magic is 2),
/// and in the active segment it is space reserved ahead with `fallocate` that no write reached
/// (`segments-format.md` §8.3, "Zero tail"). False at or past `end`.
pub(crate) fn starts_zero_run(data: &Bytes, position: FilePos, end: FilePos) -> bool {
    let end = end.as_usize().min(data.len());
    let start = position.as_usize();
    if start >= end {
        return false;
    }
    let probe_end = (start + BATCH_HEADER_BYTES).min(end);
    data.get(start..probe_end)
        .is_some_and(|bytes| bytes.iter().all(|&b| b == 0))
}

/// Follows batch lengths (framing only, no CRC) from `from` towards `end`: how many batches it
/// steps over and where it stops (at `end`, or where framing is lost).
pub(crate) fn count_framed(data: &Bytes, from: FilePos, end: FilePos) -> (u64, FilePos) {
    let end = end.as_usize().min(data.len());
    let (mut position, mut count) = (from.as_usize(), 0u64);
    while position < end {
        match frame_len(&data[position..end]) {
            Ok(total) => {
                position += total;
                count += 1;
            }
            Err(_) => break,
        }
    }
    (count, FilePos(position as u32))
}

/// Searches byte by byte after `from` for a position where a valid batch (framing and CRC)
/// starts, with a base offset of at least `min_base`.
fn find_next_valid_batch(
    data: &Bytes,
    from: FilePos,
    end: FilePos,
    min_base: Offset,
    max_last: Offset,
) -> Option<FilePos> {
    let end = end.as_usize().min(data.len());
    let magic_at = crate::batch::field::MAGIC;
    (from.as_usize() + 1..end)
        .find(|&pos| {
            // Cheap filters first: the magic byte, then the frame, and only then the CRC.
            data.get(pos + magic_at) == Some(&2)
                && frame_len(&data[pos..end]).is_ok()
                && Batch::validate_prefix(&data.slice(pos..end)).is_ok_and(|b| {
                    b.base_offset() >= min_base && b.header().last_offset() <= max_last.as_i64()
                })
        })
        .map(|pos| FilePos(pos as u32))
}

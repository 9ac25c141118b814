//! Reading the log by entry index (the Raft log index), up to the log end: a Raft leader ships
//! entries before they commit, so these reads go past the high watermark that bounds reads by
//! offset. Consumers never read this way.
//!
//! The invariant: bytes at or below the visible end are handed out as zero-copy slices of the
//! mapping (nothing ever cuts them); bytes past it can be truncated away, and a mapped page past
//! the end of a shortened file is `SIGBUS`, so those are copied while holding the log's cut
//! lock, which truncation and reset take for writing.

use std::ops::ControlFlow;

use bytes::Bytes;

use crate::error::LogError;
use crate::log::Published;
use crate::reader::LogReader;
use crate::segment::{BatchWalker, SegmentView, WalkedBatch, step_over_damaged};
use crate::types::{EntryIndex, FilePos, LeaderEpoch, Offset};

/// What the log knows of one entry, without its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryHeader {
    /// The entry's index (its Raft log index).
    pub entry: EntryIndex,
    /// The batch's partitionLeaderEpoch: the Raft term it was written in.
    pub leader_epoch: LeaderEpoch,
    /// The offset of the batch's first record (for a meta entry: the next offset).
    pub base_offset: Offset,
    /// The offset after the batch's last record (for a meta entry: its base offset).
    pub next_offset: Offset,
    /// True for a meta entry (no records, takes no offset).
    pub is_meta: bool,
}

/// One entry read by index: its header and the whole batch as stored (base offset and
/// partitionLeaderEpoch as the log assigned them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Where the entry sits.
    pub header: EntryHeader,
    /// The RecordBatch v2 bytes, CRC checked: a slice of the mapped segment when the entry is
    /// below the visible end, a copy when it is not (it may still be truncated).
    pub batch: Bytes,
}

impl LogReader {
    /// The first entry index still in the log and the one the next appended entry will get:
    /// the log holds entries `[start, next)`, written ones included whether or not they are
    /// durable or visible yet.
    pub fn entry_bounds(&self) -> (EntryIndex, EntryIndex) {
        let snapshot = self.shared.snapshot();
        (snapshot.log_start_entry, snapshot.next_entry)
    }

    /// Reads whole entries from entry `from` on, up to `max_entries` and about `max_bytes`
    /// (always at least one entry when `from` is in the log, however large), across segments,
    /// up to the last entry written. Returns fewer at the log end, and none when `from` is past
    /// it or below the log start entry.
    ///
    /// # Errors
    /// [`LogError::CorruptBatch`] when an entry on the way fails its checks (it is never
    /// returned).
    pub fn read_entries(
        &self,
        from: EntryIndex,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<LogEntry>, LogError> {
        match self.read_entries_until_damage(from, max_entries, max_bytes) {
            (_, Some(damage)) => Err(damage),
            (entries, None) => Ok(entries),
        }
    }

    /// [`LogReader::read_entries`], except that the entries before a damaged one are returned
    /// with the damage, instead of the damage alone: a Raft leader ships what it can and never
    /// the damaged entry. The damaged entry and everything after it are not returned.
    pub fn read_entries_until_damage(
        &self,
        from: EntryIndex,
        max_entries: usize,
        max_bytes: usize,
    ) -> (Vec<LogEntry>, Option<LogError>) {
        let mut entries = Vec::new();
        let mut total_bytes = 0usize;
        let walked = self.walk_entries(from, |walked, header, zero_copy| {
            let len = walked.batch.len_bytes();
            if entries.len() >= max_entries
                || (!entries.is_empty() && total_bytes.saturating_add(len) > max_bytes)
            {
                return ControlFlow::Break(());
            }
            total_bytes = total_bytes.saturating_add(len);
            let batch = if zero_copy {
                walked.batch.bytes().clone()
            } else {
                Bytes::copy_from_slice(walked.batch.bytes())
            };
            entries.push(LogEntry { header, batch });
            // Stop now rather than at the next entry: it may be damaged, and a read that has
            // all it wants must not fail on what lies after it.
            if entries.len() >= max_entries {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        (entries, walked.err())
    }

    /// The headers of up to `max_entries` entries from entry `from` on (no bytes copied).
    ///
    /// # Errors
    /// As [`LogReader::read_entries`].
    pub fn entry_headers(
        &self,
        from: EntryIndex,
        max_entries: usize,
    ) -> Result<Vec<EntryHeader>, LogError> {
        let mut headers = Vec::new();
        self.walk_entries(from, |_, header, _| {
            if headers.len() >= max_entries {
                return ControlFlow::Break(());
            }
            headers.push(header);
            if headers.len() >= max_entries {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(headers)
    }

    /// The header of entry `entry`, or `None` when it is at or past the log end.
    ///
    /// # Errors
    /// As [`LogReader::read_entries`].
    pub fn entry_header(&self, entry: EntryIndex) -> Result<Option<EntryHeader>, LogError> {
        Ok(self.entry_headers(entry, 1)?.pop())
    }

    /// The header of the last entry written, or `None` when the log holds no entry.
    ///
    /// # Errors
    /// As [`LogReader::read_entries`].
    pub fn last_entry(&self) -> Result<Option<EntryHeader>, LogError> {
        let (start, next) = self.entry_bounds();
        if next <= start {
            return Ok(None);
        }
        // The log may have changed since the bounds were read; a concurrent truncation makes
        // this `None` or an earlier entry, both answers the log gave at some instant.
        self.entry_header(EntryIndex(next.0 - 1))
    }

    /// Calls `visit` with each entry from `from` on (its walk, header, and whether its bytes
    /// may be handed out without copying) until it breaks or the written end is reached.
    fn walk_entries(
        &self,
        from: EntryIndex,
        mut visit: impl FnMut(&WalkedBatch, EntryHeader, bool) -> ControlFlow<()>,
    ) -> Result<(), LogError> {
        // Taken before the snapshot: no cut can then shorten a file the snapshot describes.
        let _no_cuts = self
            .shared
            .cut_lock
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let snapshot = self.shared.snapshot();
        // Entries below the log start are gone (retention, a purge, a reset): a read of them
        // finds nothing, as one past the end does; callers compare with `entry_bounds`.
        if from < snapshot.log_start_entry || from >= snapshot.next_entry {
            return Ok(());
        }
        let first = snapshot
            .segments
            .partition_point(|s| s.base_entry <= from)
            .saturating_sub(1);
        let mut wanted = from;
        for view in snapshot.segments.iter().skip(first) {
            let end = view.sealed_bytes.unwrap_or(snapshot.written_pos);
            let zero_copy_end = visible_end(&snapshot, view);
            let flow = walk_segment(view, wanted, end, |walked, entry| {
                let header = header_of(walked, entry);
                let zero_copy = zero_copy_end.is_some_and(|visible| walked.end() <= visible);
                wanted = entry.plus(1);
                visit(walked, header, zero_copy)
            })?;
            if flow.is_break() || wanted >= snapshot.next_entry {
                break;
            }
        }
        Ok(())
    }
}

/// Walks one segment's entries from `wanted` (or the segment start) to `end`.
fn walk_segment(
    view: &SegmentView,
    wanted: EntryIndex,
    end: FilePos,
    mut visit: impl FnMut(&WalkedBatch, EntryIndex) -> ControlFlow<()>,
) -> Result<ControlFlow<()>, LogError> {
    // The entry index is a cache: a point is used only if it lies inside what is written, and
    // the walker checks that the batch there has the base offset the point names.
    let point = view
        .indexes
        .entry
        .lookup(wanted)
        .filter(|p| p.entry >= view.base_entry && p.position <= end);
    let (mut entry, position, expected) =
        point.map_or((view.base_entry, FilePos(0), view.base_offset), |p| {
            (
                p.entry,
                p.position,
                p.relative_offset.absolute(view.base_offset),
            )
        });
    let walker = BatchWalker::new(view.data.clone(), position, end, Some(expected))
        .allow_gaps(view.compacted);
    let mut walker = walker;
    while let Some(walked) = walker.next() {
        let walked = match walked {
            Ok(walked) => walked,
            // A damaged entry before the one wanted is stepped over when its own header proves
            // where the next entry starts, so one damaged batch does not make every later entry
            // of its segment unreadable (openraft reads them to apply new entries).
            Err(err)
                if entry < wanted
                    && let Some(stepped) = step_over_damaged(
                        &view.data,
                        &err,
                        end,
                        walker.offset_floor(),
                        view.compacted,
                    ) =>
            {
                walker.resume_at(stepped.next_position);
                entry = entry.plus(1);
                continue;
            }
            Err(err) => {
                return Err(LogError::CorruptBatch {
                    path: view.log_path.to_path_buf(),
                    position: err.position,
                    offset: expected,
                    reason: err.reason,
                });
            }
        };
        if entry >= wanted && visit(&walked, entry).is_break() {
            return Ok(ControlFlow::Break(()));
        }
        entry = entry.plus(1);
    }
    Ok(ControlFlow::Continue(()))
}

fn header_of(walked: &WalkedBatch, entry: EntryIndex) -> EntryHeader {
    EntryHeader {
        entry,
        leader_epoch: walked.batch.leader_epoch(),
        base_offset: walked.batch.base_offset(),
        next_offset: walked.next_offset(),
        is_meta: walked.batch.is_meta(),
    }
}

/// How far into `view` bytes are visible (and so never cut), or `None` if none are.
fn visible_end(snapshot: &Published, view: &SegmentView) -> Option<FilePos> {
    if view.base_offset > snapshot.visible_base {
        return None;
    }
    if view.base_offset == snapshot.visible_base {
        return Some(snapshot.visible_pos);
    }
    view.sealed_bytes
}

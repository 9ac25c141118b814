//! Finding damaged entries by entry index, and rewriting them in place with good copies, for a
//! replica that can fetch the same entries from a peer. The log never decides what the good
//! bytes are; it checks that what it is given can only be the entries that were there.
//!
//! Why in place: an entry's batch is a pure function of the replicated log (the leader's bytes,
//! with a base offset every replica computes the same way and its term as partitionLeaderEpoch),
//! so the damaged bytes of entries `[e, e + n)` and a peer's copy of them are the same length.
//! Segment boundaries are not the same across replicas (`segment.ms` rolls on each replica's
//! own clock), so the repair never relies on the peer's file position, only on its own: the
//! replacement must fill exactly the span of bytes the damaged batches occupy here. Nothing is
//! truncated and no entry moves, so the log never goes backwards under Raft.
//!
//! The invariant: a repair writes only inside a span that fails validation now, only inside
//! what is written, and only batches that pass their CRC and whose offsets chain exactly from
//! the last good batch before the span to the first good batch after it. Which entries are
//! committed is the caller's knowledge (`upto`); it runs on the writer's thread, so no
//! truncation or append moves the span meanwhile.

use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};

use crate::batch::Batch;
use crate::error::LogError;
use crate::log::Log;
use crate::reader::LogReader;
use crate::segment::{BatchWalker, SegmentView, count_framed, next_valid_after};
use crate::types::{EntryIndex, FilePos, Offset};

/// A run of damaged entries inside one segment, as [`LogReader::damaged_entries`] found it: what
/// a replica must fetch from a peer and hand to [`Log::repair_entries`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedEntries {
    /// The segment file.
    pub path: PathBuf,
    /// The segment's base offset.
    pub segment_base: Offset,
    /// Where the first damaged batch starts.
    pub position: FilePos,
    /// Where the damaged span ends: the next valid batch, or the written end of the segment.
    pub end: FilePos,
    /// The entry index of the first damaged batch.
    pub first_entry: EntryIndex,
    /// How many entries the span holds, as the log numbered them (its lengths, when framing
    /// is intact).
    pub entry_count: u64,
    /// The base offset the first damaged batch must have (the previous batch's next offset).
    pub base_offset: Offset,
    /// The base offset of the first valid batch after the span, when one follows in this
    /// segment: the replacement must end there.
    pub next_offset: Option<Offset>,
    /// What is wrong with the first damaged batch.
    pub reason: String,
}

impl DamagedEntries {
    /// Bytes the damaged span occupies.
    pub fn len_bytes(&self) -> u64 {
        u64::from(self.end.0.saturating_sub(self.position.0))
    }
}

impl LogReader {
    /// Every damaged span among the entries below `upto`, in order, up to the last entry
    /// written. The caller bounds `upto` by what it knows is committed. Walks each segment from
    /// its start (a full read: run it off the async runtime), holding off truncation meanwhile
    /// (bytes past the visible end could otherwise be cut under the walk).
    pub fn damaged_entries(&self, upto: EntryIndex) -> Vec<DamagedEntries> {
        let _no_cuts = self
            .shared
            .cut_lock
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let snapshot = self.shared.snapshot();
        let mut found = Vec::new();
        for view in snapshot.segments.iter() {
            if view.base_entry >= upto {
                break;
            }
            let end = view.sealed_bytes.unwrap_or(snapshot.written_pos);
            damaged_in_segment(view, end, upto, &mut found);
        }
        found
    }
}

/// Adds the damaged spans of `view` up to `end` (and below entry `upto`) to `found`.
fn damaged_in_segment(
    view: &SegmentView,
    end: FilePos,
    upto: EntryIndex,
    found: &mut Vec<DamagedEntries>,
) {
    let mut walker = BatchWalker::new(view.data.clone(), FilePos(0), end, Some(view.base_offset))
        .allow_gaps(view.compacted);
    let mut entry = view.base_entry;
    while entry < upto {
        let err = match walker.next() {
            None => return,
            Some(Ok(_)) => {
                entry = entry.plus(1);
                continue;
            }
            Some(Err(err)) => err,
        };
        let floor = walker.offset_floor();
        let max_last = view.base_offset.plus(u64::from(u32::MAX));
        let next = next_valid_after(&view.data, &err, end, floor, max_last, true);
        let to = next.as_ref().map_or(end, |n| n.position);
        // Counted as recovery counts (`segment::open::step_over_damage`), so the entry indexes
        // agree with the log's own numbering after the span.
        let (framed, stop) = count_framed(&view.data, err.position, to);
        let entry_count = if stop < to { framed + 1 } else { framed }.max(1);
        found.push(DamagedEntries {
            path: view.log_path.to_path_buf(),
            segment_base: view.base_offset,
            position: err.position,
            end: to,
            first_entry: entry,
            entry_count,
            base_offset: floor,
            next_offset: next.as_ref().map(|n| n.batch.base_offset()),
            reason: err.reason.to_string(),
        });
        entry = entry.plus(entry_count);
        if next.is_none() {
            return;
        }
        walker.resume_at(to);
    }
}

impl Log {
    /// Rewrites the damaged span `range` (from [`LogReader::damaged_entries`]) with `batches`,
    /// good copies of the same entries, at the same position, then `fdatasync`s the segment.
    /// Durable when it returns `Ok`. A span that reads valid already is left alone (`Ok`).
    ///
    /// # Errors
    /// [`LogError::RepairRefused`] when `batches` cannot be those entries (a count, length,
    /// CRC or offset that does not fit the span) or the span is no longer where it was;
    /// [`LogError::Poisoned`] when the write or the `fdatasync` fails (as for any write: the
    /// page cache may no longer match the disk, so the log stops).
    pub fn repair_entries(
        &mut self,
        range: &DamagedEntries,
        batches: &[Bytes],
    ) -> Result<(), LogError> {
        self.check_writable()?;
        let refuse = |reason: String| LogError::RepairRefused {
            path: range.path.clone(),
            position: range.position,
            reason,
        };
        let snapshot = self.shared.snapshot();
        let view = snapshot
            .segments
            .iter()
            .find(|v| v.base_offset == range.segment_base && *v.log_path == range.path)
            .ok_or_else(|| refuse("the segment is gone".to_string()))?;
        let written = view.sealed_bytes.unwrap_or(snapshot.written_pos);
        if range.end > written || range.position >= range.end {
            return Err(refuse(format!(
                "span {}..{} is not inside the written bytes (up to {})",
                range.position.0, range.end.0, written.0
            )));
        }
        let replacement = check_replacement(range, batches, view.compacted).map_err(refuse)?;
        if span_reads_valid(view, range) {
            tracing::info!(segment = %range.path.display(), position = range.position.0, "damaged span already reads valid; nothing rewritten");
            return Ok(());
        }
        self.write_in_place(range, &replacement)?;
        if !span_reads_valid(view, range) {
            return Err(refuse(
                "the rewritten span does not read back valid".to_string(),
            ));
        }
        Ok(())
    }

    /// `pwrite`s `bytes` at the span's position through a descriptor of its own (the writer's
    /// descriptor belongs to the active segment only; the span may lie in a sealed one), then
    /// `fdatasync`s. Any failure poisons the log.
    fn write_in_place(&mut self, range: &DamagedEntries, bytes: &[u8]) -> Result<(), LogError> {
        let written = std::fs::OpenOptions::new()
            .write(true)
            .open(&range.path)
            .and_then(|file| {
                file.write_all_at(bytes, range.position.as_u64())?;
                file.sync_data()
            });
        match written {
            Ok(()) => Ok(()),
            Err(source) => {
                let err = LogError::io("repair segment", &range.path, source);
                Err(self.poison(err.to_string()))
            }
        }
    }
}

/// The replacement bytes, if `batches` can only be the entries of `range`: as many as it
/// holds, each passing its CRC, filling its span exactly, with offsets chaining from its base
/// offset to the next valid batch's.
fn check_replacement(
    range: &DamagedEntries,
    batches: &[Bytes],
    compacted: bool,
) -> Result<Bytes, String> {
    if batches.len() as u64 != range.entry_count {
        return Err(format!(
            "{} batches for a span of {} entries",
            batches.len(),
            range.entry_count
        ));
    }
    let total: u64 = batches.iter().map(|b| b.len() as u64).sum();
    if total != range.len_bytes() {
        return Err(format!(
            "{total} bytes for a span of {} bytes",
            range.len_bytes()
        ));
    }
    let mut out = BytesMut::with_capacity(batches.iter().map(Bytes::len).sum());
    let mut expected = range.base_offset;
    for bytes in batches {
        let batch = Batch::validate(bytes.clone()).map_err(|e| format!("a copy fails: {e}"))?;
        let base = batch.base_offset();
        let fits = if compacted {
            base >= expected
        } else {
            base == expected
        };
        if !fits {
            return Err(format!("base offset {base} where {expected} was expected"));
        }
        expected = base.plus(batch.offset_count());
        out.extend_from_slice(bytes);
    }
    if let Some(next) = range.next_offset {
        let fits = if compacted {
            expected <= next
        } else {
            expected == next
        };
        if !fits {
            return Err(format!(
                "the copies end at offset {expected}; the next batch starts at {next}"
            ));
        }
    }
    Ok(out.freeze())
}

/// Whether every batch in the span reads valid now, through the mapping readers use.
fn span_reads_valid(view: &SegmentView, range: &DamagedEntries) -> bool {
    let walker = BatchWalker::new(
        view.data.clone(),
        range.position,
        range.end,
        Some(range.base_offset),
    )
    .allow_gaps(view.compacted);
    let mut count = 0u64;
    for walked in walker {
        if walked.is_err() {
            return false;
        }
        count += 1;
    }
    count == range.entry_count
}

//! One segment: a `<20-digit base offset>.log` file of whole batches and its three sparse index
//! files. [`Segment`] is the writer's handle (append, seal, truncate); [`SegmentView`] is what
//! readers hold: the mapped bytes and the indexes, never the file handle.

mod appender;
mod locate;
mod mappings;
pub(crate) mod open;
mod paced_delete;
mod preallocation;
mod view;
mod walker;

pub(crate) use appender::Segment;
pub(crate) use paced_delete::{remove_dir, remove_dir_paced_now};
pub(crate) use view::SegmentView;
pub(crate) use walker::{
    BatchWalker, WalkError, WalkedBatch, count_framed, next_valid_after, step_over_damaged,
};

use std::path::{Path, PathBuf};

use crate::types::Offset;

/// The file name of a segment file: the base offset in 20 digits, then the extension.
pub(crate) fn segment_path(dir: &Path, base: Offset, extension: &str) -> PathBuf {
    dir.join(format!("{:020}.{extension}", base.0))
}

/// The base offset a `.log` file name encodes, if it is a segment file name.
pub(crate) fn parse_segment_name(name: &str) -> Option<Offset> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Offsets are Kafka int64s, and a segment's offsets reach 2^32 past its base: a larger
    // base cannot have been written by a log and would overflow arithmetic on it.
    let base: u64 = digits.parse().ok()?;
    (base <= MAX_SEGMENT_BASE).then_some(Offset(base))
}

/// The largest base offset a segment file name may carry.
pub(crate) const MAX_SEGMENT_BASE: u64 = i64::MAX as u64 - (1 << 33);

/// Extensions of the files that belong to a segment, in deletion order: the indexes go before
/// the `.log`, so a crash mid-delete leaves a `.log` that recovery reindexes, never orphan
/// indexes with no log (which recovery also removes, in case).
pub(crate) const SEGMENT_EXTENSIONS: [&str; 4] = ["index", "timeindex", "entryindex", "log"];

/// Extensions of a segment's index files.
pub(crate) const INDEX_EXTENSIONS: [&str; 3] = ["index", "timeindex", "entryindex"];

/// Takes a segment's files out of the log now and hands them to the deleter. Readers that still
/// map the `.log` keep their pages until they drop them; a file already gone is fine (a crash
/// mid-delete, then a retry).
pub(crate) fn delete_segment_files(dir: &Path, base: Offset) -> Result<(), crate::error::LogError> {
    let retired = retire_segment_files(dir, base)?;
    unlink_retired(retired);
    Ok(())
}

/// Suffix of a segment file renamed for deletion.
pub(crate) const RETIRED_SUFFIX: &str = ".deleted";

/// Renames a segment's files to `<name>.deleted` (indexes first), so they are out of the log at
/// once, and returns the new paths for [`unlink_retired`] to remove later, off the writer's
/// path: unlinking a large file can take a while. Leftovers are removed when the log opens.
pub(crate) fn retire_segment_files(
    dir: &Path,
    base: Offset,
) -> Result<Vec<PathBuf>, crate::error::LogError> {
    let mut retired = Vec::with_capacity(SEGMENT_EXTENSIONS.len());
    for extension in SEGMENT_EXTENSIONS {
        let path = segment_path(dir, base, extension);
        let target = dir.join(format!("{:020}.{extension}{RETIRED_SUFFIX}", base.0));
        match std::fs::rename(&path, &target) {
            Ok(()) => retired.push(target),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(crate::error::LogError::io("retire segment", &path, source)),
        }
    }
    Ok(retired)
}

/// Removes retired files, off the caller's path and paced so that freeing them does not stall
/// the disk (`paced_delete`). Failures are logged, not returned: the files are already out of
/// the log, and the next open removes what is left.
pub(crate) fn unlink_retired(paths: Vec<PathBuf>) {
    paced_delete::remove_retired(paths);
}

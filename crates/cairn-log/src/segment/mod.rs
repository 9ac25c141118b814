//! One segment: a `<20-digit base offset>.log` file of whole batches and its three sparse index
//! files. [`Segment`] is the writer's handle (append, seal, truncate); [`SegmentView`] is what
//! readers hold: the mapped bytes and the indexes, never the file handle.

mod appender;
mod locate;
pub(crate) mod open;
mod view;
mod walker;

pub(crate) use appender::Segment;
pub(crate) use view::SegmentView;
pub(crate) use walker::{BatchWalker, WalkError, WalkedBatch, next_valid_after};

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
    digits.parse().ok().map(Offset)
}

/// Extensions of the files that belong to a segment, in deletion order: the indexes go before
/// the `.log`, so a crash mid-delete leaves a `.log` that recovery reindexes, never orphan
/// indexes with no log (which recovery also removes, in case).
pub(crate) const SEGMENT_EXTENSIONS: [&str; 4] = ["index", "timeindex", "entryindex", "log"];

/// Extensions of a segment's index files.
pub(crate) const INDEX_EXTENSIONS: [&str; 3] = ["index", "timeindex", "entryindex"];

/// Deletes a segment's files. Readers that still map the `.log` keep their pages until they
/// drop them; a file already gone is fine (a crash mid-delete, then a retry).
pub(crate) fn delete_segment_files(dir: &Path, base: Offset) -> Result<(), crate::error::LogError> {
    for extension in SEGMENT_EXTENSIONS {
        let path = segment_path(dir, base, extension);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(crate::error::LogError::io("delete segment", &path, source)),
        }
    }
    Ok(())
}

//! The compaction file protocol (`segments-format.md`, "Compaction"): a clean writes its
//! segments into a staging directory, commits them with one directory rename, then moves each
//! file into the partition directory. Recovery resolves whatever a crash left: a staging
//! directory is the state before the clean and is deleted; a swap directory is the state after
//! it and is finished. Nothing here decides what a clean keeps.
//!
//! The invariant: the rename of the staging directory to the swap directory is the one commit
//! point. Every file inside was fsynced, and so was the staging directory, before it.

use std::path::{Path, PathBuf};

use crate::checkpoint::fsync_dir;
use crate::error::LogError;

/// Where a clean writes its segments before it commits. Deleted at open (the clean never
/// happened).
pub(crate) const STAGING_DIR: &str = "compaction.cleaned";
/// A committed clean whose files are still being moved into place. Finished at open.
pub(crate) const SWAP_DIR: &str = "compaction.swap";

/// Makes an empty staging directory (removing a leftover one) and returns its path.
pub(crate) fn prepare_staging(dir: &Path) -> Result<PathBuf, LogError> {
    let staging = dir.join(STAGING_DIR);
    remove_dir_if_present(&staging)?;
    std::fs::create_dir(&staging)
        .map_err(|source| LogError::io("create compaction staging directory", &staging, source))?;
    fsync_dir(dir)?;
    Ok(staging)
}

/// Makes the staging directory's entries durable: its files were fsynced one by one as they
/// were sealed, and this makes their names durable too, before the commit can point at them.
pub(crate) fn seal_staging(dir: &Path) -> Result<(), LogError> {
    fsync_dir(&dir.join(STAGING_DIR))
}

/// Commits a clean: renames the staging directory to the swap directory and fsyncs the
/// partition directory. From here on, a crash finishes the clean at open.
pub(crate) fn commit(dir: &Path) -> Result<(), LogError> {
    injected_fault(dir)?;
    let (staging, swap) = (dir.join(STAGING_DIR), dir.join(SWAP_DIR));
    std::fs::rename(&staging, &swap)
        .map_err(|source| LogError::io("commit compaction", &staging, source))?;
    fsync_dir(dir)
}

/// Moves every file of the swap directory into the partition directory, replacing the files of
/// the same name (the segments as they were before the clean, and the cleaner checkpoint), then
/// removes the swap directory. Idempotent: after a crash part-way, running it again finishes the
/// job. Readers that map a replaced file keep its inode, and so their bytes, until they drop it.
pub(crate) fn roll_forward(dir: &Path) -> Result<(), LogError> {
    let swap = dir.join(SWAP_DIR);
    let mut names = Vec::new();
    let entries = std::fs::read_dir(&swap)
        .map_err(|source| LogError::io("list compaction swap directory", &swap, source))?;
    for entry in entries {
        let entry = entry
            .map_err(|source| LogError::io("list compaction swap directory", &swap, source))?;
        names.push(entry.file_name());
    }
    // Segment logs last: an index file whose log is missing is removed at open, so moving
    // indexes first could lose nothing but time, while the sorted order keeps runs reproducible.
    names.sort_by_key(|name| (name.to_string_lossy().ends_with(".log"), name.clone()));
    for name in names {
        injected_fault(dir)?;
        let (from, to) = (swap.join(&name), dir.join(&name));
        std::fs::rename(&from, &to)
            .map_err(|source| LogError::io("move cleaned file into place", &from, source))?;
    }
    fsync_dir(dir)?;
    injected_fault(dir)?;
    std::fs::remove_dir(&swap)
        .map_err(|source| LogError::io("remove compaction swap directory", &swap, source))?;
    fsync_dir(dir)
}

/// Removes a staging directory that will not be committed (an abandoned or failed clean).
/// Failures are logged: the next open removes it anyway.
pub(crate) fn discard_staging(dir: &Path) {
    if let Err(err) = remove_dir_if_present(&dir.join(STAGING_DIR)) {
        tracing::warn!(%err, "could not remove an abandoned compaction; the next open will");
    }
}

/// Resolves what a crash left at open, before any segment is listed: a staging directory is
/// deleted (the log is as before the clean), a swap directory is rolled forward (as after it).
pub(crate) fn resolve_at_open(dir: &Path) -> Result<(), LogError> {
    let staging = dir.join(STAGING_DIR);
    if staging.exists() {
        tracing::info!(dir = %dir.display(), "removing an uncommitted compaction (a crash before its commit)");
        remove_dir_if_present(&staging)?;
        fsync_dir(dir)?;
    }
    if dir.join(SWAP_DIR).exists() {
        tracing::info!(dir = %dir.display(), "finishing a committed compaction (a crash during its swap)");
        roll_forward(dir)?;
    }
    Ok(())
}

fn remove_dir_if_present(path: &Path) -> Result<(), LogError> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(LogError::io("remove compaction directory", path, e))
        }
        _ => Ok(()),
    }
}

#[cfg(feature = "fault-injection")]
fn injected_fault(dir: &Path) -> Result<(), LogError> {
    match crate::fault::check(dir, crate::fault::FaultPoint::CleanStep) {
        Some(source) => Err(LogError::io(
            "compaction step (injected fault)",
            dir,
            source,
        )),
        None => Ok(()),
    }
}

#[cfg(not(feature = "fault-injection"))]
fn injected_fault(_dir: &Path) -> Result<(), LogError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_is_discarded_and_swap_is_finished_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        std::fs::write(path.join("a.log"), b"old").unwrap();
        let staging = prepare_staging(path).unwrap();
        std::fs::write(staging.join("a.log"), b"new").unwrap();
        resolve_at_open(path).unwrap();
        assert_eq!(std::fs::read(path.join("a.log")).unwrap(), b"old");
        assert!(!staging.exists());

        let staging = prepare_staging(path).unwrap();
        std::fs::write(staging.join("a.log"), b"new").unwrap();
        std::fs::write(staging.join("a.index"), b"idx").unwrap();
        seal_staging(path).unwrap();
        commit(path).unwrap();
        // A crash after one file moved: the open moves the rest.
        std::fs::rename(path.join(SWAP_DIR).join("a.index"), path.join("a.index")).unwrap();
        resolve_at_open(path).unwrap();
        assert_eq!(std::fs::read(path.join("a.log")).unwrap(), b"new");
        assert_eq!(std::fs::read(path.join("a.index")).unwrap(), b"idx");
        assert!(!path.join(SWAP_DIR).exists());
    }
}

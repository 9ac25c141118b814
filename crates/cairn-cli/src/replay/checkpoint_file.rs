//! The checkpoint file of `cairn replay --checkpoint FILE`: [`Checkpoint`]'s text form
//! (`cairn_client::Checkpoint` documents it), read at start and replaced atomically.
//!
//! The invariant: at every instant the file holds either the previous checkpoint or the new
//! one, whole, even across a power loss: the new text goes to a temporary file beside it, is
//! fsynced, renamed over the old one, and the directory is fsynced so the rename itself is
//! durable.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use cairn_client::{Checkpoint, ClientError};

/// Largest checkpoint file read: a line per partition is far below this.
pub const MAX_CHECKPOINT_FILE_BYTES: u64 = 64 << 20;

/// The checkpoint in `path`, or `None` when there is no such file (a first run).
///
/// # Errors
/// An unreadable or oversized file, or malformed text: the message names the file and,
/// for malformed text, the line.
pub fn load(path: &Path) -> anyhow::Result<Option<Checkpoint>> {
    let size = match fs::metadata(path) {
        Ok(metadata) => metadata.len(),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(err).with_context(|| format!("reading checkpoint file {}", path.display()));
        }
    };
    if size > MAX_CHECKPOINT_FILE_BYTES {
        return Err(anyhow!(
            "checkpoint file {} is {size} bytes, more than the {MAX_CHECKPOINT_FILE_BYTES} a checkpoint can be",
            path.display()
        ));
    }
    let text = fs::read_to_string(path)
        .with_context(|| format!("reading checkpoint file {}", path.display()))?;
    match Checkpoint::parse(&text) {
        Ok(checkpoint) => Ok(Some(checkpoint)),
        Err(ClientError::MalformedCheckpoint { line, reason }) => Err(anyhow!(
            "checkpoint file {}, line {line}: {reason}",
            path.display()
        )),
        Err(err) => Err(err).with_context(|| format!("checkpoint file {}", path.display())),
    }
}

/// Replaces `path` with `checkpoint`, atomically and durably (see the module docs).
///
/// # Errors
/// Any failed write, fsync or rename, naming the file.
pub fn store(path: &Path, checkpoint: &Checkpoint) -> anyhow::Result<()> {
    let temporary = temporary_path(path);
    let write = || -> io::Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&temporary)?;
        file.write_all(checkpoint.to_text().as_bytes())?;
        file.sync_all()?;
        fs::rename(&temporary, path)?;
        // The rename is durable only once the directory entry is.
        File::open(parent_dir(path))?.sync_all()
    };
    write().with_context(|| format!("writing checkpoint file {}", path.display()))
}

/// `FILE.tmp` beside `FILE`: same directory, so the rename stays on one filesystem.
fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_missing_file_is_a_first_run_and_a_stored_one_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.checkpoint");
        assert_eq!(load(&path).unwrap(), None);
        let checkpoint = Checkpoint::new("orders", BTreeMap::from([(0, 5), (1, 9)])).unwrap();
        store(&path, &checkpoint).unwrap();
        store(&path, &checkpoint).unwrap();
        assert_eq!(load(&path).unwrap(), Some(checkpoint));
        assert!(!temporary_path(&path).exists(), "renamed into place");
    }

    #[test]
    fn a_malformed_file_is_refused_naming_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad");
        fs::write(&path, "cairn-replay-checkpoint v1\ntopic orders\n0 five\n").unwrap();
        let message = load(&path).unwrap_err().to_string();
        assert!(
            message.contains(&path.display().to_string()) && message.contains("line 3"),
            "{message}"
        );
        fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(load(&path).is_err());
    }
}

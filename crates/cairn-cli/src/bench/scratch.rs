//! The benches' scratch directories (baseline files, the replica floor's copies, copied logs).
//! They hold up to a few GiB that the bench frees as soon as a measurement is done, and on a
//! disk mounted with online `discard` freeing that much at once holds every fsync for a few
//! hundred milliseconds: the measurement that follows (often Cairn's own, the next command of a
//! bench script) would start inside a stall the bench made. So a scratch directory is emptied
//! at the log's paced deletion rate before it goes (`cairn_log::remove_scratch_dir`), on the
//! dropping thread, so nothing of it runs beside what comes next.

use std::path::Path;

use anyhow::Context;

/// A scratch directory under a given directory, emptied paced and removed when dropped.
#[derive(Debug)]
pub(super) struct Scratch {
    dir: Option<tempfile::TempDir>,
}

impl Scratch {
    /// A new directory named `<prefix><random>` in `parent`.
    pub(super) fn new_in(parent: &Path, prefix: &str) -> anyhow::Result<Scratch> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(parent)
            .with_context(|| format!("creating a scratch directory in {}", parent.display()))?;
        Ok(Scratch { dir: Some(dir) })
    }

    /// The directory's path.
    pub(super) fn path(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), |d| d.path())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take()
            && let Err(err) = cairn_log::remove_scratch_dir(dir.path())
        {
            // The temporary directory's own drop removes what is left, at once.
            eprintln!("warning: freeing the scratch directory paced failed: {err}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    #[test]
    fn the_directory_goes_with_everything_in_it() {
        let parent = tempfile::tempdir().unwrap();
        let scratch = Scratch::new_in(parent.path(), "cairn-bench-test-").unwrap();
        let path = scratch.path().to_path_buf();
        std::fs::write(path.join("big"), vec![1_u8; 1 << 20]).unwrap();
        std::fs::create_dir(path.join("sub")).unwrap();
        std::fs::write(path.join("sub").join("x"), [2]).unwrap();
        drop(scratch);
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
    }
}

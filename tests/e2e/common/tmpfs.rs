//! A small disk for a test: a tmpfs mounted on a directory (root only), and a way to fill it,
//! for the full-disk tests and the fault loop's full-disk rounds.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A tmpfs of `size` mounted on `path` for one test, unmounted on drop. `None` (the test then
/// skips, loudly, or leaves the fault out) when mounting is not allowed: it needs root, which
/// CI has.
pub struct TmpfsMount(PathBuf);

impl TmpfsMount {
    pub fn new(path: &Path, size: &str) -> Option<TmpfsMount> {
        std::fs::create_dir_all(path).ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .stderr(Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| TmpfsMount(path.to_path_buf()))
    }

    /// Writes a file at `name` in the mount until the disk is full (the file stays, partial);
    /// removing it frees the space again.
    pub fn fill(&self, name: &str) -> PathBuf {
        let path = self.0.join(name);
        let chunk = vec![0u8; 1 << 20];
        if let Ok(mut file) = std::fs::File::create(&path) {
            while file.write_all(&chunk).is_ok() {}
            // The last partial chunk may have taken only part of what was left.
            while file.write_all(&chunk[..4096]).is_ok() {}
            while file.write_all(&chunk[..1]).is_ok() {}
        }
        path
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        // Lazy: a node killed a moment ago may still hold a file open.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

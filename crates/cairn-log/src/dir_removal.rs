//! Deleting a whole log directory (a deleted topic's partition, a copy a node no longer
//! hosts) without stalling the disk, as Kafka does it: the directory is renamed out of the
//! data directory's names at once, so a topic of the same name can be created the moment the
//! call returns, and the process's paced deleter (`segment::paced_delete`) frees its files in
//! the background. A crash before it is done leaves a directory ending in
//! [`DELETING_DIR_SUFFIX`], which the owner hands back with [`resume_log_dir_removals`] at
//! its next start.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::checkpoint::fsync_dir;
use crate::error::LogError;
use crate::segment::{remove_dir, remove_dir_paced_now};

/// The suffix of a log directory renamed for deletion: `<name>.<nanoseconds>.deleting`.
pub const DELETING_DIR_SUFFIX: &str = ".deleting";

/// Removes the log directory `dir`, whose log must be closed: renames it to
/// `<dir>.<nanoseconds>.deleting` (the name cut short where that would pass 255 bytes), makes
/// the rename durable, and leaves the rest to the deleter. A directory already gone is fine.
///
/// # Errors
/// [`LogError::Io`] when the rename or its fsync fails; `dir` is then as it was, or renamed.
pub fn remove_log_dir(dir: &Path) -> Result<(), LogError> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Err(LogError::io(
            "delete log directory",
            dir,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a directory's path"),
        ));
    };
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = name.to_string_lossy();
    let mut attempt = 0_u128;
    let renamed = loop {
        let tail = format!(".{}{DELETING_DIR_SUFFIX}", stamp + attempt);
        let target = parent.join(format!("{}{tail}", name_prefix(&name, tail.len())));
        match std::fs::rename(dir, &target) {
            Ok(()) => break target,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            // A directory of that name already (a clock that stood still): try the next.
            Err(e) if attempt < 16 && target.exists() => {
                tracing::debug!(target = %target.display(), %e, "deletion name taken; trying another");
                attempt += 1;
            }
            Err(source) => {
                return Err(LogError::io(
                    "rename log directory for deletion",
                    dir,
                    source,
                ));
            }
        }
    };
    fsync_dir(parent)?;
    remove_dir(renamed);
    Ok(())
}

/// Removes a scratch directory (one no log uses) and everything in it before returning,
/// shrinking each file at the paced deleter's rate first, so that freeing it neither stalls
/// the disk for what comes next nor goes on beside it. Benchmarks use it for their baseline
/// files. A directory already gone is fine.
///
/// # Errors
/// [`LogError::Io`] when the directory cannot be listed or removed.
pub fn remove_scratch_dir(dir: &Path) -> Result<(), LogError> {
    remove_dir_paced_now(dir)
        .map_err(|source| LogError::io("remove scratch directory", dir, source))
}

/// True when some open log, in this process or another, holds the lock file of the log
/// directory `dir` (its `flock`): the directory is in use and must not be removed.
pub fn is_held_by_an_open_log(dir: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(dir.join(crate::recovery::LOCK_FILE)) else {
        return false;
    };
    // SAFETY: a plain syscall on an fd we own; a lock taken goes with the file at once.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK)
}

/// The longest start of `name` that leaves room for `tail` within a file name's 255 bytes,
/// cut at a character boundary: the longest topic names fill a name on their own.
fn name_prefix(name: &str, tail: usize) -> &str {
    let mut end = name.len().min(NAME_MAX_BYTES.saturating_sub(tail));
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// The longest file name Linux filesystems take, in bytes.
const NAME_MAX_BYTES: usize = 255;

/// True for a directory name that [`remove_log_dir`] gave: one to hand back to the deleter
/// (see [`resume_log_dir_removals`]), never a log.
pub fn is_log_dir_being_deleted(name: &str) -> bool {
    name.ends_with(DELETING_DIR_SUFFIX)
}

/// Hands the deleter every directory in `parent` that [`remove_log_dir`] renamed and a stop
/// left half removed, and returns how many. A missing `parent` holds none.
///
/// # Errors
/// [`LogError::Io`] when `parent` cannot be listed.
pub fn resume_log_dir_removals(parent: &Path) -> Result<usize, LogError> {
    let entries = match std::fs::read_dir(parent) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => return Err(LogError::io("list directory", parent, source)),
    };
    let mut resumed = 0;
    for entry in entries {
        let entry = entry.map_err(|source| LogError::io("list directory", parent, source))?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && is_held_by_an_open_log(&entry.path()) {
            // Another process (a second broker on this data directory) has it open: shrinking
            // its files would raise SIGBUS in that process's readers.
            tracing::warn!(directory = %entry.path().display(), "a log directory being deleted is open in another process; left alone");
            continue;
        }
        if is_dir
            && entry
                .file_name()
                .to_str()
                .is_some_and(is_log_dir_being_deleted)
        {
            tracing::info!(directory = %entry.path().display(), "finishing the deletion of a log directory");
            remove_dir(entry.path());
            resumed += 1;
        }
    }
    Ok(resumed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn the_name_is_free_at_once_and_the_rest_goes_in_the_background() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("orders-0");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("00000000000000000000.log"), vec![1; 3 << 20]).unwrap();
        std::fs::write(dir.join("00000000000000000000.index"), [2; 64]).unwrap();
        std::fs::create_dir(dir.join("cleaning")).unwrap();
        std::fs::write(dir.join("cleaning").join("x"), [3]).unwrap();

        remove_log_dir(&dir).unwrap();
        assert!(!dir.exists());
        std::fs::create_dir(&dir).unwrap();
        let start = Instant::now();
        loop {
            let names: Vec<String> = std::fs::read_dir(data.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            if names == ["orders-0"] {
                break;
            }
            assert!(
                names
                    .iter()
                    .all(|n| n == "orders-0" || is_log_dir_being_deleted(n))
            );
            assert!(start.elapsed() < Duration::from_secs(10), "left: {names:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Already gone is fine.
        remove_log_dir(&data.path().join("orders-1")).unwrap();
    }

    #[test]
    fn the_longest_names_still_fit() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join(format!("{}-0", "é".repeat(126)));
        std::fs::create_dir(&dir).unwrap();
        remove_log_dir(&dir).unwrap();
        assert!(!dir.exists());
        assert_eq!(name_prefix("abc", 253), "ab");
        assert_eq!(name_prefix("aé", 253), "a");
    }

    #[test]
    fn a_removal_a_stop_interrupted_is_finished_at_the_next_start() {
        let data = tempfile::tempdir().unwrap();
        let left = data.path().join("orders-0.17.deleting");
        std::fs::create_dir(&left).unwrap();
        std::fs::write(left.join("00000000000000000000.log"), [1; 100]).unwrap();
        std::fs::create_dir(data.path().join("orders-1")).unwrap();
        std::fs::write(data.path().join("notes.deleting"), [1]).unwrap();
        assert_eq!(resume_log_dir_removals(data.path()).unwrap(), 1);
        let start = Instant::now();
        while left.exists() {
            assert!(start.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(data.path().join("orders-1").exists());
        assert!(
            data.path().join("notes.deleting").exists(),
            "a file is not a log directory"
        );
        assert_eq!(
            resume_log_dir_removals(&data.path().join("none")).unwrap(),
            0
        );

        // One another log holds open is left alone.
        let held = data.path().join("orders-2.18.deleting");
        std::fs::create_dir(&held).unwrap();
        let log = crate::Log::open(&held, crate::LogConfig::default(), 0).unwrap();
        assert_eq!(resume_log_dir_removals(data.path()).unwrap(), 0);
        assert!(held.exists());
        drop(log);
    }
}

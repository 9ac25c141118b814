//! Removing retired segment files without stalling every fsync on the disk.
//!
//! Freeing a file's blocks is not free for the disk. On a filesystem mounted with online
//! `discard` (this project's test machines' `/` is, and some clouds advise it for their
//! volumes) ext4 sends the device a discard for every freed extent, and the device serves them
//! before the writes queued behind. Measured here (`BENCHMARKS.md`, "Retention without a
//! stall"): unlinking one 1 GiB file held every fdatasync on the disk for 150 - 250 ms, so
//! each segment retention deleted was an ack stall for every partition on the node.
//! RocksDB meets the same stall with its `DeleteScheduler`; this does what it does: a retired
//! `.log` is shrunk from its end in steps of [`DELETE_STEP_BYTES`], a pause after each, and
//! only then closed, so the disk sees small discards spread out. Index files are small and are
//! unlinked at once.
//!
//! One background thread per process does it all, so that partitions retiring segments at the
//! same moment do not multiply the rate. A file goes as soon as it is handed over: its name is
//! unlinked at once (it is already out of the log, renamed `.deleted`), and the thread holds
//! it open until no reader maps it any more (`mappings`), because shrinking a mapped file
//! would raise `SIGBUS` in the reader. A crash before then leaves nothing to clean: the kernel
//! frees an unlinked file when the process ends, and a `.deleted` name still present is
//! removed by the next open.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

use super::RETIRED_SUFFIX;
use super::mappings::{FileId, live_mappings};

/// Bytes freed by one step when a retired `.log` is shrunk: small enough that the discards
/// of one step hold an fsync for a few milliseconds at most on the disks measured (32 MiB
/// steps held them up to 15 ms, 128 MiB steps up to 33 ms).
pub(crate) const DELETE_STEP_BYTES: u64 = 8 << 20;

/// The pause after each step: at most 8 MiB per 16 ms, about 500 MiB/s, which frees a 1 GiB
/// segment in about two seconds; far faster than a broker on one disk can fill it again.
pub(crate) const DELETE_STEP_PAUSE: Duration = Duration::from_millis(16);

/// How often a retired file that a reader still maps is looked at again.
const MAPPED_RECHECK: Duration = Duration::from_millis(100);

/// How a deleter shrinks files; tests use smaller steps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pace {
    pub(crate) step_bytes: u64,
    pub(crate) pause: Duration,
    pub(crate) recheck: Duration,
}

/// The pace of the process's deleter.
pub(crate) const PACE: Pace = Pace {
    step_bytes: DELETE_STEP_BYTES,
    pause: DELETE_STEP_PAUSE,
    recheck: MAPPED_RECHECK,
};

/// What the deleter is handed.
#[derive(Debug)]
pub(crate) enum Work {
    /// Retired segment files, already renamed with [`RETIRED_SUFFIX`].
    Retired(Vec<PathBuf>),
    /// A whole log directory, already renamed out of the data directory's names; it goes with
    /// everything in it.
    Dir(PathBuf),
}

/// Hands retired files (already renamed with [`RETIRED_SUFFIX`]) to the process's deleter.
/// Failures are logged, never returned: the files are out of the log already, and the next open
/// removes whatever is left. Without a deleter thread (none could be started) they are
/// unlinked here, as before pacing existed.
pub(crate) fn remove_retired(paths: Vec<PathBuf>) {
    if !paths.is_empty() {
        hand_over(Work::Retired(paths));
    }
}

/// Hands a log directory that no log uses any more, and that is out of the data directory's
/// names, to the process's deleter; without one, removes it here at once.
pub(crate) fn remove_dir(path: PathBuf) {
    hand_over(Work::Dir(path));
}

fn hand_over(work: Work) {
    let refused = match deleter() {
        Some(sender) => sender.send(work).err().map(|returned| returned.0),
        None => Some(work),
    };
    match refused {
        Some(Work::Retired(paths)) => unlink_all(&paths),
        Some(Work::Dir(path)) => remove_dir_now(&path),
        None => {}
    }
}

fn deleter() -> Option<&'static Sender<Work>> {
    static DELETER: OnceLock<Option<Sender<Work>>> = OnceLock::new();
    DELETER
        .get_or_init(|| {
            let (sender, receiver) = channel();
            let spawned = std::thread::Builder::new()
                .name("cairn-log-delete".to_string())
                .spawn(move || run(&receiver, PACE));
            match spawned {
                Ok(_) => Some(sender),
                Err(err) => {
                    tracing::warn!(%err, "no thread to pace segment deletion; retired segments are unlinked at once");
                    None
                }
            }
        })
        .as_ref()
}

/// Removes `dir` with everything in it on the caller's thread, shrinking each regular file in
/// it first at the deleter's pace; a file that some mapping of this process still holds is only
/// unlinked. For scratch directories (a benchmark's baseline files) whose removal must neither
/// stall the measurement after it nor run beside it.
pub(crate) fn remove_dir_paced_now(dir: &Path) -> std::io::Result<()> {
    shrink_tree(dir, PACE)?;
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn shrink_tree(dir: &Path, pace: Pace) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let (path, kind) = (entry.path(), entry.file_type()?);
        if kind.is_dir() {
            shrink_tree(&path, pace)?;
        } else if kind.is_file()
            && let Ok(file) = OpenOptions::new().write(true).open(&path)
        {
            let unmapped = FileId::of(&file).is_ok_and(|id| live_mappings(id) == 0);
            if unmapped {
                shrink(&file, &path, pace);
            }
        }
    }
    Ok(())
}

/// A retired `.log` whose name is gone, held open until no reader maps it, then shrunk.
struct Held {
    file: File,
    id: FileId,
    path: PathBuf,
}

/// The deleter's loop: takes retired files as they come, and shrinks each held file once
/// nothing maps it. Ends when every sender is gone and nothing is held.
pub(crate) fn run(receiver: &Receiver<Work>, pace: Pace) {
    let mut held: Vec<Held> = Vec::new();
    loop {
        let first = if held.is_empty() {
            receiver.recv().ok()
        } else {
            match receiver.recv_timeout(pace.recheck) {
                Ok(work) => Some(work),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    if held.iter().all(|h| live_mappings(h.id) > 0) {
                        std::thread::sleep(pace.recheck);
                    }
                    None
                }
            }
        };
        if first.is_none() && held.is_empty() {
            // Every sender is gone and nothing is held: the process is done with its logs.
            return;
        }
        for work in first
            .into_iter()
            .chain(std::iter::from_fn(|| receiver.try_recv().ok()))
        {
            match work {
                Work::Retired(paths) => held.extend(paths.into_iter().filter_map(take)),
                Work::Dir(path) => held.extend(empty_dir(&path, pace)),
            }
        }
        held.retain(|h| {
            if live_mappings(h.id) > 0 {
                return true;
            }
            shrink(&h.file, &h.path, pace);
            false
        });
    }
}

/// Unlinks one retired file; for a segment's data file, first opens it, so that it can be shrunk once no
/// reader maps it. Index files (small, and mapped by readers too) are only unlinked.
fn take(path: PathBuf) -> Option<Held> {
    if !is_log(&path) {
        unlink(&path);
        return None;
    }
    let opened = OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|file| FileId::of(&file).map(|id| (file, id)));
    unlink(&path);
    match opened {
        Ok((file, id)) => Some(Held { file, id, path }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => {
            tracing::warn!(file = %path.display(), %err, "could not open a retired segment to shrink it; it is freed at once");
            None
        }
    }
}

/// Removes a log directory: each `.log` in it is taken and, unless a reader maps it, shrunk at
/// once, so that no more than one is held open at a time for its own sake; the rest of the
/// directory then goes. Returns the files readers still map, for the loop to hold.
fn empty_dir(dir: &Path, pace: Pace) -> Vec<Held> {
    let mut mapped = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries.flatten() {
                let path = entry.path();
                if !is_log(&path) {
                    continue;
                }
                if let Some(h) = take(path) {
                    if live_mappings(h.id) > 0 {
                        mapped.push(h);
                    } else {
                        shrink(&h.file, &h.path, pace);
                    }
                }
            }
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return mapped,
        Err(err) => {
            tracing::warn!(dir = %dir.display(), %err, "could not list a deleted log directory; removing it at once");
        }
    }
    remove_dir_now(dir);
    mapped
}

fn remove_dir_now(dir: &Path) {
    if let Err(err) = std::fs::remove_dir_all(dir)
        && err.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), %err, "could not remove a deleted log directory; the next start will");
    }
}

/// A segment's data file, live (`.log`) or retired (`.log.deleted`).
fn is_log(path: &Path) -> bool {
    is_retired_log(path) || path.extension().is_some_and(|e| e == "log")
}

fn is_retired_log(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_suffix(RETIRED_SUFFIX))
        .is_some_and(|name| name.ends_with(".log"))
}

/// Shrinks an unlinked file to nothing from its end, a step and a pause at a time; the close
/// that follows frees what is left. An error stops the shrinking (the close frees the rest at
/// once): nothing of the log depends on it.
fn shrink(file: &File, path: &Path, pace: Pace) {
    let mut len = match file.metadata() {
        Ok(meta) => meta.len(),
        Err(err) => {
            tracing::warn!(file = %path.display(), %err, "could not stat a retired segment; it is freed at once");
            return;
        }
    };
    while len > 0 {
        len = len.saturating_sub(pace.step_bytes.max(1));
        if let Err(err) = file.set_len(len) {
            tracing::warn!(file = %path.display(), %err, "could not shrink a retired segment; the rest is freed at once");
            return;
        }
        if len > 0 {
            std::thread::sleep(pace.pause);
        }
    }
}

fn unlink(path: &Path) {
    if let Err(err) = std::fs::remove_file(path)
        && err.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(file = %path.display(), %err, "could not remove a retired segment file; the next open will");
    }
}

fn unlink_all(paths: &[PathBuf]) {
    for path in paths {
        unlink(path);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;
    use crate::segment::mappings::map_counted;
    use memmap2::MmapOptions;
    use std::io::Write;
    use std::time::Instant;

    const TEST_PACE: Pace = Pace {
        step_bytes: 4096,
        pause: Duration::from_millis(1),
        recheck: Duration::from_millis(5),
    };

    fn retired_file(dir: &Path, name: &str, bytes: usize) -> PathBuf {
        let path = dir.join(format!("{name}{RETIRED_SUFFIX}"));
        File::create(&path)
            .unwrap()
            .write_all(&vec![9; bytes])
            .unwrap();
        path
    }

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "timed out: {what}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits until the file `watch` has open is shrunk to nothing.
    fn wait_until_empty(watch: &File) {
        wait_for("the file to shrink", || {
            watch.metadata().unwrap().len() == 0
        });
    }

    #[test]
    fn tells_retired_logs_from_index_files() {
        assert!(is_retired_log(Path::new(
            "/d/00000000000000000000.log.deleted"
        )));
        assert!(!is_retired_log(Path::new(
            "/d/00000000000000000000.index.deleted"
        )));
        assert!(!is_retired_log(Path::new("/d/00000000000000000000.log")));
    }

    #[test]
    fn a_mapped_log_is_unlinked_at_once_and_shrunk_only_once_unmapped() {
        let dir = tempfile::tempdir().unwrap();
        let log = retired_file(dir.path(), "00000000000000000000.log", 10 * 4096 + 17);
        let index = retired_file(dir.path(), "00000000000000000000.index", 100);
        let watch = File::open(&log).unwrap();
        let id = FileId::of(&watch).unwrap();
        // SAFETY: a file this test owns; the point is that nobody shrinks it while mapped.
        let map = map_counted(unsafe { MmapOptions::new().map(&watch) }.unwrap(), id);
        let reader = bytes::Bytes::from_owner(map);

        let (sender, receiver) = channel();
        let deleter = std::thread::spawn(move || run(&receiver, TEST_PACE));
        sender
            .send(Work::Retired(vec![log.clone(), index.clone()]))
            .unwrap();
        wait_for("the names to go", || !log.exists() && !index.exists());
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(watch.metadata().unwrap().len(), 10 * 4096 + 17);
        // Every page is still readable: shrinking under the mapping would have raised SIGBUS.
        assert!(reader.iter().all(|&b| b == 9));

        drop(reader);
        wait_until_empty(&watch);
        drop(sender);
        deleter.join().unwrap();
    }

    #[test]
    fn a_held_file_does_not_hold_back_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let mapped = retired_file(dir.path(), "00000000000000000000.log", 4096);
        let free = retired_file(dir.path(), "00000000000000001000.log", 3 * 4096);
        let watch_mapped = File::open(&mapped).unwrap();
        let watch_free = File::open(&free).unwrap();
        let id = FileId::of(&watch_mapped).unwrap();
        // SAFETY: as above.
        let map = map_counted(
            unsafe { MmapOptions::new().map(&watch_mapped) }.unwrap(),
            id,
        );

        let (sender, receiver) = channel();
        let deleter = std::thread::spawn(move || run(&receiver, TEST_PACE));
        sender.send(Work::Retired(vec![mapped])).unwrap();
        sender.send(Work::Retired(vec![free])).unwrap();
        wait_until_empty(&watch_free);
        assert_eq!(watch_mapped.metadata().unwrap().len(), 4096);
        drop(sender);
        drop(map);
        // With every sender gone, the deleter still finishes what it holds, then ends.
        deleter.join().unwrap();
        assert_eq!(watch_mapped.metadata().unwrap().len(), 0);
    }

    #[test]
    fn a_directory_goes_whole_and_its_mapped_log_is_shrunk_once_unmapped() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("orders-0.1.deleting");
        std::fs::create_dir(&dir).unwrap();
        let mapped = retired_file(&dir, "00000000000000000000.log", 3 * 4096);
        let mapped = {
            let live = dir.join("00000000000000000000.log");
            std::fs::rename(&mapped, &live).unwrap();
            live
        };
        let free = retired_file(&dir, "00000000000000001000.log", 5 * 4096);
        retired_file(&dir, "00000000000000000000.index", 10);
        let watch_mapped = File::open(&mapped).unwrap();
        let watch_free = File::open(&free).unwrap();
        let id = FileId::of(&watch_mapped).unwrap();
        // SAFETY: as above.
        let map = map_counted(
            unsafe { MmapOptions::new().map(&watch_mapped) }.unwrap(),
            id,
        );

        let (sender, receiver) = channel();
        let deleter = std::thread::spawn(move || run(&receiver, TEST_PACE));
        sender.send(Work::Dir(dir.clone())).unwrap();
        wait_for("the directory to go", || !dir.exists());
        assert_eq!(watch_free.metadata().unwrap().len(), 0);
        assert_eq!(watch_mapped.metadata().unwrap().len(), 3 * 4096);
        drop(map);
        wait_until_empty(&watch_mapped);
        drop(sender);
        deleter.join().unwrap();
    }

    #[test]
    fn a_scratch_tree_is_emptied_and_removed_on_the_callers_thread() {
        let data = tempfile::tempdir().unwrap();
        let scratch = data.path().join("scratch");
        std::fs::create_dir_all(scratch.join("inner")).unwrap();
        retired_file(&scratch, "raw", 3 << 20);
        retired_file(&scratch.join("inner"), "x.log", 4096);
        let watch = File::open(scratch.join(format!("raw{RETIRED_SUFFIX}"))).unwrap();
        shrink_tree(&scratch, TEST_PACE).unwrap();
        assert_eq!(watch.metadata().unwrap().len(), 0);
        remove_dir_paced_now(&scratch).unwrap();
        assert!(!scratch.exists());
        remove_dir_paced_now(&scratch).unwrap();
    }

    #[test]
    fn a_file_already_gone_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let (sender, receiver) = channel();
        let deleter = std::thread::spawn(move || run(&receiver, TEST_PACE));
        sender
            .send(Work::Retired(vec![
                dir.path().join("00000000000000000000.log.deleted"),
                dir.path().join("00000000000000000000.index.deleted"),
            ]))
            .unwrap();
        sender
            .send(Work::Dir(dir.path().join("no-such-dir")))
            .unwrap();
        drop(sender);
        deleter.join().unwrap();
    }
}

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
//! One background thread per process does it all, taking turns across files, so that
//! partitions retiring segments at the same moment do not multiply the rate. A file's name is
//! unlinked as soon as it is handed over (it is already out of the log, renamed `.deleted`),
//! and the thread holds it open until no reader maps it any more (`mappings`), because
//! shrinking a mapped file would raise `SIGBUS` in the reader. A crash before then leaves nothing to clean: the kernel
//! frees an unlinked file when the process ends, and a `.deleted` name still present is
//! removed by the next open.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
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
            // Not yet unlinked here: a second link is someone else's copy, left whole.
            let linked_elsewhere = file.metadata().map_or(true, |m| m.nlink() > 1);
            if unmapped && !linked_elsewhere {
                shrink(&file, &path, pace);
            }
        }
    }
    Ok(())
}

/// A retired `.log` whose name is gone, held open until no reader maps it, then shrunk a step
/// at a time.
struct Held {
    file: File,
    id: FileId,
    path: PathBuf,
    /// Bytes left to free.
    len: u64,
}

/// A directory being emptied: its `.log` files are taken one at a time, when nothing else can
/// be shrunk, so that at most one of them is held for its own sake.
struct Emptying {
    dir: PathBuf,
    logs: Vec<PathBuf>,
}

/// Most retired files held open while a reader still maps them; past it, one more is closed at
/// once and freed whole when its last mapping goes, so that readers holding many segments (a
/// topic deleted while a fetch still has its snapshot) cannot use up the process's descriptors.
const MAX_HELD_MAPPED: usize = 256;

/// The deleter's loop. Each pass first takes whatever was handed over (so every name goes at
/// once, however long a shrink takes), then frees one step of one held file that nothing
/// maps, taking turns across files and pausing after it (so the pace is the process's, not
/// each file's); with none, takes the next log of a directory being emptied, or removes that
/// directory once it has none left. Ends when every sender is gone and nothing is left.
pub(crate) fn run(receiver: &Receiver<Work>, pace: Pace) {
    let mut held: VecDeque<Held> = VecDeque::new();
    let mut dirs: VecDeque<Emptying> = VecDeque::new();
    let mut waiting: Option<Work> = None;
    let mut senders_gone = false;
    loop {
        let mut arrived: Vec<Work> = waiting.take().into_iter().collect();
        if held.is_empty() && dirs.is_empty() && arrived.is_empty() {
            match receiver.recv() {
                Ok(work) => arrived.push(work),
                // Every sender is gone and nothing is left: the process is done with its logs.
                Err(_) => return,
            }
        }
        arrived.extend(std::iter::from_fn(|| receiver.try_recv().ok()));
        for work in arrived {
            match work {
                Work::Retired(paths) => {
                    for path in paths {
                        if let Some(h) = take(path) {
                            hold(&mut held, h);
                        }
                    }
                }
                Work::Dir(dir) => dirs.push_back(Emptying::of(dir)),
            }
        }
        if let Some(i) = held.iter().position(|h| live_mappings(h.id) == 0) {
            if let Some(mut h) = held.remove(i)
                && step(&mut h, pace)
            {
                held.push_back(h);
            }
            std::thread::sleep(pace.pause);
        } else if let Some(emptying) = dirs.front_mut() {
            match emptying.logs.pop() {
                Some(path) => {
                    if let Some(h) = take(path) {
                        hold(&mut held, h);
                    }
                }
                None => {
                    remove_dir_now(&emptying.dir);
                    dirs.pop_front();
                }
            }
        } else if !held.is_empty() {
            // Every held file is still mapped: look again later, or as soon as work comes.
            if senders_gone {
                std::thread::sleep(pace.recheck);
            } else {
                match receiver.recv_timeout(pace.recheck) {
                    Ok(work) => waiting = Some(work),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => senders_gone = true,
                }
            }
        }
    }
}

/// Keeps `h` to shrink, unless it is mapped and too many mapped files are held already.
fn hold(held: &mut VecDeque<Held>, h: Held) {
    let mapped = held.iter().filter(|h| live_mappings(h.id) > 0).count();
    if mapped >= MAX_HELD_MAPPED && live_mappings(h.id) > 0 {
        tracing::debug!(file = %h.path.display(), "too many retired segments still mapped; this one is freed whole when its readers let go");
        return;
    }
    held.push_back(h);
}

/// Frees one step of `h` from its end; false once nothing is left (or a shrink failed, and
/// the close that follows frees the rest at once: nothing of the log depends on it).
fn step(h: &mut Held, pace: Pace) -> bool {
    match shrink_step(&h.file, &h.path, h.len, pace) {
        Some(left) => {
            h.len = left;
            left > 0
        }
        None => false,
    }
}

/// Cuts one step off the end of `file`, `len` bytes long; the bytes left, or `None` when the
/// shrink failed (logged: the close that follows frees the rest at once).
fn shrink_step(file: &File, path: &Path, len: u64, pace: Pace) -> Option<u64> {
    let left = len.saturating_sub(pace.step_bytes.max(1));
    match file.set_len(left) {
        Ok(()) => Some(left),
        Err(err) => {
            tracing::warn!(file = %path.display(), %err, "could not shrink a retired segment; the rest is freed at once");
            None
        }
    }
}

impl Emptying {
    /// The `.log` files of `dir` to take; the rest of it goes with the directory.
    fn of(dir: PathBuf) -> Emptying {
        let logs = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| is_log(p))
                .collect(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => {
                tracing::warn!(dir = %dir.display(), %err, "could not list a deleted log directory; removing it at once");
                Vec::new()
            }
        };
        Emptying { dir, logs }
    }
}

/// Unlinks one retired file; for a segment's data file, first opens it, so that it can be
/// shrunk once no reader maps it. Index files (small, and mapped by readers too) are only
/// unlinked.
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
        // Another name still links the inode (a hard-linked backup of the data directory, say):
        // shrinking it would empty that copy too, and closing frees nothing anyway.
        Ok((file, _)) if other_links(&file) => None,
        Ok((file, id)) => match file.metadata() {
            Ok(meta) => Some(Held {
                file,
                id,
                path,
                len: meta.len(),
            }),
            Err(err) => {
                tracing::warn!(file = %path.display(), %err, "could not stat a retired segment; it is freed at once");
                None
            }
        },
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => {
            tracing::warn!(file = %path.display(), %err, "could not open a retired segment to shrink it; it is freed at once");
            None
        }
    }
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

/// True when a file this process has just unlinked still has a name somewhere (or cannot be
/// looked at): then it is not this process's to shrink.
fn other_links(file: &File) -> bool {
    file.metadata().map_or(true, |m| m.nlink() > 0)
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
        let Some(left) = shrink_step(file, path, len, pace) else {
            return;
        };
        len = left;
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

    /// A counted mapping of `file`, as a segment's readers hold.
    fn map_as_reader(file: &File) -> crate::segment::mappings::CountedMap {
        let id = FileId::of(file).unwrap();
        // SAFETY: a file the test owns; the point is that nobody shrinks it while mapped.
        map_counted(unsafe { MmapOptions::new().map(file) }.unwrap(), id)
    }

    /// A deleter of its own on a channel of its own.
    fn spawn_deleter(pace: Pace) -> (Sender<Work>, std::thread::JoinHandle<()>) {
        let (sender, receiver) = channel();
        (sender, std::thread::spawn(move || run(&receiver, pace)))
    }

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
        let map = map_as_reader(&watch);
        let reader = bytes::Bytes::from_owner(map);

        let (sender, deleter) = spawn_deleter(TEST_PACE);
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
        let map = map_as_reader(&watch_mapped);

        let (sender, deleter) = spawn_deleter(TEST_PACE);
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
        let map = map_as_reader(&watch_mapped);

        let (sender, deleter) = spawn_deleter(TEST_PACE);
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
    fn a_file_linked_elsewhere_is_only_unlinked() {
        let dir = tempfile::tempdir().unwrap();
        let log = retired_file(dir.path(), "00000000000000000000.log", 3 * 4096);
        let backup = dir.path().join("backup.log");
        std::fs::hard_link(&log, &backup).unwrap();
        let scratch = dir.path().join("scratch");
        std::fs::create_dir(&scratch).unwrap();
        std::fs::hard_link(&log, scratch.join("linked")).unwrap();

        let (sender, deleter) = spawn_deleter(TEST_PACE);
        sender.send(Work::Retired(vec![log.clone()])).unwrap();
        drop(sender);
        deleter.join().unwrap();
        assert!(!log.exists());
        remove_dir_paced_now(&scratch).unwrap();
        assert_eq!(std::fs::metadata(&backup).unwrap().len(), 3 * 4096);
    }

    #[test]
    fn a_long_shrink_holds_back_neither_names_nor_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir
            .path()
            .join(format!("00000000000000000000.log{RETIRED_SUFFIX}"));
        // Sparse: 256 MiB of length, no blocks; at 1 MiB per 5 ms it takes over 1.2 s to shrink.
        File::create(&big).unwrap().set_len(256 << 20).unwrap();
        let watch_big = File::open(&big).unwrap();
        let pace = Pace {
            step_bytes: 1 << 20,
            pause: Duration::from_millis(5),
            recheck: Duration::from_millis(5),
        };
        let (sender, deleter) = spawn_deleter(pace);
        sender.send(Work::Retired(vec![big])).unwrap();
        std::thread::sleep(Duration::from_millis(50));

        let small = retired_file(dir.path(), "00000000000000001000.log", 3 << 20);
        let index = retired_file(dir.path(), "00000000000000001000.index", 10);
        let watch_small = File::open(&small).unwrap();
        let start = Instant::now();
        sender
            .send(Work::Retired(vec![small.clone(), index.clone()]))
            .unwrap();
        wait_for("the names to go", || !small.exists() && !index.exists());
        wait_until_empty(&watch_small);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert!(
            watch_big.metadata().unwrap().len() > 0,
            "the big one is still being freed"
        );
        drop(sender);
        deleter.join().unwrap();
        assert_eq!(watch_big.metadata().unwrap().len(), 0);
    }

    #[test]
    fn a_file_already_gone_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let (sender, deleter) = spawn_deleter(TEST_PACE);
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

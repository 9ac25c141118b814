//! Stepped growth of active index files: an empty index costs a page, the file grows only as
//! entries need it, and a full disk while growing is an error (or a sparser index), never a
//! fault through the map.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use super::*;

const TEN_MIB: usize = 10 << 20;

fn blocks_bytes(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

fn entry(idx: usize) -> [u32; 2] {
    [idx as u32, (idx * 100) as u32]
}

#[test]
fn an_empty_active_index_reserves_one_page_not_its_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.index");
    let index = MmapIndex::open_active(&path, 2, TEN_MIB, 0).unwrap();
    assert_eq!(index.allocated_bytes(), MIN_GROWTH_BYTES);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        MIN_GROWTH_BYTES as u64
    );
    assert!(
        blocks_bytes(&path) <= 2 * MIN_GROWTH_BYTES as u64,
        "{}",
        blocks_bytes(&path)
    );
    assert!(!index.is_full());
}

#[test]
fn pushes_grow_the_file_in_steps_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.timeindex");
    // 12-byte entries: steps are whole entries, never a partial one.
    let index = MmapIndex::open_active(&path, 3, TEN_MIB, 0).unwrap();
    let mut sizes = vec![index.allocated_bytes()];
    for idx in 0..200_000usize {
        assert!(index.push(&[0, idx as u32, idx as u32]), "push {idx}");
        let allocated = index.allocated_bytes();
        let used = index.len() * 12;
        assert!(
            allocated >= used,
            "entry {idx} stored past the reserved room"
        );
        assert!(
            allocated
                <= (2 * used)
                    .max(used + MAX_GROWTH_BYTES)
                    .max(MIN_GROWTH_BYTES),
            "{allocated} reserved for {used} used"
        );
        assert_eq!(allocated % 12, 0, "the file is a whole number of entries");
        if sizes.last() != Some(&allocated) {
            sizes.push(allocated);
        }
    }
    assert_eq!(
        std::fs::metadata(&path).unwrap().len() as usize,
        index.allocated_bytes()
    );
    assert!(sizes.len() > 5, "grew in steps: {sizes:?}");
    for pair in sizes.windows(2) {
        assert!(pair[1] - pair[0] <= MAX_GROWTH_BYTES + 12, "{sizes:?}");
    }
    for idx in [0, 1, 4095, 199_999] {
        assert_eq!(index.word(idx, 2), idx as u32);
    }
}

#[test]
fn reserve_makes_room_ahead_and_stops_at_the_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.entryindex");
    let index = MmapIndex::open_active(&path, 4, 64 * 16, 0).unwrap();
    index.reserve(1000).unwrap();
    assert_eq!(index.allocated_bytes(), 64 * 16, "clamped to the capacity");
    for idx in 0..64 {
        assert!(index.push(&[0, idx, idx, idx]));
    }
    assert!(index.is_full());
    assert!(
        !index.push(&[0, 64, 64, 64]),
        "a full index refuses the push"
    );
}

#[test]
fn reopening_keeps_entries_and_what_follows_them_reads_as_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.index");
    {
        let index = MmapIndex::open_active(&path, 2, TEN_MIB, 0).unwrap();
        for idx in 0..100 {
            assert!(index.push(&entry(idx)));
        }
    }
    // Keep 40 of the 100 (as after a truncation): the 60 dropped must not linger in the file.
    let index = MmapIndex::open_active(&path, 2, TEN_MIB, 40).unwrap();
    assert_eq!(index.len(), 40);
    assert_eq!(index.word(39, 0), 39);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), index.allocated_bytes());
    assert!(
        bytes[40 * 8..].iter().all(|&b| b == 0),
        "stale entries after the kept ones"
    );
    index.trim_and_sync().unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 40 * 8);
    let sealed = MmapIndex::open_sealed(&path, 2).unwrap().unwrap();
    assert_eq!(sealed.len(), 40);
}

#[test]
fn a_file_preallocated_in_full_by_an_older_version_shrinks_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.index");
    let file = std::fs::File::create(&path).unwrap();
    reserve_range(&file, 0, TEN_MIB).unwrap();
    drop(file);
    let index = MmapIndex::open_active(&path, 2, TEN_MIB, 0).unwrap();
    assert_eq!(index.len(), 0);
    assert!(blocks_bytes(&path) <= 2 * MIN_GROWTH_BYTES as u64);
}

#[test]
fn a_push_after_trim_reserves_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.index");
    let index = MmapIndex::open_active(&path, 2, TEN_MIB, 0).unwrap();
    assert!(index.push(&entry(0)));
    index.trim_and_sync().unwrap();
    assert_eq!(index.allocated_bytes(), 8);
    assert!(index.push(&entry(1)));
    assert!(std::fs::metadata(&path).unwrap().len() >= 16);
}

/// A small tmpfs mounted for one test and unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status();
        match status {
            Ok(status) if status.success() => Some(SmallDisk { dir }),
            other => {
                eprintln!(
                    "SKIPPED: cannot mount a {size} tmpfs ({other:?}); the full-disk test needs root"
                );
                None
            }
        }
    }

    /// Fills the disk with a file until the OS says it is full.
    fn fill(&self) {
        let filler = std::fs::File::create(self.dir.path().join("filler")).unwrap();
        let mut len = 0u64;
        loop {
            match reserve_range(&filler, len as usize, len as usize + 4096) {
                Ok(()) => len += 4096,
                Err(err) => {
                    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
                    return;
                }
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_while_growing_is_an_error_not_a_fault() {
    let Some(disk) = SmallDisk::mount("1m") else {
        return;
    };
    let path = disk.dir.path().join("0.entryindex");
    let index = MmapIndex::open_active(&path, 4, TEN_MIB, 0).unwrap();
    disk.fill();
    let room = index.allocated_bytes() / 16;
    assert!(
        room > 0,
        "the first step was reserved before the disk filled"
    );
    for idx in 0..room {
        assert!(index.push(&[0, idx as u32, idx as u32, idx as u32]));
    }
    let err = index.reserve(1).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    // A push with no room leaves the entry out (the index is a cache) instead of storing into
    // an unbacked page, which would be SIGBUS.
    assert!(!index.push(&[0, 0, 0, 0]));
    assert_eq!(index.len(), room);
    assert_eq!(index.word(room - 1, 3), (room - 1) as u32);
    // Space freed: growth resumes. Under a loaded test run tmpfs may count the freed blocks a
    // moment late (CI saw ENOSPC here once, never alone), so it is retried briefly.
    std::fs::remove_file(disk.dir.path().join("filler")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while let Err(err) = index.reserve(1) {
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
        assert!(
            std::time::Instant::now() < deadline,
            "freed space never came back: {err}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(index.push(&[0, 9, 9, 9]));
}

#[test]
fn opening_on_a_full_disk_succeeds_and_reserving_reports_it() {
    let Some(disk) = SmallDisk::mount("1m") else {
        return;
    };
    disk.fill();
    let path = disk.dir.path().join("0.index");
    let index = MmapIndex::open_active(&path, 2, TEN_MIB, 0).unwrap();
    assert_eq!(index.allocated_bytes(), 0);
    let err = index.reserve(1).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    assert!(!index.push(&entry(0)));
    assert_eq!(index.len(), 0);
}

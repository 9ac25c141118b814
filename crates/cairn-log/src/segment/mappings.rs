//! Which segment files this process still maps. A reader's `Bytes` from a segment point into a
//! shared mapping of the file, and may outlive the segment (a fetch answer still being sent
//! when retention deletes it). Unlinking such a file is harmless: the kernel keeps the inode
//! until the last mapping goes. Shrinking it is not: a page past the new end raises `SIGBUS`
//! in whoever touches it. The paced deleter (`paced_delete`) shrinks retired files step by
//! step, so it must know when no mapping of the file is left; this registry counts them per
//! inode, and every segment mapping is made through [`map_counted`].

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::sync::{Mutex, OnceLock};

use memmap2::Mmap;

/// A file's identity for as long as some descriptor or mapping holds it open: device and inode.
/// An inode number is only reused once the file is freed, which the registry's own count (and
/// the deleter's open descriptor) prevents while it matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The identity of an open file.
    pub(crate) fn of(file: &File) -> std::io::Result<FileId> {
        let meta = file.metadata()?;
        Ok(FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

fn registry() -> &'static Mutex<HashMap<FileId, usize>> {
    static LIVE: OnceLock<Mutex<HashMap<FileId, usize>>> = OnceLock::new();
    LIVE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn with_registry<R>(f: impl FnOnce(&mut HashMap<FileId, usize>) -> R) -> R {
    // The map is only ever updated by whole insertions and removals; a panic elsewhere while
    // the lock was held cannot leave it torn.
    let mut live = registry().lock().unwrap_or_else(|e| e.into_inner());
    f(&mut live)
}

/// How many mappings made through [`map_counted`] of the file `id` are alive now.
pub(crate) fn live_mappings(id: FileId) -> usize {
    with_registry(|live| live.get(&id).copied().unwrap_or(0))
}

/// A mapping of a segment file that counts itself in the registry while it lives: the owner
/// behind every `Bytes` a segment hands out.
#[derive(Debug)]
pub(crate) struct CountedMap {
    map: Mmap,
    id: FileId,
}

/// Wraps `map` of the file `id` so that the registry counts it until it is dropped.
pub(crate) fn map_counted(map: Mmap, id: FileId) -> CountedMap {
    with_registry(|live| *live.entry(id).or_insert(0) += 1);
    CountedMap { map, id }
}

impl AsRef<[u8]> for CountedMap {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for CountedMap {
    fn drop(&mut self) {
        with_registry(|live| {
            if let Some(count) = live.get_mut(&self.id) {
                *count -= 1;
                if *count == 0 {
                    live.remove(&self.id);
                }
            }
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;
    use memmap2::MmapOptions;
    use std::io::Write;

    #[test]
    fn counts_each_mapping_until_it_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut file = File::create(&path).unwrap();
        file.write_all(&[7; 4096]).unwrap();
        let file = File::open(&path).unwrap();
        let id = FileId::of(&file).unwrap();
        assert_eq!(live_mappings(id), 0);
        // SAFETY: a file this test owns and does not change while mapped.
        let first = map_counted(unsafe { MmapOptions::new().map(&file) }.unwrap(), id);
        // SAFETY: as above.
        let second = map_counted(unsafe { MmapOptions::new().map(&file) }.unwrap(), id);
        assert_eq!(live_mappings(id), 2);
        let bytes = bytes::Bytes::from_owner(first);
        let slice = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(live_mappings(id), 2, "a slice keeps its mapping");
        drop(second);
        assert_eq!(live_mappings(id), 1);
        assert_eq!(&slice[..], &[7; 10]);
        drop(slice);
        assert_eq!(live_mappings(id), 0);
    }
}

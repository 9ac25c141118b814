//! A file of fixed-size entries, mmap'd, appended by one writer while readers binary-search it.
//! This is the machinery under `.index`, `.timeindex` and `.entryindex`; it knows nothing of
//! what the entries mean.
//!
//! Concurrency: entries are stored as big-endian 32-bit words and accessed through `AtomicU32`,
//! so a reader racing the writer never performs a data race. The writer stores an entry's words,
//! then publishes the new entry count with `Release`; readers load the count with `Acquire` and
//! read only entries below it.
//!
//! Disk space: an active index maps its whole capacity (`segment.index.bytes`) once, but the file
//! behind the map grows in steps, each reserved with `posix_fallocate` *before* the writer stores
//! into it. A store through a shared map into a hole of a full disk would be `SIGBUS`, not an
//! error; reserving first turns a full disk into an `ENOSPC` the writer can refuse a produce
//! with. The map never moves, so readers holding it are never disturbed by growth, and nobody
//! ever touches the mapped pages past the end of the file (they would fault too).
//!
//! An index is a cache of its `.log` file: recovery rebuilds it whenever it looks wrong, so it is
//! not fsynced on every append, only when its segment is sealed or the log is closed.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use crate::error::LogError;

const WORD_BYTES: usize = 4;

/// The first step an active index file grows by, and the smallest: one page, so an empty
/// segment's three indexes cost three pages of disk.
pub(crate) const MIN_GROWTH_BYTES: usize = 4096;
/// The largest step: growth doubles the file up to here, then adds this much at a time, so a
/// file is never more than one step (or twice its entries) larger than what it holds.
pub(crate) const MAX_GROWTH_BYTES: usize = 1 << 20;

/// An mmap'd index file of `words_per_entry` 32-bit words per entry.
#[derive(Debug)]
pub(crate) struct MmapIndex {
    path: PathBuf,
    file: File,
    map: Option<MmapRaw>,
    words_per_entry: usize,
    capacity_entries: usize,
    /// Entries the file's reserved blocks can hold. Only the writer changes it, and it never
    /// stores an entry at or past it.
    allocated_entries: AtomicUsize,
    entry_count: AtomicUsize,
}

impl MmapIndex {
    /// Opens `path` for appending, keeping its first `keep_entries` entries (clamped to what the
    /// file holds). The file is cut to those entries and then grown by one step, so what follows
    /// them reads as zeros; the map covers room for `max_bytes` of entries, but the file only
    /// ever grows as entries need it (see the module docs).
    ///
    /// A full disk at open is not an error: the index keeps only its kept entries' space and the
    /// writer's next [`MmapIndex::reserve`] reports the full disk, where a produce can be refused.
    ///
    /// # Errors
    /// Opening, sizing or mapping the file failed.
    pub(crate) fn open_active(
        path: &Path,
        words_per_entry: usize,
        max_bytes: usize,
        keep_entries: usize,
    ) -> Result<MmapIndex, LogError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|source| LogError::io("open index", path, source))?;
        let entry_bytes = words_per_entry * WORD_BYTES;
        let existing_entries = file_len(&file, path)? / entry_bytes;
        let capacity_entries = (max_bytes / entry_bytes).max(1);
        let entry_count = keep_entries.min(existing_entries).min(capacity_entries);
        // Cutting first drops stale entries (and the space of a file preallocated in full by an
        // older version), so an untrimmed file is always its entries followed by zeros.
        file.set_len((entry_count * entry_bytes) as u64)
            .map_err(|source| LogError::io("size index", path, source))?;
        // Mapping past the end of the file is allowed; the pages there are never touched.
        let map = MmapOptions::new()
            .len(capacity_entries * entry_bytes)
            .map_raw(&file)
            .map_err(|source| LogError::io("map index", path, source))?;
        let index = MmapIndex {
            path: path.to_path_buf(),
            file,
            map: Some(map),
            words_per_entry,
            capacity_entries,
            allocated_entries: AtomicUsize::new(entry_count),
            entry_count: AtomicUsize::new(entry_count),
        };
        if let Err(err) = index.reserve(1) {
            tracing::warn!(index = %path.display(), %err, "cannot reserve room for index entries; appends will be refused until space is freed");
        }
        Ok(index)
    }

    /// Opens a sealed segment's index read-only. Returns `None` when the file is missing or its
    /// size is not a whole number of entries: the caller rebuilds it.
    pub(crate) fn open_sealed(
        path: &Path,
        words_per_entry: usize,
    ) -> Result<Option<MmapIndex>, LogError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(LogError::io("open index", path, source)),
        };
        let len = file_len(&file, path)?;
        let entry_bytes = words_per_entry * WORD_BYTES;
        if len % entry_bytes != 0 {
            return Ok(None);
        }
        let map = if len == 0 {
            None
        } else {
            let map = MmapOptions::new()
                .len(len)
                .map_raw_read_only(&file)
                .map_err(|source| LogError::io("map index", path, source))?;
            Some(map)
        };
        Ok(Some(MmapIndex {
            path: path.to_path_buf(),
            file,
            map,
            words_per_entry,
            capacity_entries: len / entry_bytes,
            allocated_entries: AtomicUsize::new(len / entry_bytes),
            entry_count: AtomicUsize::new(len / entry_bytes),
        }))
    }

    /// Entries published so far.
    pub(crate) fn len(&self) -> usize {
        self.entry_count.load(Ordering::Acquire)
    }

    /// True when no more entries fit.
    pub(crate) fn is_full(&self) -> bool {
        self.len() >= self.capacity_entries
    }

    /// Reads word `word` of entry `entry_idx` (which must be below [`MmapIndex::len`]).
    pub(crate) fn word(&self, entry_idx: usize, word: usize) -> u32 {
        debug_assert!(word < self.words_per_entry);
        u32::from_be(
            self.atomic_word(entry_idx * self.words_per_entry + word)
                .load(Ordering::Relaxed),
        )
    }

    /// Makes sure the file has reserved disk blocks for `extra` more entries than it holds
    /// (clamped to the capacity: pushes past it fail anyway and roll the segment), growing it by
    /// a step if not. Only the segment's single writer calls this, before writing the batches
    /// those entries will point to, so a full disk refuses the write instead of faulting later.
    ///
    /// # Errors
    /// The OS error of `posix_fallocate` (`ENOSPC` on a full disk) or of extending the file;
    /// nothing changes then.
    pub(crate) fn reserve(&self, extra: usize) -> std::io::Result<()> {
        let needed = self.len().saturating_add(extra).min(self.capacity_entries);
        let allocated = self.allocated_entries.load(Ordering::Relaxed);
        if needed <= allocated {
            return Ok(());
        }
        let target = growth_target(allocated, needed, self.capacity_entries, self.entry_bytes());
        reserve_range(
            &self.file,
            allocated * self.entry_bytes(),
            target * self.entry_bytes(),
        )?;
        self.allocated_entries.store(target, Ordering::Relaxed);
        Ok(())
    }

    /// Appends an entry. Only the segment's single writer calls this. Returns `false` when the
    /// index is full (the caller rolls the segment) or when the disk has no room to grow it (the
    /// index just gets sparser: it is a cache, and the writer's next [`MmapIndex::reserve`]
    /// reports the full disk).
    pub(crate) fn push(&self, words: &[u32]) -> bool {
        debug_assert_eq!(words.len(), self.words_per_entry);
        let count = self.entry_count.load(Ordering::Relaxed);
        if count >= self.capacity_entries {
            return false;
        }
        if count >= self.allocated_entries.load(Ordering::Relaxed)
            && let Err(err) = self.reserve(1)
        {
            tracing::warn!(index = %self.path.display(), %err, "cannot grow an index file; leaving the entry out");
            return false;
        }
        // Never store past the reserved blocks: that page could be a hole of a full disk.
        assert!(
            count < self.allocated_entries.load(Ordering::Relaxed),
            "index entry {count} past the reserved room of {}",
            self.path.display()
        );
        for (idx, value) in words.iter().enumerate() {
            self.atomic_word(count * self.words_per_entry + idx)
                .store(value.to_be(), Ordering::Relaxed);
        }
        self.entry_count.store(count + 1, Ordering::Release);
        true
    }

    /// Forgets entries from `entry_count` on (after a log truncation).
    pub(crate) fn truncate_entries(&self, entry_count: usize) {
        let current = self.entry_count.load(Ordering::Relaxed);
        self.entry_count
            .store(entry_count.min(current), Ordering::Release);
    }

    /// Binary search: the last entry index `i < len` with `key(i) <= target`, assuming `key`
    /// is non-decreasing. `None` when every key is above `target` or the index is empty.
    pub(crate) fn floor(&self, target: u64, key: impl Fn(usize) -> u64) -> Option<usize> {
        let (mut low, mut high) = (0usize, self.len());
        while low < high {
            let mid = low + (high - low) / 2;
            if key(mid) <= target {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low.checked_sub(1)
    }

    /// Shrinks the file to the published entries and makes them durable, as when a segment is
    /// sealed or the log closes. Readers keep working: they never read past `len()`.
    pub(crate) fn trim_and_sync(&self) -> Result<(), LogError> {
        let bytes = self.len() * self.words_per_entry * WORD_BYTES;
        if let Some(map) = &self.map
            && bytes > 0
        {
            map.flush_range(0, bytes)
                .map_err(|source| LogError::io("flush index", &self.path, source))?;
        }
        self.file
            .set_len(bytes as u64)
            .map_err(|source| LogError::io("trim index", &self.path, source))?;
        // The blocks past the entries are gone: a later push must reserve them again.
        self.allocated_entries.store(self.len(), Ordering::Relaxed);
        self.file
            .sync_all()
            .map_err(|source| LogError::io("fsync index", &self.path, source))
    }

    fn entry_bytes(&self) -> usize {
        self.words_per_entry * WORD_BYTES
    }

    /// Bytes of disk the file has reserved (its length while active), for tests and sizing.
    #[cfg(test)]
    pub(crate) fn allocated_bytes(&self) -> usize {
        self.allocated_entries.load(Ordering::Relaxed) * self.entry_bytes()
    }

    fn atomic_word(&self, word_idx: usize) -> &AtomicU32 {
        let map = self.map.as_ref().expect("an index with entries is mapped");
        assert!(
            (word_idx + 1) * WORD_BYTES <= map.len(),
            "index word {word_idx} outside the map"
        );
        // SAFETY: the map is page-aligned and at least `(word_idx + 1) * 4` bytes long (asserted
        // above), so the pointer is in bounds and 4-byte aligned. The map lives as long as
        // `self`. All accesses to these bytes in this process go through `AtomicU32`, so
        // concurrent readers and the single writer never race.
        unsafe { &*(map.as_mut_ptr().add(word_idx * WORD_BYTES) as *const AtomicU32) }
    }
}

fn file_len(file: &File, path: &Path) -> Result<usize, LogError> {
    let len = file
        .metadata()
        .map_err(|source| LogError::io("stat index", path, source))?
        .len();
    usize::try_from(len).map_err(|_| {
        LogError::io(
            "stat index",
            path,
            std::io::Error::other("index file too large"),
        )
    })
}

/// How many entries to grow a file holding room for `allocated` to, when `needed` must fit: at
/// least `needed`, and otherwise by one step, which doubles the file from [`MIN_GROWTH_BYTES`]
/// up to steps of [`MAX_GROWTH_BYTES`]; never past `capacity`. Whole entries only, so an
/// untrimmed file is still a whole number of entries long.
fn growth_target(allocated: usize, needed: usize, capacity: usize, entry_bytes: usize) -> usize {
    let allocated_bytes = allocated * entry_bytes;
    let step_bytes = allocated_bytes.clamp(MIN_GROWTH_BYTES, MAX_GROWTH_BYTES);
    let target_bytes = (allocated_bytes + step_bytes).max(needed * entry_bytes);
    (target_bytes / entry_bytes).max(needed).min(capacity)
}

/// Reserves disk blocks for bytes `from..to` of `file`, extending it to `to`. On filesystems
/// without `fallocate` the file is extended sparse instead, as Kafka does.
fn reserve_range(file: &File, from: usize, to: usize) -> std::io::Result<()> {
    if to <= from {
        return Ok(());
    }
    let offset = libc::off_t::try_from(from).map_err(std::io::Error::other)?;
    let len = libc::off_t::try_from(to - from).map_err(std::io::Error::other)?;
    // SAFETY: a plain syscall on an fd we own; no memory is passed.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), offset, len) };
    match rc {
        0 => Ok(()),
        libc::EOPNOTSUPP | libc::EINVAL => file.set_len(to as u64),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

#[cfg(test)]
mod tests;

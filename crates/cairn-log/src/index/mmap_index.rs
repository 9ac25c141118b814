//! A file of fixed-size entries, mmap'd, appended by one writer while readers binary-search it.
//! This is the machinery under `.index`, `.timeindex` and `.entryindex`; it knows nothing of
//! what the entries mean.
//!
//! Concurrency: entries are stored as big-endian 32-bit words and accessed through `AtomicU32`,
//! so a reader racing the writer never performs a data race. The writer stores an entry's words,
//! then publishes the new entry count with `Release`; readers load the count with `Acquire` and
//! read only entries below it.
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

/// An mmap'd index file of `words_per_entry` 32-bit words per entry.
#[derive(Debug)]
pub(crate) struct MmapIndex {
    path: PathBuf,
    file: File,
    map: Option<MmapRaw>,
    words_per_entry: usize,
    capacity_entries: usize,
    entry_count: AtomicUsize,
}

impl MmapIndex {
    /// Opens `path` for appending, keeping its first `keep_entries` entries (clamped to what the
    /// file holds) and preallocating room for `max_bytes` so that a write through the map never
    /// lands in a hole of a full disk (which would be `SIGBUS`, not an error).
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
        let capacity_bytes = capacity_entries * entry_bytes;
        file.set_len(capacity_bytes as u64)
            .map_err(|source| LogError::io("size index", path, source))?;
        preallocate(&file, path, capacity_bytes)?;
        let map = MmapOptions::new()
            .len(capacity_bytes)
            .map_raw(&file)
            .map_err(|source| LogError::io("map index", path, source))?;
        let entry_count = keep_entries.min(existing_entries).min(capacity_entries);
        Ok(MmapIndex {
            path: path.to_path_buf(),
            file,
            map: Some(map),
            words_per_entry,
            capacity_entries,
            entry_count: AtomicUsize::new(entry_count),
        })
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

    /// Appends an entry. Only the segment's single writer calls this. Returns `false` when the
    /// index is full (the caller rolls the segment).
    pub(crate) fn push(&self, words: &[u32]) -> bool {
        debug_assert_eq!(words.len(), self.words_per_entry);
        let count = self.entry_count.load(Ordering::Relaxed);
        if count >= self.capacity_entries {
            return false;
        }
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
        self.file
            .sync_all()
            .map_err(|source| LogError::io("fsync index", &self.path, source))
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

/// Reserves disk blocks for the whole file, so the disk cannot fill under the map later.
pub(crate) fn preallocate(file: &File, path: &Path, bytes: usize) -> Result<(), LogError> {
    if bytes == 0 {
        return Ok(());
    }
    let len = libc::off_t::try_from(bytes).unwrap_or(libc::off_t::MAX);
    // SAFETY: a plain syscall on an fd we own; no memory is passed.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    match rc {
        0 => Ok(()),
        // Filesystems without fallocate: fall back to a sparse file, as Kafka does.
        libc::EOPNOTSUPP | libc::EINVAL => Ok(()),
        errno => Err(LogError::io(
            "preallocate index",
            path,
            std::io::Error::from_raw_os_error(errno),
        )),
    }
}

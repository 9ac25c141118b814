//! The writer's handle on one segment: the open `.log` file, its indexes, and the append state
//! (size, next offset, next entry, largest timestamp). Only the partition's single writer owns a
//! `Segment`; readers get [`SegmentView`]s.
//!
//! Appends are written with one `pwritev` per call at the data end, into space reserved ahead
//! with `fallocate` (`preallocation.rs`), and are not fsynced here: the log decides when to
//! `fdatasync` (the flush policy). So the active segment's file may be longer than its data;
//! sealing and truncating cut it back to exactly the data. Index entries are added only after
//! the bytes they point to have been written, and the indexes are fsynced only when the segment
//! is sealed or closed, because recovery can always rebuild them.

use std::fs::{File, OpenOptions};
use std::io::IoSlice;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use memmap2::MmapOptions;

use super::mappings::{FileId, map_counted};
use super::preallocation::{Preallocation, is_disk_full, write_all_vectored_at};
use super::view::SegmentView;
use super::{INDEX_EXTENSIONS, segment_path};
use crate::batch::{Batch, BatchHeader};
use crate::config::LogConfig;
use crate::error::LogError;
use crate::index::{EntryIndexFile, EntryPoint, OffsetIndex, TimeIndex};
use crate::types::{EntryIndex, FilePos, Offset, RelativeOffset};

/// The three index files of a segment.
#[derive(Debug)]
pub(crate) struct SegmentIndexes {
    pub(crate) offset: OffsetIndex,
    pub(crate) time: TimeIndex,
    pub(crate) entry: EntryIndexFile,
}

impl SegmentIndexes {
    pub(crate) fn open_active(
        dir: &Path,
        base: Offset,
        cfg: &LogConfig,
        keep: [usize; 3],
    ) -> Result<Self, LogError> {
        let max = cfg.segment_index_bytes as usize;
        Ok(SegmentIndexes {
            offset: OffsetIndex::open_active(&segment_path(dir, base, "index"), max, keep[0])?,
            time: TimeIndex::open_active(&segment_path(dir, base, "timeindex"), max, keep[1])?,
            entry: EntryIndexFile::open_active(
                &segment_path(dir, base, "entryindex"),
                max,
                keep[2],
            )?,
        })
    }

    pub(crate) fn is_full(&self) -> bool {
        self.offset.is_full() || self.time.is_full() || self.entry.is_full()
    }

    /// Reserves disk room in each index for `batch_count` more batches (each adds at most one
    /// entry to each), so that indexing batches already written can never fault on a full disk.
    ///
    /// # Errors
    /// The OS error (`ENOSPC` on a full disk); entries already reserved stay.
    pub(crate) fn reserve(&self, batch_count: usize) -> std::io::Result<()> {
        self.offset.reserve(batch_count)?;
        self.time.reserve(batch_count)?;
        self.entry.reserve(batch_count)
    }

    /// Fresh index files holding `old`'s entries, for a sealed segment that
    /// becomes active again. The old files are unlinked, not shrunk or regrown in place:
    /// readers of an older snapshot may still map them, and a later trim of a shared file could
    /// take pages out from under them (`SIGBUS`). Unlinked, the old inodes live as long as
    /// their maps.
    pub(crate) fn rewrite_active(
        dir: &Path,
        base: Offset,
        cfg: &LogConfig,
        old: &SegmentIndexes,
    ) -> Result<Self, LogError> {
        for extension in INDEX_EXTENSIONS {
            let path = segment_path(dir, base, extension);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(LogError::io("replace index", &path, e));
                }
                _ => {}
            }
        }
        let fresh = SegmentIndexes::open_active(dir, base, cfg, [0, 0, 0])?;
        // Pushes past a smaller capacity (a lowered segment.index.bytes) are dropped: the index
        // only gets sparser.
        for idx in 0..old.offset.len() {
            let (offset, position) = old.offset.entry(idx);
            let _ = fresh.offset.push(offset, position);
        }
        for idx in 0..old.time.len() {
            let (timestamp, offset) = old.time.entry(idx);
            let _ = fresh.time.maybe_push(timestamp, offset);
        }
        for idx in 0..old.entry.len() {
            let _ = fresh.entry.push(old.entry.entry(idx));
        }
        Ok(fresh)
    }

    pub(crate) fn lens(&self) -> [usize; 3] {
        [self.offset.len(), self.time.len(), self.entry.len()]
    }

    pub(crate) fn trim_and_sync(&self) -> Result<(), LogError> {
        self.offset.trim_and_sync()?;
        self.time.trim_and_sync()?;
        self.entry.trim_and_sync()
    }
}

/// Where the append state of a segment stands. Recovery computes it by walking; appends
/// advance it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentState {
    pub(crate) size: FilePos,
    pub(crate) next_offset: Offset,
    pub(crate) next_entry: EntryIndex,
    pub(crate) max_timestamp: i64,
    pub(crate) offset_of_max_timestamp: Offset,
    pub(crate) bytes_since_index: u32,
}

impl SegmentState {
    pub(crate) fn empty(base: Offset, base_entry: EntryIndex) -> SegmentState {
        SegmentState {
            size: FilePos(0),
            next_offset: base,
            next_entry: base_entry,
            max_timestamp: i64::MIN,
            offset_of_max_timestamp: base,
            bytes_since_index: 0,
        }
    }
}

/// The writer's handle on one segment.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: Offset,
    pub(crate) base_entry: EntryIndex,
    pub(crate) dir: PathBuf,
    pub(crate) log_path: Arc<PathBuf>,
    file: File,
    /// The space reserved behind the data end. `state.size` is the data end; the file may be
    /// longer (zeros reserved for the next appends) until the segment is sealed or truncated.
    space: Preallocation,
    data: Bytes,
    pub(crate) indexes: Arc<SegmentIndexes>,
    pub(crate) state: SegmentState,
    pub(crate) created_ms: i64,
    pub(crate) sealed: bool,
    /// True when the segment lies in the compacted prefix of the log (below the cleaner
    /// checkpoint's first dirty offset): gaps between its batches are allowed.
    pub(crate) compacted: bool,
}

impl Segment {
    /// Creates an empty active segment (replacing leftovers of a crashed roll at the same base).
    pub(crate) fn create(
        dir: &Path,
        base: Offset,
        base_entry: EntryIndex,
        cfg: &LogConfig,
        now_ms: i64,
    ) -> Result<Segment, LogError> {
        let log_path = segment_path(dir, base, "log");
        let file = open_for_write(&log_path)?;
        file.set_len(0)
            .map_err(|source| LogError::io("create segment", &log_path, source))?;
        let indexes = SegmentIndexes::open_active(dir, base, cfg, [0, 0, 0])?;
        Segment::assemble(
            dir,
            base,
            base_entry,
            file,
            indexes,
            SegmentState::empty(base, base_entry),
            cfg,
            now_ms,
        )
    }

    /// Builds a segment from an opened file and indexes whose state recovery has established.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn assemble(
        dir: &Path,
        base: Offset,
        base_entry: EntryIndex,
        file: File,
        indexes: SegmentIndexes,
        state: SegmentState,
        cfg: &LogConfig,
        now_ms: i64,
    ) -> Result<Segment, LogError> {
        let log_path = Arc::new(segment_path(dir, base, "log"));
        let data = map_log(&file, &log_path, active_map_bytes(cfg, state.size))?;
        let file_bytes = file_len(&file, &log_path)?;
        Ok(Segment {
            base_offset: base,
            base_entry,
            dir: dir.to_path_buf(),
            log_path,
            file,
            space: Preallocation::new(file_bytes),
            data,
            indexes: Arc::new(indexes),
            state,
            created_ms: now_ms,
            sealed: false,
            compacted: false,
        })
    }

    /// Builds a sealed segment handle (read-mostly) from opened parts.
    pub(crate) fn assemble_sealed(
        dir: &Path,
        base: Offset,
        base_entry: EntryIndex,
        file: File,
        data: Bytes,
        indexes: Arc<SegmentIndexes>,
        state: SegmentState,
    ) -> Segment {
        Segment {
            base_offset: base,
            base_entry,
            dir: dir.to_path_buf(),
            log_path: Arc::new(segment_path(dir, base, "log")),
            file,
            // A sealed segment's file was opened at its exact length, and is never written.
            space: Preallocation::new(state.size.as_u64()),
            data,
            indexes,
            state,
            created_ms: 0,
            sealed: true,
            compacted: false,
        }
    }

    /// True when the segment, with `pending_bytes` more written to it and its offsets reaching
    /// `pending_next_offset`, should be sealed before another batch (ending at `last_offset`) is
    /// added. A segment holding no offsets never rolls: the next segment would have the same
    /// base offset, and so the same file name.
    pub(crate) fn should_roll(
        &self,
        pending_bytes: usize,
        pending_next_offset: Offset,
        last_offset: Offset,
        cfg: &LogConfig,
        now_ms: i64,
    ) -> bool {
        if pending_next_offset == self.base_offset {
            return false;
        }
        let too_big = self.state.size.as_usize() + pending_bytes > cfg.segment_bytes as usize;
        let too_old = now_ms.saturating_sub(self.created_ms)
            >= i64::try_from(cfg.segment_ms).unwrap_or(i64::MAX);
        // Index entries hold offsets relative to the base in 32 bits; Kafka rolls at i32::MAX.
        let offsets_overflow = last_offset.0.saturating_sub(self.base_offset.0) > i32::MAX as u64;
        too_big || too_old || offsets_overflow || self.indexes.is_full()
    }

    /// Writes `batches` (with their assigned prefixes) at the data end in one `pwritev`, into
    /// space reserved ahead when the filesystem allows (`segments-format.md` §7.2), then indexes
    /// them. On error the file is cut back to the data end (giving back any reserved space), so
    /// a failed append leaves no partial batch; if even that fails the caller must poison the
    /// log.
    ///
    /// # Errors
    /// The write error, or the error reserving index room (`ENOSPC` on a full disk), with the
    /// state unchanged.
    pub(crate) fn write_batches(
        &mut self,
        batches: &[(&Batch, [u8; 16])],
        cfg: &LogConfig,
    ) -> Result<(), std::io::Error> {
        // A sealed segment's index files are trimmed while still mapped at full size: pushing
        // into them would write past the end of the file.
        assert!(
            !self.sealed,
            "append to sealed segment {}",
            self.log_path.display()
        );
        let old_size = self.state.size;
        // Room for the index entries first: once the batches are written they must be indexed,
        // and a full disk is refused here, before anything is written.
        if let Err(err) = self.indexes.reserve(batches.len()) {
            if !is_disk_full(&err) || self.space.file_bytes <= old_size.as_u64() {
                return Err(err);
            }
            // The log's own reserved space may be what the index step needs: give it back
            // and try once more, so a nearly full disk still takes what fits.
            self.file.set_len(old_size.as_u64())?;
            self.space.file_bytes = old_size.as_u64();
            self.indexes.reserve(batches.len())?;
        }
        let mut slices = Vec::with_capacity(batches.len() * 2);
        let mut total_bytes = 0u64;
        for (batch, prefix) in batches {
            slices.push(IoSlice::new(prefix));
            slices.push(IoSlice::new(&batch.bytes()[16..]));
            total_bytes += batch.len_bytes() as u64;
        }
        // Best effort: on a full disk or a filesystem without `fallocate` the write below
        // extends the file itself, and a full disk surfaces as its `ENOSPC`, as it always did.
        let cap_bytes = u64::from(cfg.segment_bytes) + u64::from(cfg.max_message_bytes);
        self.space.reserve_ahead(
            &self.file,
            &self.log_path,
            old_size.as_u64() + total_bytes,
            cap_bytes,
        );
        if let Err(err) = self.injected_write_fault(&slices).map_or_else(
            || write_all_vectored_at(&self.file, &mut slices, old_size.as_u64()),
            Err,
        ) {
            // Cut at the data end, not just the torn bytes: on a full disk the reserved space
            // is given back too.
            self.file.set_len(old_size.as_u64())?;
            self.space.file_bytes = old_size.as_u64();
            return Err(err);
        }
        let mut position = old_size;
        for (batch, prefix) in batches {
            let base =
                Offset::from_i64(i64::from_be_bytes(prefix[..8].try_into().expect("8 bytes")));
            let base = base.expect("the log assigns non-negative offsets");
            self.note_batch(
                batch.header(),
                base,
                position,
                batch.len_bytes() as u32,
                cfg,
            );
            position = FilePos(position.0 + batch.len_bytes() as u32);
        }
        Ok(())
    }

    /// Advances the state and indexes for one batch at `position` (used by appends and by index
    /// rebuilds, so both produce the same indexes). Kafka's rule: an index entry is added before
    /// a batch once more than `index.interval.bytes` have passed since the last one.
    pub(crate) fn note_batch(
        &mut self,
        header: &BatchHeader,
        base: Offset,
        position: FilePos,
        len: u32,
        cfg: &LogConfig,
    ) {
        let is_meta = crate::batch::is_meta_header(header);
        let offset_count = (i64::from(header.last_offset_delta) + 1).max(0) as u64;
        let last_offset = Offset(base.0 + offset_count.saturating_sub(1));
        if !is_meta && header.max_timestamp > self.state.max_timestamp {
            self.state.max_timestamp = header.max_timestamp;
            self.state.offset_of_max_timestamp = last_offset;
        }
        let due = position.0 == 0 || self.state.bytes_since_index > cfg.index_interval_bytes;
        // Appends keep offsets within 32 bits of the base (should_roll), and recovery bounds
        // what it accepts after damage; should damaged bytes still get here, the point is
        // skipped (the index only gets sparser) rather than the process panicking.
        let relative = (
            RelativeOffset::between(base, self.base_offset),
            RelativeOffset::between(last_offset, self.base_offset),
            RelativeOffset::between(self.state.offset_of_max_timestamp, self.base_offset),
        );
        if let (true, (Some(base_rel), Some(last_rel), Some(max_ts_rel))) = (due, relative) {
            let point = EntryPoint {
                entry: self.state.next_entry,
                relative_offset: base_rel,
                position,
            };
            let _ = self.indexes.entry.push(point);
            if !is_meta {
                let _ = self.indexes.offset.push(last_rel, position);
                let _ = self
                    .indexes
                    .time
                    .maybe_push(self.state.max_timestamp, max_ts_rel);
            }
            self.state.bytes_since_index = 0;
        }
        self.state.bytes_since_index = self.state.bytes_since_index.saturating_add(len);
        self.state.size = FilePos(position.0 + len);
        self.state.next_offset = base.plus(offset_count);
        self.state.next_entry = self.state.next_entry.plus(1);
    }

    /// Makes the written bytes durable (`fdatasync`).
    ///
    /// # Errors
    /// The fsync error. The caller must poison the log: the kernel may have dropped the dirty
    /// pages, so retrying could "succeed" over lost data.
    pub(crate) fn sync(&self) -> Result<(), std::io::Error> {
        let started = std::time::Instant::now();
        let result = self.sync_uncounted();
        crate::fsync_stats::fsync_latency().observe(started.elapsed(), result.is_err());
        result
    }

    fn sync_uncounted(&self) -> Result<(), std::io::Error> {
        #[cfg(feature = "fault-injection")]
        if let Some(err) = crate::fault::check(&self.log_path, crate::fault::FaultPoint::Sync) {
            return Err(err);
        }
        self.file.sync_data()
    }

    /// Under the `fault-injection` feature, an armed write fault: half of the first slice is
    /// written (a partial write, as a full disk produces) and then the error is returned.
    #[cfg(feature = "fault-injection")]
    fn injected_write_fault(&mut self, slices: &[IoSlice<'_>]) -> Option<std::io::Error> {
        use std::os::unix::fs::FileExt;
        let err = crate::fault::check(&self.log_path, crate::fault::FaultPoint::Write)?;
        if let Some(first) = slices.first() {
            let _ = self
                .file
                .write_at(&first[..first.len() / 2], self.state.size.as_u64());
        }
        Some(err)
    }

    #[cfg(not(feature = "fault-injection"))]
    fn injected_write_fault(&mut self, _slices: &[IoSlice<'_>]) -> Option<std::io::Error> {
        None
    }

    /// Seals the segment for a roll or a clean close: cuts the `.log` to its data end (the space
    /// reserved ahead goes, so a sealed or cleanly closed segment is exactly its batches), fsyncs
    /// it, trims and fsyncs the indexes. Readers are unaffected: they never read past the data
    /// end.
    pub(crate) fn seal(&mut self) -> Result<(), LogError> {
        self.file
            .set_len(self.state.size.as_u64())
            .map_err(|source| LogError::io("trim segment", &self.log_path, source))?;
        self.space.file_bytes = self.state.size.as_u64();
        // One fdatasync makes both the data and the new length durable.
        self.sync()
            .map_err(|source| LogError::io("fsync segment", &self.log_path, source))?;
        self.indexes.trim_and_sync()?;
        self.sealed = true;
        Ok(())
    }

    /// Cuts the file at `position` and the indexes with it, setting the state that recovery or
    /// the caller computed for the new end. Only the writer calls this, and only above the high
    /// watermark, so no reader holds bytes past the cut. Reserved space past the cut goes with
    /// it, and the next append reserves fresh (zeroed) space from there, so no byte of the cut
    /// data can reappear past the data end.
    pub(crate) fn truncate(&mut self, state: SegmentState) -> Result<(), LogError> {
        let position = state.size;
        self.file
            .set_len(position.as_u64())
            .map_err(|source| LogError::io("truncate segment", &self.log_path, source))?;
        self.space.file_bytes = position.as_u64();
        // From here the file is shorter: the state must say so even if the fsync below fails,
        // or a later walk would read past the end of the file.
        self.indexes.offset.truncate_from_position(position);
        self.indexes.entry.truncate_from_position(position);
        let time_cut =
            RelativeOffset::between(state.next_offset, self.base_offset).unwrap_or_default();
        self.indexes.time.truncate_from_offset(time_cut);
        self.state = state;
        self.sync()
            .map_err(|source| LogError::io("fsync truncated segment", &self.log_path, source))
    }

    /// Reopens the indexes of a sealed segment for appending (after truncation made it the
    /// active segment again) and remaps the log with room to grow.
    pub(crate) fn reactivate(&mut self, cfg: &LogConfig, now_ms: i64) -> Result<(), LogError> {
        self.indexes = Arc::new(SegmentIndexes::rewrite_active(
            &self.dir,
            self.base_offset,
            cfg,
            &self.indexes,
        )?);
        self.file = open_for_write(&self.log_path)?;
        self.space = Preallocation::new(file_len(&self.file, &self.log_path)?);
        self.data = map_log(
            &self.file,
            &self.log_path,
            active_map_bytes(cfg, self.state.size),
        )?;
        self.sealed = false;
        self.created_ms = now_ms;
        Ok(())
    }

    /// Remaps the file if appends have outgrown the current mapping.
    pub(crate) fn ensure_mapped(&mut self, cfg: &LogConfig) -> Result<bool, LogError> {
        if self.state.size.as_usize() <= self.data.len() {
            return Ok(false);
        }
        self.data = map_log(
            &self.file,
            &self.log_path,
            active_map_bytes(cfg, self.state.size),
        )?;
        Ok(true)
    }

    /// The mapped bytes up to `end`, for recovery, which reads a file before its state says how
    /// much of it is valid. `end` must not pass the end of the file.
    pub(crate) fn data_upto(&self, end: FilePos) -> Bytes {
        self.data.slice(..end.as_usize().min(self.data.len()))
    }

    /// A reader's view of this segment as it is now.
    pub(crate) fn view(&self) -> SegmentView {
        SegmentView {
            base_offset: self.base_offset,
            base_entry: self.base_entry,
            log_path: Arc::clone(&self.log_path),
            // Readers of the active segment stop at the published visible end; a sealed
            // segment's view is cut to its size so no reader can step past the file.
            data: if self.sealed {
                self.data()
            } else {
                self.data.clone()
            },
            indexes: Arc::clone(&self.indexes),
            sealed_bytes: self.sealed.then_some(self.state.size),
            max_timestamp: self.sealed.then_some(self.state.max_timestamp),
            compacted: self.compacted,
        }
    }

    /// The written bytes of the segment, as a zero-copy slice of the mapping. Never the whole
    /// mapping: for the active segment it extends past the end of the file, and touching those
    /// pages is `SIGBUS`.
    pub(crate) fn data(&self) -> Bytes {
        self.data
            .slice(..self.state.size.as_usize().min(self.data.len()))
    }
}

/// Opens (creating if needed) a segment file for positional writes. Not `O_APPEND`: the file
/// may run past the data end (space reserved ahead), and appends go at the data end, which only
/// the writer's state knows (`SegmentState::size`).
pub(crate) fn open_for_write(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|source| LogError::io("open segment", path, source))
}

/// The file's length now.
fn file_len(file: &File, path: &Path) -> Result<u64, LogError> {
    file.metadata()
        .map(|meta| meta.len())
        .map_err(|source| LogError::io("stat segment", path, source))
}

/// How much of the file to map for the active segment: room for a full segment plus one
/// maximal batch, so that appends rarely force a remap. Mapping past the end of the file is
/// allowed; those pages are never touched because readers stop at the visible end.
fn active_map_bytes(cfg: &LogConfig, size: FilePos) -> usize {
    let wanted = (cfg.segment_bytes as usize + cfg.max_message_bytes as usize).max(size.as_usize());
    wanted.next_multiple_of(4096)
}

/// Maps `len` bytes of a segment file read-only as `Bytes` (zero-copy slices for readers).
pub(crate) fn map_log(file: &File, path: &Path, len: usize) -> Result<Bytes, LogError> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: segment files are only ever appended to or truncated above the high watermark by
    // this process's single writer, and readers never touch bytes beyond what has been written
    // and published, so no mapped byte a reader uses changes or disappears underneath it.
    let map = unsafe { MmapOptions::new().len(len).map(file) }
        .map_err(|source| LogError::io("map segment", path, source))?;
    // Counted, so that the paced deleter never shrinks a retired file a reader still maps.
    let id = FileId::of(file).map_err(|source| LogError::io("stat segment", path, source))?;
    Ok(Bytes::from_owner(map_counted(map, id)))
}

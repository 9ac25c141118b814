//! `cairn-log`: one partition's log on disk. No network, no topics by name, no cluster.
//!
//! Code map:
//! - [`batch`]: Kafka RecordBatch v2 byte for byte (header, records, compression, CRC-32C),
//!   and Cairn's meta entries (batches that take no offset). Re-exported from `cairn-codec`,
//!   which the client shares, so what a client encodes is exactly what this log validates.
//! - `index`: the mmap'd sparse index files of a segment (`.index`, `.timeindex`,
//!   `.entryindex`). They are caches: recovery rebuilds them from the `.log`.
//! - `segment`: one `<base offset>.log` file and its indexes; appending, sealing, scanning.
//! - [`Log`]: a partition directory: the segment list, appends, reads, roll, truncation,
//!   retention, recovery. Owned by one writer; readers use [`LogReader`] and never take the
//!   writer's lock.
//! - `entry_reader`: reads by entry index (the Raft log index) up to the log end, uncommitted
//!   entries included, for replication ([`LogReader::read_entries`]).
//! - `repair`: damaged entries by entry index ([`LogReader::damaged_entries`]) and their
//!   rewrite in place with a peer's good copies ([`Log::repair_entries`]), for a Raft replica
//!   that heals; it checks the copies fill the damaged span exactly and never truncates.
//! - `clean`: compaction (`cleanup.policy=compact`): a cleaner that keeps each key's newest
//!   record in sealed segments, planned and swapped in on the writer's thread, run off it.
//! - [`LogWriter`]: the group-commit driver: one thread per partition that gathers concurrent
//!   appends into one write and one `fdatasync`, under a named [`FlushPolicy`].
//! - [`fsync_latency`]: the process-wide histogram of segment `fdatasync` durations, in
//!   atomics, for the server's `/metrics`.
//!
//! Invariants across modules:
//! - `cairn-log` never reads the wall clock: callers pass timestamps, and the writer takes a
//!   [`Clock`]. (The writer measures `interval:<ms>` flush deadlines on the monotonic clock.)
//! - Offsets are assigned only by the log; an entry's base offset is the previous entry's next
//!   offset, so it is a pure function of the log's content. The one exception is compaction:
//!   inside a segment below the cleaner checkpoint, batches it dropped leave gaps (a kept
//!   batch's base offset is then above the previous one's next offset), but every segment still
//!   starts at its base offset and ends at the next segment's, and kept offsets never move.
//! - Nothing past the high watermark is readable by offset, and nothing at or below it is ever
//!   truncated, so a reader's zero-copy slice of a mapped segment never outlives its bytes.
//!   Reads by entry index go further (a Raft leader ships uncommitted entries): what lies past
//!   the visible end is copied under a lock that truncation and reset take, never sliced.
//! - A failed write or fsync poisons the log: it takes no more appends and acknowledges nothing.
//! - A segment's data ends where its state says, not where its file does: the active segment's
//!   `.log` is reserved ahead with `fallocate` (zeros past the data, so an append's `fdatasync`
//!   rarely changes the inode's size), and is cut back to its data when sealed, closed cleanly
//!   or truncated. Recovery takes zeros where a batch header should start for the end.
//!
//! The on-disk format is specified in `segments-format.md` at the repository root.
//!
//! ```
//! use cairn_log::batch::{Batch, BatchBuilder, Compression, RecordInput};
//! use cairn_log::{LeaderEpoch, Log, LogConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let mut log = Log::open(dir.path(), LogConfig::default(), 0)?;
//! let mut builder = BatchBuilder::new(Compression::Lz4);
//! let record = RecordInput { key: Some(b"order-1"), value: Some(b"created"), headers: &[], timestamp_ms: 0 };
//! builder.push(&record)?;
//! let batch = Batch::validate(builder.build()?)?;
//! let placed = log.append(&[batch], Some(LeaderEpoch(0)), 0)?; // fsynced: flush.policy=always
//! let read = log.reader().read(placed[0].base_offset.as_i64(), 1 << 20)?;
//! let records = read.batches().next().expect("one batch").records(1 << 20)?;
//! let first = records.iter().next().expect("one record")?;
//! assert_eq!(first.value, Some(&b"created"[..]));
//! # Ok(())
//! # }
//! ```

mod admission;
pub use cairn_codec::batch;
mod checkpoint;
mod clean;
mod clock;
mod config;
mod dir_removal;
mod entry_reader;
mod error;
#[cfg(feature = "fault-injection")]
pub mod fault;
mod fsync_stats;
mod index;
mod log;
mod reader;
mod recovery;
mod repair;
mod sealed_file;
mod segment;
mod types;
mod writer;

pub use admission::{Admission, AppendFilter};
pub use clean::{CleanJob, CleanOutcome, CleanedSegments, CleanerStats, MAX_KEY_MAP_BYTES};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    DirtyRatio, FlushPolicy, LogConfig, MAX_SEGMENT_BYTES, MAX_SEGMENT_INDEX_BYTES,
    MIN_SEGMENT_BYTES, MIN_SEGMENT_INDEX_BYTES,
};
pub use dir_removal::{
    DELETING_DIR_SUFFIX, is_held_by_an_open_log, is_log_dir_being_deleted, remove_log_dir,
    remove_scratch_dir, resume_log_dir_removals,
};
pub use entry_reader::{EntryHeader, LogEntry};
pub use error::LogError;
pub use fsync_stats::{FSYNC_BUCKET_UPPER_NANOS, FsyncLatency, FsyncSnapshot, fsync_latency};
pub use index::{ENTRY_INDEX_ENTRY_BYTES, OFFSET_INDEX_ENTRY_BYTES, TIME_INDEX_ENTRY_BYTES};
pub use log::{AppendInfo, Log, RetentionOutcome};
pub use reader::{DamagedRange, LogReader, ReadResult};
pub use repair::DamagedEntries;
pub use sealed_file::{SealedFileError, SealedFormat, read_sealed, write_sealed};
pub use types::{EntryIndex, FilePos, LeaderEpoch, Offset, RelativeOffset};
pub use writer::{
    LogWriter, MAX_GROUP_BYTES, MAX_GROUP_REQUESTS, RETENTION_CHECK_INTERVAL, WRITER_QUEUE_DEPTH,
    WriterOptions, WrittenAppend,
};

//! Helpers for the crash and corruption tests: a seeded RNG, a model of what was appended (each
//! batch's bytes exactly as the log stores them, with its assigned offsets), where each batch
//! sits in which segment file, copies of a log directory to damage, and read checks that compare
//! every served byte with the model. It also builds the logs those tests damage (under
//! `flush.policy = os`, see [`config`]) and shuts them down as a crash or a clean close would.
//!
//! The one rule the checks carry: a read may fail, but whatever it serves must be whole stored
//! batches, byte for byte, starting with the batch the read asked for.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use cairn_log::batch::{Batch, BatchHeader, encode_meta_entry, rewrite_assigned_fields};
use cairn_log::{
    EntryIndex, FlushPolicy, LeaderEpoch, Log, LogConfig, LogError, LogReader, Offset, ReadResult,
};

use super::{batch, small_config};

/// The leader epoch every test batch is appended under.
pub const EPOCH: LeaderEpoch = LeaderEpoch(3);

/// Name of the clean-shutdown marker `Log::close` writes.
pub const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown.checkpoint";
/// Name of the log start checkpoint.
pub const LOG_START_FILE: &str = "log-start.checkpoint";

/// xorshift64*: deterministic and dependency-free, so a failing trial replays from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // Mix the seed so nearby seeds give unrelated streams; xorshift needs a non-zero state.
        Rng((seed ^ 0x9E37_79B9_7F4A_7C15).wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..bound` (`bound > 0`).
    pub fn below(&mut self, bound: usize) -> usize {
        assert!(bound > 0, "empty range");
        (self.next_u64() % bound as u64) as usize
    }

    /// A byte that changes whatever it is XORed into.
    pub fn nonzero_byte(&mut self) -> u8 {
        1 + self.below(255) as u8
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// Runs many cases of one test and fails once at the end, listing every case that failed and
/// why, so that one run shows the whole picture (a seed, a cut length, a kind of damage) rather
/// than only the first failure.
#[derive(Default)]
pub struct Cases {
    count: usize,
    failures: Vec<String>,
}

impl Cases {
    /// Runs one case named `name`; a panic inside it is recorded, not propagated.
    pub fn run(&mut self, name: &str, body: impl FnOnce()) {
        self.count += 1;
        if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("(panic without a message)");
            self.failures.push(format!("{name}: {message}"));
        }
    }

    /// Fails if any case failed, listing the first few.
    pub fn finish(self) {
        const SHOWN: usize = 12;
        let mut listed: Vec<&str> = self
            .failures
            .iter()
            .take(SHOWN)
            .map(String::as_str)
            .collect();
        let more = format!("... and {} more", self.failures.len().saturating_sub(SHOWN));
        if self.failures.len() > SHOWN {
            listed.push(&more);
        }
        assert!(
            self.failures.is_empty(),
            "{} of {} cases failed:\n{}",
            self.failures.len(),
            self.count,
            listed.join("\n---\n")
        );
    }
}

/// One appended batch as the log stores it.
#[derive(Clone, Debug)]
pub struct Stored {
    pub base: Offset,
    pub next: Offset,
    pub entry: EntryIndex,
    /// The whole batch with its assigned base offset and leader epoch.
    pub bytes: Bytes,
    pub timestamp_ms: i64,
    pub meta: bool,
}

impl Stored {
    /// True when `offset` is one of this batch's records.
    pub fn holds(&self, offset: Offset) -> bool {
        !self.meta && self.base <= offset && offset < self.next
    }

    /// True for a data batch that a read from `from` wants: it ends after `from`.
    pub fn wanted_from(&self, from: Offset) -> bool {
        !self.meta && self.next > from
    }
}

/// Appends `batch` alone under [`EPOCH`] and records it in `model`. Returns its base offset.
pub fn append_stored(log: &mut Log, model: &mut Vec<Stored>, batch: &Batch) -> Offset {
    let infos = log
        .append(std::slice::from_ref(batch), Some(EPOCH), 0)
        .unwrap();
    let info = infos[0];
    let mut bytes = batch.bytes().to_vec();
    assert!(rewrite_assigned_fields(
        &mut bytes,
        info.base_offset,
        info.leader_epoch
    ));
    model.push(Stored {
        base: info.base_offset,
        next: info.next_offset,
        entry: info.entry,
        bytes: Bytes::from(bytes),
        timestamp_ms: batch.header().max_timestamp,
        meta: batch.is_meta(),
    });
    info.base_offset
}

/// Appends a data batch built by [`super::batch`].
pub fn append_data(
    log: &mut Log,
    model: &mut Vec<Stored>,
    tag: u64,
    count: usize,
    value_bytes: usize,
    timestamp_ms: i64,
) -> Offset {
    append_stored(log, model, &batch(tag, count, value_bytes, timestamp_ms))
}

/// Appends a meta entry (a batch that takes an entry index but no offset).
pub fn append_meta(log: &mut Log, model: &mut Vec<Stored>) -> Offset {
    let meta = Batch::validate(encode_meta_entry(b"noop", 0).unwrap()).unwrap();
    append_stored(log, model, &meta)
}

/// The log end offset the model implies (all test logs start at offset 0).
pub fn model_end(model: &[Stored]) -> Offset {
    model.last().map_or(Offset(0), |s| s.next)
}

/// `small_config` (4 KiB segments, an index point every 256 bytes) without per-append fsync.
///
/// Under `flush.policy = os`, dropping a `Log` without `close` models a process crash, after
/// which the page cache still holds every write, and skipping the per-append fsync keeps the
/// tests fast. What a power loss can do to the files is modelled by cutting and damaging them
/// directly.
pub fn config() -> LogConfig {
    LogConfig {
        flush_policy: FlushPolicy::Os,
        ..small_config()
    }
}

/// Segments that roll only when the test says so, with dense index points.
pub fn roll_by_hand_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        segment_index_bytes: 4096,
        ..config()
    }
}

/// How a built log was left before the damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// Dropped without `close`: no clean-shutdown marker.
    Crash,
    /// Closed, so the marker vouches for the active segment as it was at close.
    Clean,
    /// Closed, then the marker removed: a crash after a clean close's data was durable.
    CleanMarkerDeleted,
}

/// Leaves `log` in `dir` as `shutdown` says.
pub fn shut(log: Log, dir: &Path, shutdown: Shutdown) {
    match shutdown {
        Shutdown::Crash => drop(log),
        Shutdown::Clean => log.close().unwrap(),
        Shutdown::CleanMarkerDeleted => {
            log.close().unwrap();
            fs::remove_file(dir.join(CLEAN_SHUTDOWN_FILE)).unwrap();
        }
    }
}

/// Appends data batches of varied sizes until the log has `segment_count` segments, then
/// `extra` more, which must stay in the active segment.
pub fn fill(
    log: &mut Log,
    model: &mut Vec<Stored>,
    segment_count: usize,
    extra: usize,
    timestamp_of: impl Fn(u64) -> i64,
) {
    let mut tag = model.len() as u64;
    let mut push = |log: &mut Log, model: &mut Vec<Stored>| {
        let (count, value_bytes) = (1 + (tag % 4) as usize, 8 + (tag * 13 % 50) as usize);
        append_data(log, model, tag, count, value_bytes, timestamp_of(tag));
        tag += 1;
    };
    while log.segment_count() < segment_count {
        push(log, model);
    }
    for _ in 0..extra {
        push(log, model);
    }
    assert_eq!(
        log.segment_count(),
        segment_count,
        "the extra batches must stay in the active segment"
    );
}

/// Builds a log in `dir` with `segment_count` segments of `batches_per_segment` batches each,
/// rolled by hand. The second batch of segment `s` has timestamp `1_000_000 + 1000 * s`; every
/// other batch `1000 + 10 * tag`. So each segment's largest timestamp sits early in it, far
/// from its last index point: a time index that lost entries shows in timestamp lookups.
pub fn rolled_log(
    dir: &Path,
    segment_count: usize,
    batches_per_segment: usize,
) -> (Log, Vec<Stored>) {
    let mut log = Log::open(dir, roll_by_hand_config(), 0).unwrap();
    let mut model = Vec::new();
    for segment in 0..segment_count {
        if segment > 0 {
            log.roll(0).unwrap();
        }
        for idx in 0..batches_per_segment {
            let tag = model.len() as u64;
            let timestamp_ms = if idx == 1 {
                1_000_000 + 1000 * segment as i64
            } else {
                1000 + 10 * tag as i64
            };
            let (count, value_bytes) = (1 + (tag % 4) as usize, 8 + (tag * 13 % 50) as usize);
            append_data(&mut log, &mut model, tag, count, value_bytes, timestamp_ms);
        }
    }
    assert_eq!(log.segment_count(), segment_count);
    (log, model)
}

/// Where one model batch sits in its segment file.
#[derive(Clone, Copy, Debug)]
pub struct Placed {
    /// Index into the model.
    pub idx: usize,
    pub position: usize,
    pub len: usize,
}

impl Placed {
    pub fn end(&self) -> usize {
        self.position + self.len
    }
}

/// One `.log` file of a directory and the model batches in it, in order.
#[derive(Clone, Debug)]
pub struct SegmentFile {
    pub base: Offset,
    pub name: String,
    /// Where the data ends: after a crash the active segment's file runs on in reserved zeros.
    pub size: usize,
    pub batches: Vec<Placed>,
}

impl SegmentFile {
    /// This segment's `.log` file in (a copy of) the directory `dir`.
    pub fn path_in(&self, dir: &Path) -> PathBuf {
        dir.join(&self.name)
    }

    /// The path of one of this segment's files with another extension (`index`, ...).
    pub fn sibling_in(&self, dir: &Path, extension: &str) -> PathBuf {
        dir.join(format!("{:020}.{extension}", self.base.0))
    }
}

/// The `.log` files of `dir` in base offset order.
pub fn log_files(dir: &Path) -> Vec<(Offset, String)> {
    let mut files: Vec<(Offset, String)> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter_map(|name| {
            let digits = name.strip_suffix(".log")?;
            let base = digits.parse().ok()?;
            (digits.len() == 20).then_some((Offset(base), name))
        })
        .collect();
    files.sort();
    files
}

/// Finds every model batch in the segment files of `dir`, checking that the files hold exactly
/// the model's bytes, in order.
pub fn layout(dir: &Path, model: &[Stored]) -> Vec<SegmentFile> {
    let mut idx = 0;
    let mut segments = Vec::new();
    let files = log_files(dir);
    let last = files.len().saturating_sub(1);
    for (file_idx, (base, name)) in files.into_iter().enumerate() {
        let mut bytes = fs::read(dir.join(&name)).unwrap();
        if file_idx == last {
            // After a crash the active segment may end in zeros reserved ahead of its data
            // (`segments-format.md` §7.2); the data ends where they start.
            let data_end = zero_tail_start(&bytes, model[idx..].iter().map(|s| s.bytes.len()));
            bytes.truncate(data_end);
        }
        let mut batches = Vec::new();
        let mut position = 0;
        while position < bytes.len() {
            let stored = &model[idx];
            let end = position + stored.bytes.len();
            assert_eq!(
                &bytes[position..end],
                &stored.bytes[..],
                "{name} at {position} does not hold model batch {idx}"
            );
            batches.push(Placed {
                idx,
                position,
                len: stored.bytes.len(),
            });
            position = end;
            idx += 1;
        }
        segments.push(SegmentFile {
            base,
            name,
            size: bytes.len(),
            batches,
        });
    }
    assert_eq!(
        idx,
        model.len(),
        "the segment files hold fewer batches than the model"
    );
    segments
}

/// Where the batches of lengths `lens` (the model's, from this file's first batch) stop and
/// only zeros follow: the data end of a crashed active segment whose file was preallocated.
fn zero_tail_start(bytes: &[u8], lens: impl Iterator<Item = usize>) -> usize {
    let mut position = 0;
    for len in lens {
        if position >= bytes.len() || bytes[position..].iter().all(|&b| b == 0) {
            return position;
        }
        position += len;
    }
    position.min(bytes.len())
}

/// A fresh temporary copy of the (flat) directory `from`.
pub fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.path().join(entry.file_name())).unwrap();
    }
    to
}

/// Every file of `dir` by name, with its contents.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            (name, fs::read(entry.path()).unwrap())
        })
        .collect()
}

/// Asserts that `path` still holds exactly `expected`, describing a difference rather than
/// printing kilobytes of bytes.
pub fn assert_unchanged(path: &Path, expected: &[u8], what: &str) {
    let actual = fs::read(path).unwrap();
    let first_difference = actual.iter().zip(expected).position(|(a, b)| a != b);
    assert!(
        actual == expected,
        "{what}: {} is now {} bytes (was {}); first differing byte: {first_difference:?}",
        path.display(),
        actual.len(),
        expected.len()
    );
}

/// XORs `mask` into the byte at `position` of `path`.
pub fn flip_byte(path: &Path, position: usize, mask: u8) {
    let mut bytes = fs::read(path).unwrap();
    bytes[position] ^= mask;
    fs::write(path, bytes).unwrap();
}

/// Cuts (or extends with zeros) the file `path` to `len` bytes.
pub fn truncate_file(path: &Path, len: usize) {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len as u64)
        .unwrap();
}

/// Checks what a read from `from` served against the model and returns the indexes of the
/// batches it served: whole stored batches, byte for byte, a contiguous run starting with the
/// first data batch that ends after `from` (or with meta entries at or after `from` just before
/// it, which a reader may include), and a `next_offset` just after the last one.
pub fn served(result: &ReadResult, from: Offset, model: &[Stored]) -> Vec<usize> {
    if result.data.is_empty() {
        assert_eq!(result.next_offset, from, "an empty read from {from} moved");
        return Vec::new();
    }
    let wanted = model
        .iter()
        .position(|s| s.wanted_from(from))
        .unwrap_or_else(|| panic!("read from {from} served data, but the model has none there"));
    let mut first = wanted;
    while first > 0
        && model[first - 1].meta
        && model[first - 1].base >= from
        && !result.data.starts_with(&model[first].bytes)
    {
        first -= 1;
    }
    let mut idxs = Vec::new();
    let mut position = 0;
    while position < result.data.len() {
        let idx = first + idxs.len();
        let stored = model
            .get(idx)
            .unwrap_or_else(|| panic!("read from {from} served bytes past the last batch"));
        let end = position + stored.bytes.len();
        assert!(
            end <= result.data.len() && result.data[position..end] == stored.bytes[..],
            "read from {from} served bytes at {position} that are not batch {idx} (base offset {}) as appended; served: {}",
            stored.base,
            describe(&result.data[position..])
        );
        idxs.push(idx);
        position = end;
    }
    let last = &model[first + idxs.len() - 1];
    assert_eq!(
        result.next_offset, last.next,
        "next offset of a read from {from}"
    );
    idxs
}

/// The header fields of the batch at the front of `bytes` that tell batches apart, for messages.
fn describe(bytes: &[u8]) -> String {
    match BatchHeader::parse(bytes) {
        Ok(h) => format!(
            "base offset {}, length {}, last offset delta {}, max timestamp {}, {} bytes in the read",
            h.base_offset,
            h.batch_length,
            h.last_offset_delta,
            h.max_timestamp,
            bytes.len()
        ),
        Err(err) => format!("{} unparseable bytes ({err})", bytes.len()),
    }
}

/// The outcome of one read, already checked against the model.
#[derive(Debug)]
pub enum Outcome {
    /// The read served these model batches (checked byte for byte).
    Served(Vec<usize>),
    /// The read failed with `CorruptBatch` naming this file.
    Corrupt(PathBuf),
}

/// Reads from `from` and checks whatever is served; any error other than `CorruptBatch` fails.
pub fn read_at(reader: &LogReader, from: Offset, max_bytes: i64, model: &[Stored]) -> Outcome {
    match reader.read(from.as_i64(), max_bytes) {
        Ok(result) => Outcome::Served(served(&result, from, model)),
        Err(LogError::CorruptBatch { path, .. }) => Outcome::Corrupt(path),
        Err(other) => panic!("read from {from}: unexpected error: {other}"),
    }
}

/// The model batch holding `offset`.
pub fn holder(model: &[Stored], offset: Offset) -> usize {
    model
        .iter()
        .position(|s| s.holds(offset))
        .unwrap_or_else(|| panic!("no model batch holds offset {offset}"))
}

/// Asserts that a read from `from` succeeds and starts with the batch holding `from`.
pub fn assert_readable(reader: &LogReader, from: Offset, max_bytes: i64, model: &[Stored]) {
    match read_at(reader, from, max_bytes, model) {
        Outcome::Served(idxs) => {
            let first_data = idxs.iter().copied().find(|&i| !model[i].meta);
            assert_eq!(
                first_data,
                Some(holder(model, from)),
                "read from {from} (max {max_bytes} bytes) did not start with the batch holding it"
            );
        }
        Outcome::Corrupt(path) => panic!(
            "read from {from} failed with CorruptBatch in {}, but its batch is intact",
            path.display()
        ),
    }
}

/// Asserts that the log holds exactly `model`: its ends, a read of everything from the start,
/// a read at every offset from `per_offset_from` on (one batch, and as much as fits), and that
/// nothing is served past the end.
pub fn assert_log_matches(log: &Log, model: &[Stored], per_offset_from: Offset) {
    let reader = log.reader();
    let end = model_end(model);
    assert_eq!(log.log_end_offset(), end, "log end offset");
    assert_eq!(reader.high_watermark(), end, "high watermark");
    assert_eq!(
        log.next_entry(),
        EntryIndex(model.len() as u64),
        "next entry"
    );
    let all: Vec<(Offset, Bytes)> = model
        .iter()
        .map(|s| (s.base, s.bytes.slice(16..)))
        .collect();
    assert_eq!(
        super::read_all(&reader),
        all,
        "reading everything from the start"
    );
    for offset in per_offset_from.0..end.0 {
        assert_readable(&reader, Offset(offset), 1, model);
        assert_readable(&reader, Offset(offset), 1 << 20, model);
    }
    assert!(
        reader.read(end.as_i64(), 1 << 20).unwrap().is_empty(),
        "a read at the log end served data"
    );
    assert!(
        matches!(
            reader.read(end.as_i64() + 1, 1 << 20),
            Err(LogError::OffsetOutOfRange { .. })
        ),
        "a read past the log end was not out of range"
    );
}

/// The answer `offset_for_timestamp` must give: the first record (in offset order) whose
/// timestamp is at or after `timestamp_ms`.
pub fn expected_offset_for_timestamp(model: &[Stored], timestamp_ms: i64) -> Option<Offset> {
    model
        .iter()
        .find(|s| !s.meta && s.timestamp_ms >= timestamp_ms)
        .map(|s| s.base)
}

/// Timestamps worth asking about: each batch's, one past it, and the extremes.
pub fn timestamp_targets(model: &[Stored]) -> Vec<i64> {
    let mut targets = vec![i64::MIN, i64::MAX];
    for stored in model.iter().filter(|s| !s.meta) {
        targets.push(stored.timestamp_ms);
        targets.push(stored.timestamp_ms + 1);
    }
    targets.sort_unstable();
    targets.dedup();
    targets
}

/// Asserts that `offset_for_timestamp` answers as the model does for every target.
pub fn assert_timestamps_match(reader: &LogReader, model: &[Stored]) {
    for target in timestamp_targets(model) {
        let found = reader
            .offset_for_timestamp(target)
            .unwrap_or_else(|e| panic!("offset_for_timestamp({target}) failed: {e}"));
        assert_eq!(
            found,
            expected_offset_for_timestamp(model, target),
            "offset_for_timestamp({target})"
        );
    }
}

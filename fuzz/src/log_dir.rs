//! A real partition directory to damage: the `index_files` and `checkpoint_files` targets write
//! their input over one file of it and reopen the log through `cairn_log::Log::open`, the code
//! the broker runs at start, so a finding is a start-up a damaged file could break.
//!
//! The template log is built once per process (three segments of small batches, dense sparse
//! indexes, closed cleanly so the clean-shutdown marker exists) and kept in memory; each run
//! copies it into a fresh directory under `/dev/shm` when there is one (no disk I/O per run).
//! What the template answers (every read, every timestamp lookup) is the model a damaged copy
//! is held to.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bytes::Bytes;
use cairn_codec::batch::{Batch, BatchBuilder, Compression, RecordInput};
use cairn_log::{LeaderEpoch, Log, LogConfig, LogError};

/// Batches in the template; with [`TEMPLATE_SEGMENT_BYTES`] they fill three segments.
const TEMPLATE_BATCH_COUNT: u32 = 24;
/// Records per template batch.
const RECORDS_PER_BATCH: u32 = 3;
/// Segment size of the template: a few batches each, so sealed and active segments exist.
const TEMPLATE_SEGMENT_BYTES: u32 = 1024;
/// Read size used to walk the log: about one batch, so reads start inside the log often.
const READ_MAX_BYTES: i64 = 200;
const FIRST_TIMESTAMP_MS: i64 = 1_700_000_000_000;

/// The settings the template is written and every copy reopened with: small indexes (each
/// open preallocates them), dense index entries, and no retention (nothing may be deleted, or
/// the model would not hold).
pub fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: TEMPLATE_SEGMENT_BYTES,
        segment_index_bytes: 4096,
        index_interval_bytes: 1,
        retention_ms: None,
        retention_bytes: None,
        ..LogConfig::default()
    }
}

/// The template: its files, and what it answers.
pub struct Template {
    /// Every file of the closed log, by name.
    pub files: Vec<(String, Vec<u8>)>,
    /// What [`answers`] gives for the template.
    pub answers: Answers,
}

/// Everything a reader can ask a log, as the template answers it.
#[derive(Debug, PartialEq, Eq)]
pub struct Answers {
    /// For each offset below the high watermark, the bytes `read(offset, READ_MAX_BYTES)`
    /// returns.
    pub reads: Vec<Bytes>,
    /// For each batch timestamp, the offset `offset_for_timestamp` gives.
    pub lookups: Vec<Option<u64>>,
}

/// The template, built on first use.
///
/// # Panics
/// When the template cannot be written: the fuzzer's own setup is broken, not the code under
/// test.
pub fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| build_template().expect("the template log can be written"))
}

fn build_template() -> Result<Template, LogError> {
    let dir = scratch_dir();
    let mut log = Log::open(dir.path(), log_config(), 0)?;
    for batch_idx in 0..TEMPLATE_BATCH_COUNT {
        let mut builder = BatchBuilder::new(if batch_idx % 4 == 3 {
            Compression::Lz4
        } else {
            Compression::None
        });
        for record_idx in 0..RECORDS_PER_BATCH {
            let value = format!("batch {batch_idx} record {record_idx}");
            builder.push(&RecordInput {
                key: Some(b"key"),
                value: Some(value.as_bytes()),
                headers: &[],
                timestamp_ms: FIRST_TIMESTAMP_MS + i64::from(batch_idx * 10 + record_idx),
            })?;
        }
        let batch = Batch::validate(builder.build()?)?;
        log.append(&[batch], Some(LeaderEpoch(0)), 0)?;
    }
    assert!(log.segment_count() >= 3, "the template has sealed segments");
    log.close()?;
    let mut files = Vec::new();
    for entry in fs::read_dir(dir.path()).map_err(|e| LogError::io("list", dir.path(), e))? {
        let entry = entry.map_err(|e| LogError::io("list", dir.path(), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = fs::read(entry.path()).map_err(|e| LogError::io("read", &entry.path(), e))?;
        files.push((name, bytes));
    }
    files.sort();
    let copy = Copy::of(&files, None);
    let log = Log::open(copy.path(), log_config(), 0)?;
    let answers = answers(&log)?;
    Ok(Template { files, answers })
}

/// Reads everything a reader can ask of `log`.
///
/// # Errors
/// The first read or lookup that fails.
pub fn answers(log: &Log) -> Result<Answers, LogError> {
    let reader = log.reader();
    let high_watermark = reader.high_watermark().as_i64();
    let mut reads = Vec::new();
    for offset in 0..high_watermark {
        reads.push(reader.read(offset, READ_MAX_BYTES)?.data);
    }
    let mut lookups = Vec::new();
    for batch_idx in 0..=TEMPLATE_BATCH_COUNT {
        let timestamp = FIRST_TIMESTAMP_MS + i64::from(batch_idx * 10) + 1;
        lookups.push(reader.offset_for_timestamp(timestamp)?.map(|o| o.0));
    }
    Ok(Answers { reads, lookups })
}

/// A fresh copy of the template's files with one replaced (or added), removed on drop.
pub struct Copy {
    dir: tempfile::TempDir,
}

impl Copy {
    /// Writes `files` into a new directory, with `replace = Some((name, bytes))` written in
    /// place of (or beside) the file of that name.
    ///
    /// # Panics
    /// When the scratch directory cannot be written (the fuzzer's setup, not the code).
    pub fn of(files: &[(String, Vec<u8>)], replace: Option<(&str, &[u8])>) -> Copy {
        let dir = scratch_dir();
        for (name, bytes) in files {
            if replace.is_some_and(|(replaced, _)| replaced == name) {
                continue;
            }
            write(&dir.path().join(name), bytes);
        }
        if let Some((name, bytes)) = replace {
            write(&dir.path().join(name), bytes);
        }
        Copy { dir }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn write(path: &PathBuf, bytes: &[u8]) {
    fs::write(path, bytes).expect("the scratch directory is writable");
}

fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let made = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    };
    made.expect("a scratch directory can be made")
}

/// The names of the template's segment index files, in order.
pub fn index_file_names() -> Vec<&'static str> {
    template()
        .files
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| {
            name.ends_with(".index")
                || name.ends_with(".timeindex")
                || name.ends_with(".entryindex")
        })
        .collect()
}

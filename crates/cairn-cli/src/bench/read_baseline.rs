//! The log's own read throughput, the reference for `cairn bench replay` and `cairn bench
//! consume`: the same partitions and offset ranges the benchmark reads, read straight from disk with `cairn_log::LogReader` in
//! this process, on one thread, partition after partition, with no network and no gRPC.
//!
//! A running broker holds each partition directory's lock (and recovery could rewrite files),
//! so the baseline never opens the broker's directories: it copies the segment files of each
//! partition into a scratch directory beside them (same disk, and in the page cache once
//! copied, as the broker's freshly written files are) and opens the copies.
//!
//! Two readings, each of the whole range: `raw_batches` walks the batches as the log serves
//! them (its CRC check included) and counts records from the headers; `full_decode` also
//! decompresses and walks every record, touching key, value and headers, which is the work a
//! replay's caller is handed.

use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::scratch::Scratch;
use anyhow::{Context, bail};
use cairn_log::{Log, LogConfig, LogReader};

/// Most bytes one batch may decompress to in the baseline (as the client's own bound).
const DECOMPRESS_LIMIT: usize = cairn_client::MAX_DECOMPRESSED_BATCH_BYTES;

/// One partition's range, as the replay reads it.
#[derive(Clone, Copy, Debug)]
pub struct Range {
    /// The partition.
    pub partition: i32,
    /// The first offset.
    pub start: i64,
    /// The offset after the last.
    pub end: i64,
}

/// The copied partitions, open for reading.
pub struct Copies {
    logs: Vec<(Range, Log)>,
    _scratch: Scratch,
}

/// What one reading counted.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Reading {
    /// Records read.
    pub records: u64,
    /// Bytes of keys and values (for `raw_batches`: bytes of batches).
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl Copies {
    /// Copies the segment files of `topic`'s partitions from the broker's `data_dir` into a
    /// scratch directory inside it and opens them, saying so on stderr (it can take a while).
    ///
    /// # Errors
    /// A partition directory that is missing or unreadable, a failed copy, or a log that will
    /// not open.
    pub fn make(data_dir: &Path, topic: &str, ranges: &[Range]) -> anyhow::Result<Copies> {
        eprintln!(
            "copying {} partitions of {topic} into {} ...",
            ranges.len(),
            data_dir.display()
        );
        let scratch = Scratch::new_in(data_dir, "cairn-bench-read-")?;
        let mut logs = Vec::with_capacity(ranges.len());
        for range in ranges {
            let name = format!("{topic}-{}", range.partition);
            let source = data_dir.join(&name);
            let copy = scratch.path().join(&name);
            copy_partition(&source, &copy)?;
            // A copy of a live log has no clean-shutdown mark and ends in the active segment's
            // reserved space, so opening it runs recovery, which logs "no clean shutdown" and
            // "cutting an incomplete tail": true of the copy, and alarming to read as if of the
            // broker's own log. The copy's open is kept out of the log; a failure still says
            // what went wrong.
            let log = tracing::subscriber::with_default(
                tracing::subscriber::NoSubscriber::default(),
                || Log::open(&copy, LogConfig::default(), 0),
            )
            .with_context(|| format!("opening the copy of {}", source.display()))?;
            if log.high_watermark().as_i64() < range.end {
                bail!(
                    "the copy of {} ends at offset {}, before the replay's end {}",
                    source.display(),
                    log.high_watermark().as_i64(),
                    range.end
                );
            }
            logs.push((*range, log));
        }
        Ok(Copies {
            logs,
            _scratch: scratch,
        })
    }

    /// Reads every range, walking batches only.
    ///
    /// # Errors
    /// A read the log refuses.
    pub fn raw_batches(&self, max_bytes: i64) -> anyhow::Result<Reading> {
        let started = Instant::now();
        let mut reading = Reading::default();
        for (range, log) in &self.logs {
            read_range(&log.reader(), *range, max_bytes, |read| {
                for batch in read.batches() {
                    if !batch.header().attributes.is_control() {
                        reading.records += u64::from(batch.record_count());
                    }
                    reading.bytes += batch.len_bytes() as u64;
                }
                Ok(())
            })?;
        }
        reading.elapsed = started.elapsed();
        Ok(reading)
    }

    /// Reads every range, decoding every record in it.
    ///
    /// # Errors
    /// A read the log refuses, or a batch that does not decode.
    pub fn full_decode(&self, max_bytes: i64) -> anyhow::Result<Reading> {
        let started = Instant::now();
        let mut reading = Reading::default();
        for (range, log) in &self.logs {
            read_range(&log.reader(), *range, max_bytes, |read| {
                for batch in read.batches() {
                    if batch.header().attributes.is_control() {
                        continue;
                    }
                    let records = batch.records(DECOMPRESS_LIMIT)?;
                    for record in records.iter() {
                        let record = record?;
                        let offset = batch.header().base_offset + i64::from(record.offset_delta);
                        if offset < range.start || offset >= range.end {
                            continue;
                        }
                        black_box(batch.record_timestamp(&record));
                        black_box(record.headers.iter().count());
                        reading.records += 1;
                        reading.bytes += (record.key.map_or(0, <[u8]>::len)
                            + record.value.map_or(0, <[u8]>::len))
                            as u64;
                    }
                }
                Ok(())
            })?;
        }
        reading.elapsed = started.elapsed();
        Ok(reading)
    }
}

/// Reads `range` in reads of up to `max_bytes`, handing each to `each`.
fn read_range(
    reader: &LogReader,
    range: Range,
    max_bytes: i64,
    mut each: impl FnMut(&cairn_log::ReadResult) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut offset = range.start;
    while offset < range.end {
        let read = reader.read(offset, max_bytes)?;
        if read.is_empty() {
            break;
        }
        each(&read)?;
        offset = read.next_offset.as_i64();
    }
    Ok(())
}

/// Copies every file of a partition directory except its lock.
fn copy_partition(source: &Path, copy: &Path) -> anyhow::Result<()> {
    fs::create_dir(copy).with_context(|| format!("creating {}", copy.display()))?;
    let entries = fs::read_dir(source).with_context(|| {
        format!(
            "listing {} (is --baseline-dir the broker's data directory?)",
            source.display()
        )
    })?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", source.display()))?;
        let name = entry.file_name();
        if name == ".lock" || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let to: PathBuf = copy.join(&name);
        fs::copy(entry.path(), &to)
            .with_context(|| format!("copying {} to {}", entry.path().display(), to.display()))?;
    }
    Ok(())
}

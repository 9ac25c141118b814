//! The machine's own limits, measured in the same run as the end-to-end figures so that ratios
//! stay meaningful on a shared, noisy machine: raw `write` + `fdatasync` of batch-sized chunks
//! appended to a new file, the same into a laid-out file and 4 KiB synced writes as fio measures
//! them (`fsync_baseline`), and `cairn-log` appending the same batches with
//! `flush.policy=always`, all in a scratch directory that should sit on the broker's disk and
//! is removed afterwards.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use cairn_log::batch::{Batch, BatchBuilder, Compression, RecordInput};
use cairn_log::{LeaderEpoch, Log, LogConfig};

use super::fsync_baseline;
use super::report::Percentiles;
use super::scratch::Scratch;

/// How long each baseline runs.
pub const BASELINE_DURATION: Duration = Duration::from_secs(3);

/// Every baseline of a run: rates in bytes per second, latencies in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Baseline {
    /// Raw `write` + `fdatasync` of each batch, appended to a new file.
    pub raw_bytes_per_sec: f64,
    /// `write` + `fdatasync` of each batch into a laid-out file, as fio measures it.
    pub laid_out_bytes_per_sec: f64,
    /// Latency of a 4 KiB `write` + `fdatasync` into a laid-out file, as fio measures it.
    pub small_fsync_latency: Percentiles,
    /// How many 4 KiB writes `small_fsync_latency` covers.
    pub small_fsync_ops: u64,
    /// `Log::append` of each batch under `flush.policy=always` (one writer, no gRPC).
    pub log_bytes_per_sec: f64,
    /// Records in the batch written.
    pub batch_records: usize,
    /// Bytes of the batch written.
    pub batch_bytes: usize,
}

impl Baseline {
    /// Raw fsync'd writes as records per second of the benchmark's record shape.
    pub fn raw_records_per_sec(&self) -> f64 {
        self.raw_bytes_per_sec / self.batch_bytes.max(1) as f64 * self.batch_records as f64
    }

    /// Writes into a laid-out file as records per second of the benchmark's record shape.
    pub fn laid_out_records_per_sec(&self) -> f64 {
        self.laid_out_bytes_per_sec / self.batch_bytes.max(1) as f64 * self.batch_records as f64
    }

    /// Log appends as records per second of the benchmark's record shape.
    pub fn log_records_per_sec(&self) -> f64 {
        self.log_bytes_per_sec / self.batch_bytes.max(1) as f64 * self.batch_records as f64
    }
}

/// One encoded batch of `records` records with `record_size`-byte values.
///
/// # Errors
/// If the records cannot be encoded (a record size beyond the format's limits).
pub fn sample_batch(records: usize, record_size: usize) -> anyhow::Result<Bytes> {
    let value = vec![b'x'; record_size];
    let mut builder = BatchBuilder::new(Compression::None);
    for _ in 0..records.max(1) {
        builder.push(&RecordInput {
            key: None,
            value: Some(&value),
            headers: &[],
            timestamp_ms: 1_700_000_000_000,
        })?;
    }
    Ok(builder.build()?)
}

/// Measures every baseline in a scratch directory under `dir`, with `batch` (holding
/// `batch_records` records) as the unit of the rates.
///
/// # Errors
/// If the scratch directory cannot be made or written, or the log refuses the batch.
pub fn measure(dir: &Path, batch: &Bytes, batch_records: usize) -> anyhow::Result<Baseline> {
    let scratch = Scratch::new_in(dir, "cairn-bench-baseline-")?;
    let raw_bytes_per_sec = raw_fsync(&scratch.path().join("raw"), batch)?;
    let laid_out_bytes_per_sec =
        fsync_baseline::sequential(&scratch.path().join("laid-out"), batch.len())?;
    let (small_fsync_latency, small_fsync_ops) =
        fsync_baseline::small_write_latency(&scratch.path().join("small"))?;
    let log_bytes_per_sec = log_append(&scratch.path().join("log"), batch)?;
    Ok(Baseline {
        raw_bytes_per_sec,
        laid_out_bytes_per_sec,
        small_fsync_latency,
        small_fsync_ops,
        log_bytes_per_sec,
        batch_records,
        batch_bytes: batch.len(),
    })
}

fn raw_fsync(path: &Path, batch: &[u8]) -> anyhow::Result<f64> {
    let mut file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let start = Instant::now();
    let mut written = 0_u64;
    while start.elapsed() < BASELINE_DURATION {
        file.write_all(batch)
            .with_context(|| format!("writing {}", path.display()))?;
        file.sync_data()
            .with_context(|| format!("fdatasync of {}", path.display()))?;
        written += batch.len() as u64;
    }
    Ok(written as f64 / start.elapsed().as_secs_f64())
}

fn log_append(dir: &Path, batch: &Bytes) -> anyhow::Result<f64> {
    let mut log = Log::open(dir, LogConfig::default(), 0)
        .with_context(|| format!("opening a log in {}", dir.display()))?;
    let batch = Batch::validate(batch.clone())?;
    let start = Instant::now();
    let mut written = 0_u64;
    while start.elapsed() < BASELINE_DURATION {
        log.append(std::slice::from_ref(&batch), Some(LeaderEpoch(0)), 0)
            .context("appending to the baseline log")?;
        written += batch.bytes().len() as u64;
    }
    Ok(written as f64 / start.elapsed().as_secs_f64())
}

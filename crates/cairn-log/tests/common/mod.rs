//! Helpers shared by the integration tests: building batches and reading everything back.
#![allow(
    dead_code,
    reason = "each test binary uses a different subset of these helpers"
)]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure here is a failed test"
)]

/// Damage helpers for the crash and corruption tests.
pub mod damage;
/// Keyed records for the compaction tests.
pub mod keyed;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use cairn_log::batch::{Batch, BatchBuilder, Compression, RecordInput};
use cairn_log::{Log, LogConfig, LogReader, LogWriter, Offset, SystemClock};

/// A batch of `count` records whose values encode `tag` and their index.
pub fn batch(tag: u64, count: usize, value_bytes: usize, timestamp_ms: i64) -> Batch {
    let mut builder = BatchBuilder::new(Compression::None);
    for idx in 0..count {
        let key = format!("key-{}", (tag + idx as u64) % 97);
        let mut value = format!("{tag}:{idx}:").into_bytes();
        value.resize(value_bytes.max(value.len()), b'x');
        builder
            .push(&RecordInput {
                key: Some(key.as_bytes()),
                value: Some(&value),
                headers: &[],
                timestamp_ms,
            })
            .unwrap();
    }
    Batch::validate(builder.build().unwrap()).unwrap()
}

/// A small-segment config that rolls often and indexes densely.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        segment_index_bytes: 1024,
        retention_ms: None,
        ..LogConfig::default()
    }
}

/// Opens the log in `dir` with `cfg` and starts its writer thread on the system clock.
pub fn spawn_writer(dir: &Path, cfg: LogConfig) -> LogWriter {
    let log = Log::open(dir, cfg, 0).unwrap();
    LogWriter::spawn(log, Arc::new(SystemClock)).unwrap()
}

/// Reads every visible batch from the log start, returning (base offset, bytes after the
/// assigned fields) per batch.
pub fn read_all(reader: &LogReader) -> Vec<(Offset, Bytes)> {
    let mut out = Vec::new();
    let mut next = reader.log_start_offset();
    loop {
        let result = reader.read(next.as_i64(), 1 << 20).unwrap();
        if result.is_empty() {
            return out;
        }
        for batch in result.batches() {
            if batch.base_offset() >= next || batch.is_meta() {
                out.push((batch.base_offset(), batch.bytes().slice(16..)));
            }
        }
        assert!(
            result.next_offset > next || result.batches().all(|b| b.is_meta()),
            "read made no progress at {next}"
        );
        next = result.next_offset;
    }
}

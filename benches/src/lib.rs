//! Shared pieces of Cairn's benchmarks: where benchmark files go (a real disk, never tmpfs),
//! and building realistic batches. The benchmarks themselves live in `benches/`.

use std::path::PathBuf;

use bytes::Bytes;
use cairn_log::batch::{BatchBuilder, Compression, RecordInput};

/// The directory benchmarks write to: `$CAIRN_BENCH_DIR`, or `target/bench-data` beside the
/// workspace. It must be on the disk being measured; a tmpfs would make every fsync free.
pub fn bench_dir() -> PathBuf {
    let dir = std::env::var_os("CAIRN_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data"));
    if let Err(err) = std::fs::create_dir_all(&dir) {
        panic!(
            "cannot create the benchmark directory {}: {err}",
            dir.display()
        );
    }
    dir
}

/// Encodes batches of `record_bytes`-sized records (value only, 16-byte keys) until each batch
/// reaches `batch_bytes`; returns `count` distinct batches so caches cannot fake the work.
pub fn make_batches(
    count: usize,
    batch_bytes: usize,
    record_bytes: usize,
    codec: Compression,
) -> Vec<Bytes> {
    let mut builder = BatchBuilder::new(codec);
    let mut value = vec![0u8; record_bytes];
    (0..count)
        .map(|batch_idx| {
            let mut record_idx = 0u64;
            while builder.uncompressed_bytes() + record_bytes + 32 <= batch_bytes
                || builder.is_empty()
            {
                let key = format!(
                    "customer-{:07}",
                    (batch_idx as u64 * 131 + record_idx) % 10_000
                );
                // Vary the value so compressors see text-like, not constant, data.
                for (idx, byte) in value.iter_mut().enumerate() {
                    *byte = b'a' + ((idx as u64 + record_idx * 7 + batch_idx as u64) % 26) as u8;
                }
                let record = RecordInput {
                    key: Some(key.as_bytes()),
                    value: Some(&value),
                    headers: &[],
                    timestamp_ms: 1_700_000_000_000 + record_idx as i64,
                };
                if let Err(err) = builder.push(&record) {
                    panic!("encoding a benchmark record: {err}");
                }
                record_idx += 1;
            }
            match builder.build() {
                Ok(bytes) => bytes,
                Err(err) => panic!("encoding a benchmark batch: {err}"),
            }
        })
        .collect()
}

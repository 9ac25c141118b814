//! The log's own I/O paths without fsync in the way: appending 64 KiB batches under
//! `flush.policy=os` (the CPU and `writev` cost per batch), and reading the log back from the
//! page cache with CRC checks (the "log's own read throughput" that replay through gRPC is
//! measured against). The fsync'd append path is `append_vs_raw`, which compares it with the
//! raw disk in the same run.

#![allow(
    clippy::unwrap_used,
    reason = "benchmark harness: inputs are generated here, so a failure is a broken benchmark"
)]

use std::hint::black_box;

use cairn_benches::{bench_dir, make_batches};
use cairn_log::batch::{Batch, Compression};
use cairn_log::{FlushPolicy, Log, LogConfig};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const BATCH_BYTES: usize = 64 * 1024;

fn config() -> LogConfig {
    LogConfig {
        flush_policy: FlushPolicy::Os,
        segment_bytes: 256 << 20,
        retention_ms: None,
        ..LogConfig::default()
    }
}

fn append_os(c: &mut Criterion) {
    let batches = make_batches(64, BATCH_BYTES, 1024, Compression::None);
    let dir = tempfile::tempdir_in(bench_dir()).unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Bytes(BATCH_BYTES as u64));
    let mut idx = 0;
    group.bench_function("64KiB_batch_validate_and_append_os_policy", |b| {
        b.iter(|| {
            let batch = Batch::validate(batches[idx % batches.len()].clone()).unwrap();
            idx += 1;
            black_box(log.append(&[batch], None, 0).unwrap());
        });
    });
    group.finish();
}

fn read_page_cache(c: &mut Criterion) {
    let batches = make_batches(64, BATCH_BYTES, 1024, Compression::None);
    let dir = tempfile::tempdir_in(bench_dir()).unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    let mut total_bytes = 0usize;
    for idx in 0..(512 << 20) / BATCH_BYTES {
        let batch = Batch::validate(batches[idx % batches.len()].clone()).unwrap();
        total_bytes += batch.len_bytes();
        log.append(&[batch], None, 0).unwrap();
    }
    let reader = log.reader();
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Bytes(total_bytes as u64));
    group.sample_size(10);
    group.bench_function("sequential_512MiB_1MiB_reads_crc_checked", |b| {
        b.iter(|| {
            let mut next = 0i64;
            let mut bytes = 0usize;
            loop {
                let result = reader.read(next, 1 << 20).unwrap();
                if result.is_empty() {
                    break;
                }
                bytes += result.data.len();
                next = result.next_offset.as_i64();
            }
            assert_eq!(bytes, total_bytes);
            black_box(bytes)
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = append_os, read_page_cache
}
criterion_main!(benches);

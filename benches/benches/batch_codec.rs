//! CPU cost of the batch codec on one core: encoding 64 KiB batches of 1 KiB records, and
//! decode+validate (header checks and CRC-32C over the whole batch), which every append and
//! every read pays. Target: decode+validate >= 2 GB/s.

#![allow(
    clippy::unwrap_used,
    reason = "benchmark harness: inputs are generated here, so a failure is a broken benchmark"
)]

use std::hint::black_box;

use bytes::Bytes;
use cairn_benches::make_batches;
use cairn_log::batch::{Batch, BatchBuilder, Compression, RecordInput};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const BATCH_BYTES: usize = 64 * 1024;
const RECORD_BYTES: usize = 1024;

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_64KiB_batch_1KiB_records");
    group.throughput(Throughput::Bytes(BATCH_BYTES as u64));
    let value = vec![b'v'; RECORD_BYTES];
    for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
        group.bench_function(format!("{codec:?}"), |b| {
            let mut builder = BatchBuilder::new(codec);
            b.iter(|| {
                while builder.uncompressed_bytes() + RECORD_BYTES + 32 <= BATCH_BYTES {
                    let record = RecordInput {
                        key: Some(b"customer-0000042"),
                        value: Some(&value),
                        headers: &[],
                        timestamp_ms: 1,
                    };
                    builder.push(&record).unwrap();
                }
                black_box(builder.build().unwrap())
            });
        });
    }
    group.finish();
}

fn decode_validate(c: &mut Criterion) {
    let batches: Vec<Bytes> = make_batches(64, BATCH_BYTES, RECORD_BYTES, Compression::None);
    let total: usize = batches.iter().map(Bytes::len).sum();
    let mut group = c.benchmark_group("decode_validate");
    group.throughput(Throughput::Bytes(total as u64));
    group.bench_function("header_and_crc_64x64KiB", |b| {
        b.iter(|| {
            for bytes in &batches {
                black_box(Batch::validate(bytes.clone()).unwrap());
            }
        });
    });
    group.bench_function("header_crc_and_record_walk_64x64KiB", |b| {
        b.iter(|| {
            for bytes in &batches {
                let batch = Batch::validate(bytes.clone()).unwrap();
                batch.check_records(1 << 20).unwrap();
                black_box(batch);
            }
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = encode, decode_validate
}
criterion_main!(benches);

//! A quick check of what a durable produce pays per group commit: appends one 1 KiB batch at a
//! time under `flush.policy=always` and times each commit's `fdatasync` on its own (the write is
//! timed apart), then prints p50/p99/p99.9 and the log's own fsync histogram mean. It exists to
//! compare preallocated segments against growing ones (`segments-format.md` §7.2) on the disk
//! the broker runs on, which criterion's averages hide: the difference is in the tail.
//!
//! `cargo run --release -p cairn-log --example durable_append_latency -- DIR [APPENDS] [ROUNDS]`
//! DIR must be on the disk to measure (not tmpfs); a fresh log is made in a temporary directory
//! under it for each round.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a measurement tool: any failure ends the run"
)]

use std::time::{Duration, Instant};

use cairn_log::batch::{Batch, BatchBuilder, Compression, RecordInput};
use cairn_log::{FlushPolicy, Log, LogConfig, fsync_latency};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: DIR [APPENDS] [ROUNDS]");
    let appends: usize = args.next().map_or(3000, |a| a.parse().expect("APPENDS"));
    let rounds: usize = args.next().map_or(3, |a| a.parse().expect("ROUNDS"));
    let batch = one_kib_batch();
    println!(
        "{} byte batches, {appends} appends per round",
        batch.len_bytes()
    );
    for round in 0..rounds {
        let tmp = tempfile::tempdir_in(&dir).expect("temporary directory");
        let cfg = LogConfig {
            flush_policy: FlushPolicy::Always,
            retention_ms: None,
            ..LogConfig::default()
        };
        let mut log = Log::open(tmp.path(), cfg, 0).expect("open");
        let before = fsync_latency().snapshot();
        let mut syncs = Vec::with_capacity(appends);
        for _ in 0..appends {
            log.append_group(&[(std::slice::from_ref(&batch), None)], 0)
                .expect("write");
            let started = Instant::now();
            log.commit().expect("fdatasync");
            syncs.push(started.elapsed());
        }
        let after = fsync_latency().snapshot();
        let count = after.count() - before.count();
        let mean_us = (after.sum_nanos - before.sum_nanos) as f64 / count as f64 / 1000.0;
        syncs.sort_unstable();
        println!(
            "round {round}: commit fdatasync p50 {} us, p99 {} us, p99.9 {} us, max {} us; histogram mean {mean_us:.0} us over {count}",
            micros(percentile(&syncs, 0.50)),
            micros(percentile(&syncs, 0.99)),
            micros(percentile(&syncs, 0.999)),
            micros(*syncs.last().expect("at least one append")),
        );
        log.close().expect("close");
    }
}

fn one_kib_batch() -> Batch {
    let value = vec![b'x'; 1024 - 61 - 16];
    let mut builder = BatchBuilder::new(Compression::None);
    let record = RecordInput {
        key: None,
        value: Some(&value),
        headers: &[],
        timestamp_ms: 0,
    };
    builder.push(&record).expect("record");
    Batch::validate(builder.build().expect("batch")).expect("valid batch")
}

fn percentile(sorted: &[Duration], quantile: f64) -> Duration {
    let idx = ((sorted.len() as f64 * quantile) as usize).min(sorted.len() - 1);
    sorted[idx]
}

fn micros(duration: Duration) -> u128 {
    duration.as_micros()
}

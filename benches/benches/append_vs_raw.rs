//! The log's fsync'd append throughput as a ratio of this machine's raw `write`+`fdatasync`
//! bandwidth at the same write size, measured in the same run.
//!
//! This disk's fsync latency is bimodal and drifts within minutes, so the phases are
//! interleaved, in an order that rotates each round, and each round reports its own ratio; the
//! summary takes medians. Phases:
//! - `raw`: append 64 KiB to a file, `fdatasync`, repeat: the ceiling for one writer.
//! - `log`: one appender, 64 KiB batches of 1 KiB records, `flush.policy=always`: validate
//!   (CRC), append, fdatasync per batch. Target: >= 85% of `raw`.
//! - `group`: four producer threads appending 64 KiB batches concurrently through one
//!   `LogWriter`, which gathers them into one write and one fdatasync per group.
//!
//! Run: `cargo bench -p cairn-benches --bench append_vs_raw` (env `CAIRN_BENCH_SECONDS`,
//! `CAIRN_BENCH_ROUNDS`, `CAIRN_BENCH_DIR`).

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_benches::{bench_dir, make_batches};
use cairn_log::batch::{Batch, Compression};
use cairn_log::{FlushPolicy, Log, LogConfig, LogWriter, SystemClock};

const WRITE_BYTES: usize = 64 * 1024;
const RECORD_BYTES: usize = 1024;
const PRODUCERS: usize = 4;

fn main() {
    let seconds: f64 = env_or("CAIRN_BENCH_SECONDS", 3.0);
    let rounds: usize = env_or("CAIRN_BENCH_ROUNDS", 5);
    let phase = Duration::from_secs_f64(seconds);
    let batches = make_batches(64, WRITE_BYTES, RECORD_BYTES, Compression::None);
    let batch_bytes = batches[0].len();
    let records = Batch::validate(batches[0].clone())
        .map(|b| b.record_count())
        .unwrap_or(0);
    println!(
        "append_vs_raw: {rounds} rounds x {seconds}s per phase; batches of {records} x {RECORD_BYTES} B records = {batch_bytes} B; dir {}",
        bench_dir().display()
    );
    println!(
        "{:>5} {:>12} {:>12} {:>12} {:>10} {:>12}",
        "round", "raw MiB/s", "log MiB/s", "group MiB/s", "log/raw", "group/raw"
    );
    let (mut raws, mut logs, mut groups) = (Vec::new(), Vec::new(), Vec::new());
    let (mut log_ratios, mut group_ratios) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Rotate the order each round: the phase after another one's file deletion pays for
        // it (this disk is mounted with `discard`), so no phase may always go first.
        let (mut raw, mut log, mut group) = (0.0, 0.0, 0.0);
        for step in 0..3 {
            match (round + step) % 3 {
                0 => raw = raw_write_fdatasync(phase, batch_bytes),
                1 => log = log_single_appender(phase, &batches),
                _ => group = log_group_commit(phase, &batches),
            }
        }
        println!(
            "{round:>5} {raw:>12.1} {log:>12.1} {group:>12.1} {:>10.3} {:>12.3}",
            log / raw,
            group / raw
        );
        log_ratios.push(log / raw);
        group_ratios.push(group / raw);
        raws.push(raw);
        logs.push(log);
        groups.push(group);
    }
    // Ratios are taken within each round (same disk weather), then the median of those.
    let (raw, log, group) = (median(&mut raws), median(&mut logs), median(&mut groups));
    let (log_ratio, group_ratio) = (median(&mut log_ratios), median(&mut group_ratios));
    println!("median {raw:>11.1} {log:>12.1} {group:>12.1} {log_ratio:>10.3} {group_ratio:>12.3}");
    println!(
        "{{\"bench\":\"append_vs_raw\",\"write_bytes\":{batch_bytes},\"raw_mib_s\":{raw:.1},\"log_mib_s\":{log:.1},\"group_mib_s\":{group:.1},\"log_over_raw\":{log_ratio:.3},\"group_over_raw\":{group_ratio:.3}}}"
    );
}

/// MiB/s of `write` + `fdatasync` of `write_bytes` at a time to a fresh file.
fn raw_write_fdatasync(phase: Duration, write_bytes: usize) -> f64 {
    let dir = tempfile::tempdir_in(bench_dir()).expect("bench dir");
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("raw"))
        .expect("raw file");
    let buffer: Vec<u8> = (0..write_bytes).map(|i| (i % 251) as u8).collect();
    let (start, mut bytes) = (Instant::now(), 0u64);
    while start.elapsed() < phase {
        file.write_all(&buffer).expect("raw write");
        file.sync_data().expect("raw fdatasync");
        bytes += write_bytes as u64;
    }
    mib_per_s(bytes, start.elapsed())
}

fn log_config() -> LogConfig {
    LogConfig {
        flush_policy: FlushPolicy::Always,
        retention_ms: None,
        ..LogConfig::default()
    }
}

/// MiB/s of one appender: validate, append, fdatasync, per batch.
fn log_single_appender(phase: Duration, batches: &[Bytes]) -> f64 {
    let dir = tempfile::tempdir_in(bench_dir()).expect("bench dir");
    let mut log = Log::open(dir.path(), log_config(), 0).expect("open log");
    let (start, mut bytes, mut idx) = (Instant::now(), 0u64, 0usize);
    while start.elapsed() < phase {
        let batch = Batch::validate(batches[idx % batches.len()].clone()).expect("valid batch");
        bytes += batch.len_bytes() as u64;
        log.append(&[batch], None, 0).expect("append");
        idx += 1;
    }
    let elapsed = start.elapsed();
    log.close().expect("close");
    mib_per_s(bytes, elapsed)
}

/// MiB/s of `PRODUCERS` threads appending through one group-committing writer.
fn log_group_commit(phase: Duration, batches: &[Bytes]) -> f64 {
    let dir = tempfile::tempdir_in(bench_dir()).expect("bench dir");
    let log = Log::open(dir.path(), log_config(), 0).expect("open log");
    let writer = LogWriter::spawn(log, Arc::new(SystemClock)).expect("writer");
    let stop = Arc::new(AtomicBool::new(false));
    let bytes = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..PRODUCERS)
        .map(|producer| {
            let (writer, stop, bytes) = (writer.clone(), Arc::clone(&stop), Arc::clone(&bytes));
            let batches = batches.to_vec();
            std::thread::spawn(move || {
                let mut idx = producer;
                while !stop.load(Ordering::Relaxed) {
                    let batch =
                        Batch::validate(batches[idx % batches.len()].clone()).expect("valid batch");
                    let len = batch.len_bytes() as u64;
                    writer.append_blocking(vec![batch], None).expect("append");
                    bytes.fetch_add(len, Ordering::Relaxed);
                    idx += PRODUCERS;
                }
            })
        })
        .collect();
    std::thread::sleep(phase);
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("producer thread");
    }
    let elapsed = start.elapsed();
    writer.close_blocking().expect("close");
    mib_per_s(bytes.load(Ordering::Relaxed), elapsed)
}

fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

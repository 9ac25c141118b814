//! The report of `cairn bench produce`: throughput; ack latency with what it includes; the
//! service time once the producer reports it; CPU-seconds per GB of record bytes in the bench
//! and in the broker; and, with `--baseline-dir`, the same run's disk limits as ratios and as
//! latency targets. Text for people, one JSON object for scripts, with the same figures.
//!
//! Nothing here measures: every figure arrives in [`Measured`]. A figure that was not
//! measured is said to be missing (JSON `null`), never shown as zero.

use std::time::Duration;

use serde_json::{Value, json};

use super::OutputFormat;
use super::baseline::Baseline;
use super::produce::BenchProduceArgs;
use super::report::{Percentiles, Throughput, cpu_seconds_per_gb, service_time_line};
use super::send_floor::SendFloor;

/// What the latency percentiles are measured from, as the report names it.
pub const LATENCY_FROM: &str =
    "from the intended send time: includes waiting in the producer's buffer";
/// The latency target above the fsync median (PERFORMANCE.md): an ack at a low rate should
/// cost the fsync plus about this much for the request and the group commit.
pub const ACK_P50_OVER_FSYNC_MS: f64 = 0.3;
/// The latency target above the fsync p99.
pub const ACK_P99_OVER_FSYNC_MS: f64 = 2.0;

/// Everything one produce run measured.
#[derive(Debug)]
pub struct Measured {
    /// Records acknowledged.
    pub acknowledged: u64,
    /// Records that failed.
    pub failed: u64,
    /// From the first send to the last acknowledgement.
    pub elapsed: Duration,
    /// Each record's intended send time to its acknowledgement.
    pub latency: Percentiles,
    /// Each request's round trip, once the producer reports it.
    pub service_time: Option<Percentiles>,
    /// The producer's `buffer_memory`: the most record bytes a record can queue behind.
    pub buffer_memory: usize,
    /// CPU time of this process over the produce (the baseline excluded).
    pub bench_cpu: Duration,
    /// The broker's CPU seconds over the produce, or why they are unknown.
    pub broker_cpu: Result<f64, String>,
    /// Where the broker's CPU was read, if anywhere.
    pub broker_metrics_url: Option<String>,
    /// The same run's limits, with `--baseline-dir`, measured before the run.
    pub baseline: Option<Baseline>,
    /// 4 KiB `write` + `fdatasync` latency measured again after the run, and how many writes
    /// it covers (with `--baseline-dir`).
    pub fsync_after: Option<(Percentiles, u64)>,
    /// 4 KiB `write` + `fdatasync` latency with the writes spaced as the run's sends were
    /// (with `--baseline-dir` and a `--rate` of at most 1,000/s): what the disk gives one
    /// write at this rate.
    pub fsync_paced: Option<PacedFsync>,
    /// The least CPU a client spends per GB sent, measured before the run (with
    /// `--baseline-dir`): see `send_floor`.
    pub send_floor: Option<SendFloor>,
}

/// The disk's own latency at a paced run's rate (see
/// `fsync_baseline::paced_small_write_latency_in`).
#[derive(Clone, Copy, Debug)]
pub struct PacedFsync {
    /// Its percentiles.
    pub latency: Percentiles,
    /// How many writes they cover.
    pub writes: u64,
    /// The time between two writes' starts: the run's time between sends.
    pub interval: Duration,
}

impl PacedFsync {
    /// The ack latency's p50 and p99 over the paced fsync's, in milliseconds.
    fn ack_over(&self, ack: &Percentiles) -> (f64, f64) {
        (ack.p50 - self.latency.p50, ack.p99 - self.latency.p99)
    }
}

/// Prints the report of a run on stdout.
///
/// # Errors
/// Writing to stdout failed.
pub fn report(args: &BenchProduceArgs, m: &Measured) -> std::io::Result<()> {
    match args.format {
        OutputFormat::Json => outln!("{}", to_json(args, m)),
        OutputFormat::Text => text(args, m),
    }
}

fn record_bytes(args: &BenchProduceArgs, m: &Measured) -> u64 {
    m.acknowledged.saturating_mul(args.record_size as u64)
}

fn rate(args: &BenchProduceArgs, m: &Measured) -> Throughput {
    Throughput::of(m.acknowledged, record_bytes(args, m), m.elapsed)
}

/// Ratios of records/s of the same record shape, so batch framing counts the same on both
/// sides: to writes into a laid-out file, to the log's appends, to raw appends.
fn ratios(records_per_sec: f64, b: &Baseline) -> (f64, f64, f64) {
    (
        records_per_sec / b.laid_out_records_per_sec().max(1e-9),
        records_per_sec / b.log_records_per_sec().max(1e-9),
        records_per_sec / b.raw_records_per_sec().max(1e-9),
    )
}

/// Latency targets from the same run's 4 KiB fsync: (p50, p99) in milliseconds. Each starts
/// from the faster of the readings before and after the run: fsync latency drifts here, and
/// the faster reading gives the stricter target.
fn ack_targets(b: &Baseline, after: Option<Percentiles>) -> (f64, f64) {
    let before = b.small_fsync_latency;
    let after = after.unwrap_or(before);
    (
        before.p50.min(after.p50) + ACK_P50_OVER_FSYNC_MS,
        before.p99.min(after.p99) + ACK_P99_OVER_FSYNC_MS,
    )
}

fn to_json(args: &BenchProduceArgs, m: &Measured) -> Value {
    let rate = rate(args, m);
    let bytes = record_bytes(args, m);
    let bench_cpu = m.bench_cpu.as_secs_f64();
    let bench_per_gb = cpu_seconds_per_gb(bench_cpu, bytes);
    let mut object = json!({
        "bench": "produce",
        "topic": args.topic,
        "records": m.acknowledged,
        "failed": m.failed,
        "bytes": bytes,
        "seconds": m.elapsed.as_secs_f64(),
        "records_per_sec": rate.records_per_sec,
        "mb_per_sec": rate.mb_per_sec,
        "latency_ms": m.latency.to_json(),
        "latency_from": LATENCY_FROM,
        "service_time_ms": m.service_time.map(Percentiles::to_json),
        "cpu": {
            "bench_seconds": bench_cpu,
            "bench_seconds_per_gb": bench_per_gb,
            "broker_seconds": m.broker_cpu.as_ref().ok(),
            "broker_seconds_per_gb": m.broker_cpu.as_ref().ok().map(|s| cpu_seconds_per_gb(*s, bytes)),
            "broker_unknown_reason": m.broker_cpu.as_ref().err(),
            "broker_metrics_url": m.broker_metrics_url,
            "send_floor_seconds_per_gb": m.send_floor.map(|f| f.cpu_seconds_per_gb()),
            "bench_over_send_floor": m.send_floor.map(|f| f.multiple(bench_per_gb)),
        },
        "settings": {
            "partitions": args.partitions,
            "flush_policy": args.flush_policy,
            "record_size": args.record_size,
            "records_per_request": args.records_per_request,
            "in_flight": args.in_flight,
            "acks": format!("{:?}", args.acks).to_lowercase(),
            "rate": args.rate,
            "linger_ms": args.linger_ms,
            "producers_held": args.producers_held,
            "buffer_memory": m.buffer_memory,
        },
    });
    if let Some(b) = &m.baseline {
        let (to_laid_out, to_log, to_raw) = ratios(rate.records_per_sec, b);
        let (p50_target, p99_target) = ack_targets(b, m.fsync_after.map(|(p, _)| p));
        object["baseline"] = json!({
            "write_bytes": b.batch_bytes,
            "raw_fsync_mb_per_sec": b.raw_bytes_per_sec / 1e6,
            "raw_fsync_records_per_sec": b.raw_records_per_sec(),
            "laid_out_fsync_mb_per_sec": b.laid_out_bytes_per_sec / 1e6,
            "laid_out_fsync_records_per_sec": b.laid_out_records_per_sec(),
            "log_append_mb_per_sec": b.log_bytes_per_sec / 1e6,
            "log_append_records_per_sec": b.log_records_per_sec(),
            "fsync_4k_latency_ms": b.small_fsync_latency.to_json(),
            "fsync_4k_writes": b.small_fsync_ops,
            "fsync_4k_latency_after_ms": m.fsync_after.map(|(p, _)| p.to_json()),
            "fsync_4k_writes_after": m.fsync_after.map(|(_, ops)| ops),
            "ratio_to_laid_out_fsync": to_laid_out,
            "ratio_to_log_append": to_log,
            "ratio_to_raw_fsync": to_raw,
            "ack_target_ms": { "p50": p50_target, "p99": p99_target },
        });
    }
    if let Some(paced) = &m.fsync_paced {
        let (p50_over, p99_over) = paced.ack_over(&m.latency);
        object["fsync_4k_paced"] = json!({
            "interval_ms": paced.interval.as_secs_f64() * 1e3,
            "writes": paced.writes,
            "latency_ms": paced.latency.to_json(),
            "ack_over_fsync_ms": { "p50": p50_over, "p99": p99_over },
        });
    }
    object
}

fn text(args: &BenchProduceArgs, m: &Measured) -> std::io::Result<()> {
    let rate = rate(args, m);
    outln!(
        "produced {} records of {} bytes in {:.2} s: {:.0} records/s, {:.1} MB/s",
        m.acknowledged,
        args.record_size,
        m.elapsed.as_secs_f64(),
        rate.records_per_sec,
        rate.mb_per_sec
    )?;
    outln!("ack latency ({LATENCY_FROM}): {}", m.latency.to_text())?;
    if args.rate == 0 {
        // Without a schedule every record is offered at once, so the percentiles mostly
        // measure the queue in front of the broker; say so before someone reads them as the
        // broker's latency.
        let queue_secs = m.buffer_memory as f64 / (rate.mb_per_sec * 1e6).max(1.0);
        outln!(
            "  (no --rate: records are offered as fast as send takes them, so most of this is queueing: a record waits behind up to {} MiB of earlier ones in the producer's buffer, about {:.0} ms at this throughput. Pass --rate below {:.0} to measure latency under a given load.)",
            m.buffer_memory >> 20,
            queue_secs * 1000.0,
            rate.records_per_sec
        )?;
    }
    outln!("{}", service_time_line(m.service_time))?;
    text_cpu(args, m)?;
    if let Some(b) = &m.baseline {
        text_baseline(args, m, rate, b)?;
    }
    if m.failed > 0 {
        outln!("{} records failed", m.failed)?;
    }
    Ok(())
}

fn text_cpu(args: &BenchProduceArgs, m: &Measured) -> std::io::Result<()> {
    let bytes = record_bytes(args, m);
    let bench = cpu_seconds_per_gb(m.bench_cpu.as_secs_f64(), bytes);
    let broker = match (&m.broker_cpu, &m.broker_metrics_url) {
        (Ok(seconds), Some(url)) => format!(
            "broker {:.2} CPU-s per GB ({seconds:.2} s, from {url})",
            cpu_seconds_per_gb(*seconds, bytes)
        ),
        (Ok(seconds), None) => format!(
            "broker {:.2} CPU-s per GB",
            cpu_seconds_per_gb(*seconds, bytes)
        ),
        (Err(why), _) => format!("broker CPU: unknown ({why})"),
    };
    outln!(
        "CPU per GB of record bytes: bench {bench:.2} CPU-s ({:.2} s); {broker}",
        m.bench_cpu.as_secs_f64()
    )?;
    match m.send_floor {
        Some(floor) => outln!(
            "same run, the client's floor (copy each record into a {}-record request, CRC-32C it, write it to loopback; one thread, the least of three readings): {:.2} CPU-s per GB, so the bench spent {:.2}x it",
            args.records_per_request,
            floor.cpu_seconds_per_gb(),
            floor.multiple(bench)
        ),
        None => Ok(()),
    }
}

fn text_baseline(
    args: &BenchProduceArgs,
    m: &Measured,
    rate: Throughput,
    b: &Baseline,
) -> std::io::Result<()> {
    let (to_laid_out, to_log, to_raw) = ratios(rate.records_per_sec, b);
    outln!(
        "same run, {}-byte writes: write+fdatasync into a laid-out file (fio's way) {:.1} MB/s, appended to a new file {:.1} MB/s; the log's own appends {:.1} MB/s",
        b.batch_bytes,
        b.laid_out_bytes_per_sec / 1e6,
        b.raw_bytes_per_sec / 1e6,
        b.log_bytes_per_sec / 1e6,
    )?;
    if args.rate == 0 {
        outln!(
            "end to end = {to_laid_out:.2}x fio-style fsync'd writes, {to_log:.2}x the log's own appends, {to_raw:.2}x raw fsync'd appends"
        )?;
    } else {
        // A paced run's throughput is the rate asked for: a ratio to the disk's would read
        // as a tiny fraction and say nothing.
        outln!("end to end: paced by --rate, so no throughput ratio (run without --rate for one)")?;
    }
    let (p50_target, p99_target) = ack_targets(b, m.fsync_after.map(|(p, _)| p));
    outln!(
        "4 KiB write+fdatasync before the run ({} writes): {}",
        b.small_fsync_ops,
        b.small_fsync_latency.to_text()
    )?;
    if let Some((after, ops)) = m.fsync_after {
        outln!(
            "4 KiB write+fdatasync after the run ({ops} writes): {}",
            after.to_text()
        )?;
    }
    let verdict = if args.rate == 0 {
        "compare at a low --rate with --in-flight 1".to_string()
    } else {
        let mark = |value: f64, target: f64| if value <= target { "within" } else { "above" };
        format!(
            "this run: p50 {:.2} ms ({}), p99 {:.2} ms ({})",
            m.latency.p50,
            mark(m.latency.p50, p50_target),
            m.latency.p99,
            mark(m.latency.p99, p99_target)
        )
    };
    outln!(
        "ack targets (from the faster fsync reading): p50 <= fsync p50 + {ACK_P50_OVER_FSYNC_MS} ms = {p50_target:.2} ms, p99 <= fsync p99 + {ACK_P99_OVER_FSYNC_MS} ms = {p99_target:.2} ms; {verdict}"
    )?;
    if let Some(paced) = &m.fsync_paced {
        let (p50_over, p99_over) = paced.ack_over(&m.latency);
        let mark = |over: f64, allowed: f64| if over <= allowed { "within" } else { "above" };
        outln!(
            "4 KiB write+fdatasync paced as the run's sends (one every {:.2} ms, {} writes): {}",
            paced.interval.as_secs_f64() * 1e3,
            paced.writes,
            paced.latency.to_text()
        )?;
        outln!(
            "over the disk's own latency at this rate (the paced reading): ack p50 + {p50_over:.2} ms ({} {ACK_P50_OVER_FSYNC_MS} ms), p99 + {p99_over:.2} ms ({} {ACK_P99_OVER_FSYNC_MS} ms)",
            mark(p50_over, ACK_P50_OVER_FSYNC_MS),
            mark(p99_over, ACK_P99_OVER_FSYNC_MS)
        )?;
    }
    Ok(())
}

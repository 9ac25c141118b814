//! `cairn bench consume`: reads a topic from the earliest offset to the end offsets captured at
//! start through the client `Consumer` (decoded records) and reports records/s, MB/s and the
//! latency of each fetch round trip.
//!
//! With `--baseline-dir`, two limits are measured just before and just after the consume: the
//! log's own full decode of the same ranges (`read_baseline`, no network) and one bare
//! loopback TCP stream carrying the same batch bytes (`loopback_baseline`). The consume is
//! reported as a ratio to the faster reading of each: this shared machine's speed drifts, and
//! the faster reading makes the ratio the conservative one.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use cairn_client::{Admin, Consumer, Seek};
use clap::Args;
use serde_json::json;

use super::loopback_baseline::loopback_tcp;
use super::read_baseline::{Copies, Range, Reading};
use super::report::{
    Percentiles, Throughput, latency_histogram, progress, progress_done, record_latency,
};
use super::{OutputFormat, PROGRESS_INTERVAL};

/// `cairn bench consume` arguments.
#[derive(Debug, Args)]
pub struct BenchConsumeArgs {
    /// Topic to read (every partition).
    #[arg(long, default_value = "cairn-bench")]
    pub topic: String,
    /// The broker's data directory: the topic's partitions are copied from there and read
    /// with the log's own reader before and after the consume, for the ratio.
    #[arg(long, value_name = "DIR")]
    pub baseline_dir: Option<PathBuf>,
    /// Output format of the final report.
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
}

/// Runs `cairn bench consume`.
///
/// # Errors
/// An unreachable broker, an unknown topic, or a failed fetch.
pub async fn run(target: &crate::target::Target, args: BenchConsumeArgs) -> anyhow::Result<()> {
    let brokers = target.brokers.as_str();
    let topic = Admin::connect_with(brokers, target.timeouts())
        .await?
        .describe_topic(&args.topic)
        .await?;
    let partitions: Vec<i32> = topic.partitions.iter().map(|p| p.partition).collect();
    let mut consumer = Consumer::assign_with(
        brokers,
        &args.topic,
        &partitions,
        Seek::Earliest,
        target.timeouts(),
    )
    .await?;
    let ends: Vec<(i32, i64)> = consumer
        .list_offsets(&partitions, Seek::Latest)
        .await?
        .into_iter()
        .collect();
    let total: i64 = ends
        .iter()
        .map(|(p, end)| end - consumer.positions().get(p).copied().unwrap_or(0))
        .sum();
    if total <= 0 {
        bail!("topic {} holds no records to read", args.topic);
    }
    let ranges: Vec<Range> = ends
        .iter()
        .map(|&(partition, end)| Range {
            partition,
            start: consumer.positions().get(&partition).copied().unwrap_or(0),
            end,
        })
        .collect();
    let max_bytes = i64::from(cairn_client::POLL_MAX_BYTES);
    let copies = args
        .baseline_dir
        .as_ref()
        .map(|dir| Copies::make(dir, &args.topic, &ranges))
        .transpose()?;
    let before = copies.as_ref().map(|c| limits(c, max_bytes)).transpose()?;
    let mut histogram = latency_histogram()?;
    let (mut records, mut bytes) = (0_u64, 0_u64);
    let started = Instant::now();
    let mut last_progress = started;
    let behind = |consumer: &Consumer| {
        ends.iter()
            .any(|(p, end)| consumer.positions().get(p).is_some_and(|pos| pos < end))
    };
    while behind(&consumer) {
        let asked = Instant::now();
        let polled = consumer.poll(Duration::from_millis(500)).await?;
        record_latency(&mut histogram, asked.elapsed());
        for record in &polled {
            records += 1;
            bytes += (record.key.as_ref().map_or(0, |k| k.len())
                + record.value.as_ref().map_or(0, |v| v.len())) as u64;
        }
        if last_progress.elapsed() >= PROGRESS_INTERVAL {
            last_progress = Instant::now();
            progress(started.elapsed(), records, bytes, "");
        }
    }
    progress_done();
    let elapsed = started.elapsed();
    let rate = Throughput::of(records, bytes, elapsed);
    let latency = Percentiles::of(&histogram);
    let after = copies.as_ref().map(|c| limits(c, max_bytes)).transpose()?;
    let limits = before.zip(after).map(|(before, after)| Limits {
        full_decode: before.full_decode.max(after.full_decode),
        loopback: before.loopback.max(after.loopback),
    });
    match args.format {
        OutputFormat::Json => outln!(
            "{}",
            json!({
                "bench": "consume",
                "topic": args.topic,
                "records": records,
                "bytes": bytes,
                "seconds": elapsed.as_secs_f64(),
                "records_per_sec": rate.records_per_sec,
                "mb_per_sec": rate.mb_per_sec,
                "fetch_latency_ms": latency.to_json(),
                "baseline_full_decode_records_per_sec": limits.map(|l| l.full_decode),
                "ratio_to_full_decode": limits.map(|l| rate.records_per_sec / l.full_decode),
                "baseline_loopback_records_per_sec": limits.map(|l| l.loopback),
                "ratio_to_loopback": limits.map(|l| rate.records_per_sec / l.loopback),
            })
        )?,
        OutputFormat::Text => {
            outln!(
                "consumed {records} records ({:.1} MB) in {:.2} s: {:.0} records/s, {:.1} MB/s",
                bytes as f64 / 1e6,
                elapsed.as_secs_f64(),
                rate.records_per_sec,
                rate.mb_per_sec
            )?;
            outln!("fetch round trip: {}", latency.to_text())?;
            if let Some(limits) = limits {
                outln!(
                    "same run, faster of before and after: the log's own full decode {:.0} records/s, a bare loopback stream of the same bytes {:.0} records/s",
                    limits.full_decode,
                    limits.loopback
                )?;
                outln!(
                    "consume = {:.2}x the log's full decode, {:.2}x the loopback stream",
                    rate.records_per_sec / limits.full_decode,
                    rate.records_per_sec / limits.loopback
                )?;
            }
        }
    }
    Ok(())
}

/// The same run's limits for a consume, in records/s.
#[derive(Clone, Copy, Debug)]
struct Limits {
    /// The log's own full decode of the ranges.
    full_decode: f64,
    /// One loopback TCP stream carrying the ranges' batch bytes.
    loopback: f64,
}

/// Measures both limits once.
///
/// # Errors
/// A read the log refuses, or a loopback socket error.
fn limits(copies: &Copies, max_bytes: i64) -> anyhow::Result<Limits> {
    let full = copies.full_decode(max_bytes)?;
    let batches = copies.raw_batches(max_bytes)?;
    let loopback = loopback_tcp(batches.bytes, full.records)?.reading;
    let rate = |r: Reading| Throughput::of(r.records, r.bytes, r.elapsed).records_per_sec;
    Ok(Limits {
        full_decode: rate(full),
        loopback: rate(loopback),
    })
}

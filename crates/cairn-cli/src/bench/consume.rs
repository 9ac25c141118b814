//! `cairn bench consume`: reads a topic from the earliest offset to the end offsets captured at
//! start through the client `Consumer` (decoded records) and reports records/s, MB/s and the
//! latency of each fetch round trip.
//!
//! With `--baseline-dir`, the log's own full decode of the same ranges (`read_baseline`, no
//! network) is measured just before and just after the consume, and the consume is reported
//! as a ratio to the faster of the two: this shared machine's speed drifts, and the faster
//! reading makes the ratio the conservative one.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use cairn_client::{Admin, Consumer, Seek};
use clap::Args;
use serde_json::json;

use super::read_baseline::{Copies, Range};
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
pub async fn run(brokers: &str, args: BenchConsumeArgs) -> anyhow::Result<()> {
    let topic = Admin::connect(brokers)
        .await?
        .describe_topic(&args.topic)
        .await?;
    let partitions: Vec<i32> = topic.partitions.iter().map(|p| p.partition).collect();
    let mut consumer = Consumer::assign(brokers, &args.topic, &partitions, Seek::Earliest).await?;
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
    let copies = match &args.baseline_dir {
        Some(dir) => {
            eprintln!(
                "copying {} partitions of {} into {} ...",
                ranges.len(),
                args.topic,
                dir.display()
            );
            Some(Copies::make(dir, &args.topic, &ranges)?)
        }
        None => None,
    };
    let before = copies
        .as_ref()
        .map(|c| c.full_decode(max_bytes))
        .transpose()?;
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
    let after = copies
        .as_ref()
        .map(|c| c.full_decode(max_bytes))
        .transpose()?;
    let baseline = before.zip(after).map(|(before, after)| {
        let [before, after] =
            [before, after].map(|r| Throughput::of(r.records, r.bytes, r.elapsed).records_per_sec);
        before.max(after)
    });
    let ratio = baseline.map(|limit| rate.records_per_sec / limit);
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
                "baseline_full_decode_records_per_sec": baseline,
                "ratio_to_full_decode": ratio,
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
            if let (Some(limit), Some(ratio)) = (baseline, ratio) {
                outln!(
                    "the log's own full decode of the same ranges (faster of before and after): {limit:.0} records/s; consume / full decode = {ratio:.2}"
                )?;
            }
        }
    }
    Ok(())
}

//! `cairn bench consume`: reads a topic from the earliest offset to the end offsets captured at
//! start through the client `Consumer` (decoded records) and reports records/s, MB/s and the
//! latency of each fetch round trip.

use std::time::{Duration, Instant};

use anyhow::bail;
use cairn_client::{Admin, Consumer, Seek};
use clap::Args;
use serde_json::json;

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
        }
    }
    Ok(())
}

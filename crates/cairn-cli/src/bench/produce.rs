//! `cairn bench produce`: drives the real client `Producer` against a running broker and reports
//! records/s, MB/s and per-record latency percentiles, optionally next to the machine's raw
//! fsync'd write bandwidth and the log's own append rate measured in the same run.
//!
//! Latency is measured from a record's *intended* send time to its acknowledgement. At a fixed
//! `--rate` the intended time comes from the schedule, not from when `send` got to run, so a
//! stalled client or broker shows up in the percentiles instead of silently slowing the
//! schedule (the coordinated-omission trap). Without `--rate` it is the moment `send` was called.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use cairn_client::{
    Acks, Admin, ClientError, DeliveryFuture, ErrorCode, OutgoingRecord, Producer, ProducerConfig,
};
use clap::Args;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::mpsc;

use super::baseline::{self, Baseline};
use super::report::{
    Percentiles, Throughput, latency_histogram, progress, progress_done, record_latency,
};
use super::{OutputFormat, PROGRESS_INTERVAL};
use crate::produce::AckArg;

/// `cairn bench produce` arguments.
#[derive(Debug, Args)]
pub struct BenchProduceArgs {
    /// Topic to write; created with --partitions and --flush-policy if it does not exist.
    #[arg(long, default_value = "cairn-bench")]
    pub topic: String,
    /// Partitions of a topic the benchmark creates.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    /// flush.policy of a topic the benchmark creates: always, os or interval:MS.
    #[arg(long, default_value = "always")]
    pub flush_policy: String,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Records to send in all.
    #[arg(long, default_value_t = 200_000)]
    pub records: u64,
    /// Records per produce request (the client's batch size is set to fit exactly this many).
    #[arg(long, default_value_t = 64)]
    pub records_per_request: usize,
    /// Produce requests in flight per partition (at most 5: the producer is idempotent).
    #[arg(long, default_value_t = 5)]
    pub in_flight: usize,
    /// How many replicas must have each batch.
    #[arg(long, value_enum, default_value_t)]
    pub acks: AckArg,
    /// Records per second to offer (0: as fast as the broker takes them).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// How long a batch waits to fill before it is sent.
    #[arg(long, value_name = "MS", default_value_t = 5)]
    pub linger_ms: u64,
    /// Also measure raw write+fdatasync and the log's own append rate in a scratch directory
    /// here (put it on the broker's disk), and report the end-to-end figures as ratios.
    #[arg(long, value_name = "DIR")]
    pub baseline_dir: Option<PathBuf>,
    /// Output format of the final report.
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
}

/// What the collector saw.
struct Outcome {
    histogram: Histogram<u64>,
    acknowledged: u64,
    failed: u64,
    first_error: Option<ClientError>,
    finished: Instant,
}

/// Runs `cairn bench produce`.
///
/// # Errors
/// Bad arguments, an unreachable broker, or records that were not acknowledged.
pub async fn run(target: &crate::target::Target, args: BenchProduceArgs) -> anyhow::Result<()> {
    let brokers = target.brokers.as_str();
    if args.record_size == 0 || args.records == 0 || args.records_per_request == 0 {
        bail!("--record-size, --records and --records-per-request must be at least 1");
    }
    let baseline = match &args.baseline_dir {
        Some(dir) => {
            eprintln!(
                "measuring raw write+fdatasync and log appends in {} ...",
                dir.display()
            );
            let batch = baseline::sample_batch(args.records_per_request, args.record_size)?;
            Some(baseline::measure(
                dir,
                &batch,
                args.records_per_request.max(1),
            )?)
        }
        None => None,
    };
    ensure_topic(target, &args).await?;
    let value = Bytes::from(vec![b'x'; args.record_size]);
    let template = OutgoingRecord {
        value: Some(value),
        ..OutgoingRecord::default()
    };
    // The producer fills a batch by its own accounting of record size, so this holds exactly
    // --records-per-request records.
    let batch_size = args.records_per_request * template.buffered_size();
    let config = ProducerConfig {
        acks: match args.acks {
            AckArg::None => Acks::None,
            AckArg::Leader => Acks::Leader,
            AckArg::All => Acks::All,
        },
        batch_size,
        linger: Duration::from_millis(args.linger_ms),
        max_in_flight: args.in_flight,
        buffer_memory: (64 << 20_usize).max(batch_size * args.in_flight * 4),
        ..ProducerConfig::default()
    };
    let producer = Producer::connect(brokers, target.producer_config(config)).await?;
    let (deliveries, receiver) = mpsc::unbounded_channel();
    let started = Instant::now();
    let collector = tokio::spawn(collect(receiver, started, args.record_size as u64));
    // Deliveries go to the collector in chunks: a channel message per record would cost the
    // client more than the producer's own work on it. At a fixed rate each goes at once, so
    // the collector sees every record as soon as it is sent.
    let chunk_size = if args.rate == 0 { DELIVERY_CHUNK } else { 1 };
    let mut chunk = Vec::with_capacity(chunk_size);
    let mut sent = 0_u64;
    let mut last_clock = started;
    while sent < args.records {
        let due = if args.rate == 0 {
            args.records
        } else {
            let elapsed = started.elapsed().as_secs_f64();
            ((elapsed * args.rate as f64) as u64 + 1).min(args.records)
        };
        if due <= sent {
            hand_over(&deliveries, &mut chunk)?;
            let next = started + Duration::from_secs_f64(sent as f64 / args.rate as f64);
            wait_until(next).await;
            continue;
        }
        while sent < due {
            let intended = if args.rate == 0 {
                // Without a rate the send time is the intended time; a clock read per record
                // would be a visible share of the client's CPU, so it is read every few sends
                // (the records in between are sent within microseconds of it).
                if sent % CLOCK_READ_EVERY == 0 {
                    last_clock = Instant::now();
                }
                last_clock
            } else {
                started + Duration::from_secs_f64(sent as f64 / args.rate as f64)
            };
            let delivery = producer
                .send(&args.topic, template.clone())
                .await
                .with_context(|| format!("producing to {}", args.topic))?;
            chunk.push((intended, delivery));
            sent += 1;
            if chunk.len() >= chunk_size {
                hand_over(&deliveries, &mut chunk)?;
            }
            if args.rate == 0 && sent % 1024 == 0 {
                // Let the collector and the producer's task run between bursts.
                tokio::task::yield_now().await;
            }
        }
    }
    hand_over(&deliveries, &mut chunk)?;
    drop(deliveries);
    producer.flush().await?;
    let outcome = collector.await.context("the result collector failed")??;
    progress_done();
    let elapsed = outcome.finished.duration_since(started);
    report(&args, &outcome, elapsed, baseline)?;
    if let Some(error) = outcome.first_error {
        bail!(
            "{} of {} records were not acknowledged; the first failure: {error}",
            outcome.failed,
            args.records
        );
    }
    Ok(())
}

async fn ensure_topic(
    target: &crate::target::Target,
    args: &BenchProduceArgs,
) -> anyhow::Result<()> {
    let admin = Admin::connect_with(&target.brokers, target.timeouts()).await?;
    match admin.describe_topic(&args.topic).await {
        Ok(topic) => {
            eprintln!(
                "using the existing topic {} ({} partitions)",
                args.topic,
                topic.partitions.len()
            );
            Ok(())
        }
        Err(err) if err.code() == Some(ErrorCode::UnknownTopicOrPartition) => {
            let configs = HashMap::from([("flush.policy".to_string(), args.flush_policy.clone())]);
            admin
                .create_topic(&args.topic, args.partitions, 0, configs)
                .await
                .with_context(|| format!("creating the benchmark topic {}", args.topic))?;
            Ok(())
        }
        Err(err) => Err(err.into()),
    }
}

/// Waits until `instant`, to within the OS's timer slack (tens of microseconds).
///
/// Tokio's timer rounds a deadline up to its next millisecond tick, which would add up to a
/// millisecond to every record's measured latency at a fixed rate (the latency counts from the
/// scheduled time): at 200 records/s that is more than the broker's whole fsync. So the last
/// stretch is a thread sleep, off the runtime's workers.
async fn wait_until(instant: Instant) {
    const TIMER_TICK: Duration = Duration::from_millis(2);
    if let Some(early) = instant.checked_sub(TIMER_TICK)
        && Instant::now() < early
    {
        tokio::time::sleep_until(early.into()).await;
    }
    let left = instant.saturating_duration_since(Instant::now());
    if !left.is_zero() {
        tokio::task::block_in_place(|| std::thread::sleep(left));
    }
}

/// Records sent between two clock reads when no rate is set.
const CLOCK_READ_EVERY: u64 = 16;

/// Records handed to the collector at once when no rate is set.
const DELIVERY_CHUNK: usize = 256;

/// Deliveries sent, with the instant each was meant to be sent.
type Deliveries = Vec<(Instant, DeliveryFuture)>;

/// Passes the deliveries gathered so far to the collector.
fn hand_over(to: &mpsc::UnboundedSender<Deliveries>, chunk: &mut Deliveries) -> anyhow::Result<()> {
    if chunk.is_empty() {
        return Ok(());
    }
    let capacity = chunk.capacity();
    if to
        .send(std::mem::replace(chunk, Vec::with_capacity(capacity)))
        .is_err()
    {
        bail!("the benchmark's result collector stopped");
    }
    Ok(())
}

/// Awaits the deliveries in the order they were sent, recording each latency, and prints
/// progress.
///
/// In order, because a partition's records are acknowledged in order: awaiting the oldest
/// registers one waker per batch instead of one per record, which keeps the collector's cost
/// per record near nothing. With several partitions a record acknowledged before an older one
/// of another partition is counted when that one is, so its latency reads high, never low.
async fn collect(
    mut deliveries: mpsc::UnboundedReceiver<Deliveries>,
    started: Instant,
    record_size: u64,
) -> anyhow::Result<Outcome> {
    let mut histogram = latency_histogram()?;
    let mut pending: VecDeque<(Instant, DeliveryFuture)> = VecDeque::new();
    let (mut acknowledged, mut failed, mut first_error) = (0_u64, 0_u64, None);
    let mut open = true;
    let mut last_progress = Instant::now();
    std::future::poll_fn(|cx| {
        while open {
            match deliveries.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => pending.extend(chunk),
                Poll::Ready(None) => open = false,
                Poll::Pending => break,
            }
        }
        // One clock read per pass: the records a pass finds done were answered together.
        let mut done = None;
        while let Some((intended, delivery)) = pending.front_mut() {
            let Poll::Ready(result) = Pin::new(delivery).poll(cx) else {
                break;
            };
            let done = *done.get_or_insert_with(Instant::now);
            match result {
                Ok(_) => {
                    acknowledged += 1;
                    record_latency(&mut histogram, done.saturating_duration_since(*intended));
                }
                Err(err) => {
                    failed += 1;
                    first_error.get_or_insert(err);
                }
            }
            pending.pop_front();
            if done.duration_since(last_progress) >= PROGRESS_INTERVAL {
                last_progress = done;
                let p99 = Percentiles::of(&histogram).p99;
                progress(
                    started.elapsed(),
                    acknowledged,
                    acknowledged * record_size,
                    &format!("p99 {p99:.2} ms"),
                );
            }
        }
        if open || !pending.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    Ok(Outcome {
        histogram,
        acknowledged,
        failed,
        first_error,
        finished: Instant::now(),
    })
}

fn report(
    args: &BenchProduceArgs,
    outcome: &Outcome,
    elapsed: Duration,
    baseline: Option<Baseline>,
) -> std::io::Result<()> {
    let bytes = outcome.acknowledged * args.record_size as u64;
    let rate = Throughput::of(outcome.acknowledged, bytes, elapsed);
    let latency = Percentiles::of(&outcome.histogram);
    // Ratios compare records/s of the same record shape, so batch framing counts the same
    // on both sides.
    let ratios = baseline.map(|b| {
        (
            b,
            rate.records_per_sec / b.raw_records_per_sec().max(1e-9),
            rate.records_per_sec / b.log_records_per_sec().max(1e-9),
        )
    });
    match args.format {
        OutputFormat::Json => {
            let mut object = json!({
                "bench": "produce",
                "topic": args.topic,
                "records": outcome.acknowledged,
                "failed": outcome.failed,
                "seconds": elapsed.as_secs_f64(),
                "records_per_sec": rate.records_per_sec,
                "mb_per_sec": rate.mb_per_sec,
                "latency_ms": latency.to_json(),
                "settings": {
                    "record_size": args.record_size,
                    "records_per_request": args.records_per_request,
                    "in_flight": args.in_flight,
                    "acks": format!("{:?}", args.acks).to_lowercase(),
                    "rate": args.rate,
                    "linger_ms": args.linger_ms,
                },
            });
            if let Some((b, to_raw, to_log)) = ratios {
                object["baseline"] = json!({
                    "raw_fsync_mb_per_sec": b.raw_bytes_per_sec / 1e6,
                    "raw_fsync_records_per_sec": b.raw_records_per_sec(),
                    "log_append_mb_per_sec": b.log_bytes_per_sec / 1e6,
                    "log_append_records_per_sec": b.log_records_per_sec(),
                    "ratio_to_raw_fsync": to_raw,
                    "ratio_to_log_append": to_log,
                });
            }
            outln!("{object}")?;
        }
        OutputFormat::Text => {
            outln!(
                "produced {} records of {} bytes in {:.2} s: {:.0} records/s, {:.1} MB/s",
                outcome.acknowledged,
                args.record_size,
                elapsed.as_secs_f64(),
                rate.records_per_sec,
                rate.mb_per_sec
            )?;
            outln!("latency (intended send to ack): {}", latency.to_text())?;
            if let Some((b, to_raw, to_log)) = ratios {
                outln!(
                    "same run: raw write+fdatasync {:.0} records/s ({:.1} MB/s), log append {:.0} records/s ({:.1} MB/s)",
                    b.raw_records_per_sec(),
                    b.raw_bytes_per_sec / 1e6,
                    b.log_records_per_sec(),
                    b.log_bytes_per_sec / 1e6,
                )?;
                outln!(
                    "end to end = {to_raw:.2}x raw fsync'd writes, {to_log:.2}x the log's own appends"
                )?;
            }
            if outcome.failed > 0 {
                outln!("{} records failed", outcome.failed)?;
            }
        }
    }
    Ok(())
}

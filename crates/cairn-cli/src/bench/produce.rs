//! `cairn bench produce`: drives the real client `Producer` against a running broker and reports
//! records/s, MB/s, per-record latency percentiles and CPU-seconds per GB at both ends,
//! optionally next to the machine's disk limits measured in the same run (`baseline`).
//!
//! Latency is measured from a record's *intended* send time to its acknowledgement. At a fixed
//! `--rate` the intended time comes from the schedule, not from when `send` got to run, so a
//! stalled client or broker shows up in the percentiles instead of silently slowing the
//! schedule (the coordinated-omission trap). Without `--rate` it is the moment `send` was
//! called, so the figure includes the wait in the producer's buffer.
//!
//! Order matters: every flag is checked (`produce_flags`) and the topic looked up before the
//! baseline writes anything or the topic is created, so a run that cannot work leaves nothing
//! behind.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cairn_client::{
    Admin, ClientError, DeliveryFuture, ErrorCode, Producer, ProducerConfig, ProducerStats,
};
use clap::Args;
use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;

use super::baseline::{self, Baseline};
use super::broker_cpu::MetricsEndpoint;
use super::cpu_ceiling::process_cpu_time;
use super::fsync_baseline;
use super::pacer::Pacer;
use super::produce_flags::{check_batch_fits, check_flags, record_template};
use super::produce_report::{Measured, PacedFsync, report};
use super::producers_held;
use super::report::{Percentiles, latency_histogram, progress, progress_done, record_latencies};
use super::send_floor;
use super::{OutputFormat, PROGRESS_INTERVAL};
use crate::produce::AckArg;

/// `cairn bench produce` arguments.
#[derive(Debug, Args)]
pub struct BenchProduceArgs {
    /// Topic to write; created with --partitions and --flush-policy if it does not exist.
    #[arg(long, default_value = "cairn-bench")]
    pub topic: String,
    /// Partitions of a topic the benchmark creates (1 to 1024).
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
    /// Produce requests in flight per partition: 1 to 5 (the producer is idempotent), or up to
    /// 1024 with --acks none.
    #[arg(long, default_value_t = 5)]
    pub in_flight: usize,
    /// How many replicas must have each batch.
    #[arg(long, value_enum, default_value_t)]
    pub acks: AckArg,
    /// Records per second to offer, up to 10,000,000 (0: as fast as the broker takes them; the
    /// latency then mostly measures the producer's queue).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// How long a batch waits to fill before it is sent (0 to 60000).
    #[arg(long, value_name = "MS", default_value_t = 5)]
    pub linger_ms: u64,
    /// Also measure, in a scratch directory here (put it on the broker's disk), write+fdatasync
    /// of each request's batch (appended, and into a laid-out file as fio does), 4 KiB
    /// write+fdatasync latency, and the log's own appends; report the end-to-end figures as
    /// ratios and latency targets.
    #[arg(long, value_name = "DIR")]
    pub baseline_dir: Option<PathBuf>,
    /// Before the run, this many other idempotent producers (0 to 100,000) each write one
    /// record to every partition, so that the partitions hold that many producers' state, as
    /// a long-lived topic's do (every client restart is a new producer id).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub producers_held: u64,
    /// The broker's HTTP metrics, for its CPU time: http://HOST:PORT[/PATH]. Default: port
    /// 7071 on the --broker host when --broker is one address on port 7070 (a `cairn serve`
    /// without flags); otherwise the broker's CPU is reported as unknown.
    #[arg(long, value_name = "URL", value_parser = MetricsEndpoint::parse)]
    pub broker_metrics: Option<MetricsEndpoint>,
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
/// A flag out of range (a usage error, before anything is created), an unreachable broker,
/// a baseline that cannot write its scratch files, or records that were not acknowledged.
pub async fn run(target: &crate::target::Target, args: BenchProduceArgs) -> anyhow::Result<()> {
    let config = check_flags(&args)?;
    let admin = Admin::connect_with(&target.brokers, target.timeouts()).await?;
    let existing = existing_topic(&admin, &args).await?;
    check_batch_fits(&args, existing.as_ref().and_then(|t| t.max_message_bytes))?;
    let baseline = match &args.baseline_dir {
        Some(dir) => Some(measure_baseline(dir, &args)?),
        None => None,
    };
    let send_floor = match &args.baseline_dir {
        Some(_) => Some(
            send_floor::measure(
                send_floor::FLOOR_RECORD_BYTES,
                args.record_size,
                args.records_per_request,
            )
            .context("measuring the client's send floor over loopback")?,
        ),
        None => None,
    };
    let partitions = match existing {
        Some(topic) => {
            eprintln!(
                "using the existing topic {} ({} partitions)",
                args.topic, topic.partitions
            );
            // The broker caps a topic at 1,024 partitions.
            i32::try_from(topic.partitions).unwrap_or(i32::MAX)
        }
        None => {
            create_topic(&admin, &args).await?;
            args.partitions
        }
    };
    producers_held::register(
        &target.brokers,
        target.producer_config(ProducerConfig::default()),
        &args.topic,
        partitions,
        args.producers_held,
    )
    .await?;
    let metrics = MetricsEndpoint::resolve(args.broker_metrics.as_ref(), &target.brokers);
    let broker_cpu_before = broker_cpu_seconds(&metrics, &args.topic).await;
    let bench_cpu_before = process_cpu_time()?;
    let buffer_memory = config.buffer_memory;
    let producer = Producer::connect(&target.brokers, target.producer_config(config)).await?;
    let started = Instant::now();
    let outcome = produce_all(&producer, &args, started).await?;
    let bench_cpu = process_cpu_time()?.saturating_sub(bench_cpu_before);
    let broker_cpu_after = broker_cpu_seconds(&metrics, &args.topic).await;
    let fsync_after = match &args.baseline_dir {
        Some(dir) => Some(fsync_baseline::small_write_latency_in(dir)?),
        None => None,
    };
    let fsync_paced = match &args.baseline_dir {
        Some(dir) => paced_fsync(dir, args.rate)?,
        None => None,
    };
    let broker_cpu = broker_cpu_before
        .and_then(|before| broker_cpu_after.map(|after| (after - before).max(0.0)));
    let measured = Measured {
        acknowledged: outcome.acknowledged,
        failed: outcome.failed,
        elapsed: outcome.finished.duration_since(started),
        latency: Percentiles::of(&outcome.histogram),
        service_time: service_time(&producer),
        buffer_memory,
        bench_cpu,
        broker_cpu,
        broker_metrics_url: metrics.as_ref().ok().map(MetricsEndpoint::url),
        baseline,
        fsync_after,
        fsync_paced,
        send_floor,
    };
    report(&args, &measured)?;
    if let Some(error) = outcome.first_error {
        bail!(
            "{} of {} records were not acknowledged; the first failure: {error}",
            outcome.failed,
            args.records
        );
    }
    Ok(())
}

/// The fastest rate (sends per second) at which the paced fsync reading is taken: above it
/// sends are under a millisecond apart, the disk is never idle for long, and the back-to-back
/// reading already says what it gives.
const PACED_FSYNC_MAX_RATE: u64 = 1_000;

/// The disk's own 4 KiB write+fdatasync latency with writes spaced as a paced run's sends
/// (`rate` per second), or `None` when the run is not paced slowly enough for it to differ.
fn paced_fsync(dir: &std::path::Path, rate: u64) -> anyhow::Result<Option<PacedFsync>> {
    if rate == 0 || rate > PACED_FSYNC_MAX_RATE {
        return Ok(None);
    }
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let (latency, writes) = fsync_baseline::paced_small_write_latency_in(dir, interval)?;
    Ok(Some(PacedFsync {
        latency,
        writes,
        interval,
    }))
}

/// The produce requests' round trips as the producer measured them (to within 6.25%).
fn service_time(producer: &Producer) -> Option<Percentiles> {
    let stats = producer.stats();
    let ms = |q: f64| {
        stats
            .round_trip_quantile(q)
            .map(|d| d.as_secs_f64() * 1000.0)
    };
    Some(Percentiles {
        p50: ms(0.50)?,
        p99: ms(0.99)?,
        p999: ms(0.999)?,
        max: ms(1.0)?,
    })
}

/// The broker's CPU seconds so far, read off the runtime's workers.
async fn broker_cpu_seconds(
    endpoint: &Result<MetricsEndpoint, String>,
    topic: &str,
) -> Result<f64, String> {
    let endpoint = endpoint.clone()?;
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || endpoint.cpu_seconds(&topic))
        .await
        .map_err(|err| format!("the metrics scrape failed: {err}"))?
}

fn measure_baseline(dir: &std::path::Path, args: &BenchProduceArgs) -> anyhow::Result<Baseline> {
    eprintln!(
        "measuring write+fdatasync (appended, and into a laid-out file), 4 KiB fsync latency and log appends in {} ...",
        dir.display()
    );
    let batch = baseline::sample_batch(args.records_per_request, args.record_size)?;
    baseline::measure(dir, &batch, args.records_per_request)
}

/// What the run needs to know of a topic that already exists.
struct ExistingTopic {
    partitions: usize,
    /// Its `max.message.bytes`, if the broker reported one that parses.
    max_message_bytes: Option<u64>,
}

/// The topic, if it exists. Creates nothing.
async fn existing_topic(
    admin: &Admin,
    args: &BenchProduceArgs,
) -> anyhow::Result<Option<ExistingTopic>> {
    match admin.describe_topic(&args.topic).await {
        Ok(topic) => Ok(Some(ExistingTopic {
            partitions: topic.partitions.len(),
            max_message_bytes: topic
                .configs
                .get("max.message.bytes")
                .and_then(|v| v.parse().ok()),
        })),
        Err(err) if err.code() == Some(ErrorCode::UnknownTopicOrPartition) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

async fn create_topic(admin: &Admin, args: &BenchProduceArgs) -> anyhow::Result<()> {
    let configs = HashMap::from([("flush.policy".to_string(), args.flush_policy.clone())]);
    admin
        .create_topic(&args.topic, args.partitions, 0, configs)
        .await
        .with_context(|| format!("creating the benchmark topic {}", args.topic))?;
    Ok(())
}

/// Sends `--records` records on the schedule and waits for every result.
async fn produce_all(
    producer: &Producer,
    args: &BenchProduceArgs,
    started: Instant,
) -> anyhow::Result<Outcome> {
    let template = record_template(args.record_size);
    let (deliveries, receiver) = mpsc::unbounded_channel();
    let collector = tokio::spawn(collect(
        receiver,
        producer.clone(),
        started,
        args.record_size as u64,
    ));
    // Deliveries go to the collector in chunks (a channel message per record would cost the
    // client more than the producer's own work on it), before each wait at a fixed rate.
    let mut chunk = Vec::with_capacity(DELIVERY_CHUNK);
    let mut sent = 0_u64;
    let mut last_clock = started;
    let pacer =
        (args.rate > 0).then(|| Pacer::new(Duration::from_secs_f64(1.0 / args.rate as f64)));
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
            if let Some(pacer) = &pacer {
                pacer.wait_until(next).await;
            }
            continue;
        }
        while sent < due {
            let intended = if args.rate == 0 {
                // Without a rate the send time is the intended time; a clock read per record
                // would be a visible share of the client's CPU, so it is read every few sends
                // (the records in between are sent within microseconds of it).
                if sent.is_multiple_of(CLOCK_READ_EVERY) {
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
            if chunk.len() >= DELIVERY_CHUNK {
                hand_over(&deliveries, &mut chunk)?;
            }
            if args.rate == 0 && sent.is_multiple_of(1024) {
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
    Ok(outcome)
}

/// Records sent between two clock reads when no rate is set.
const CLOCK_READ_EVERY: u64 = 16;

/// Most records handed to the collector at once.
const DELIVERY_CHUNK: usize = 256;

/// How often the collector looks for new deliveries and answered records.
///
/// The collector is not woken by a hand-over: waking it right after a send put it in the
/// worker's next-task slot, which pushed the new request's task out to the shared queue, and
/// Tokio woke the other worker to steal it, so every request at 200/s waited for a thread
/// wake-up before its write (perf trace: a futex wake, then the write ~0.1 ms later from the
/// other thread). Its figures do not depend on when it looks: each latency is read from when
/// the producer had the answer ([`DeliveryFuture::answered_at`]), as Kafka's
/// `producer-perf-test` reads it in the record's callback on the producer's I/O thread.
const COLLECT_EVERY: Duration = Duration::from_millis(10);

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
    producer: Producer,
    started: Instant,
    record_size: u64,
) -> anyhow::Result<Outcome> {
    let mut histogram = latency_histogram()?;
    let mut pending: VecDeque<(Instant, DeliveryFuture)> = VecDeque::new();
    let (mut acknowledged, mut failed, mut first_error) = (0_u64, 0_u64, None);
    let mut open = true;
    // Looked at on each tick, not on each answer: when nothing is answered (a full disk, a
    // broker gone) the line must still say so, and why.
    let mut next_progress = Instant::now() + PROGRESS_INTERVAL;
    let mut last_answer: Option<Instant> = None;
    let mut same_latency = SameLatency::default();
    let mut ticks = tokio::time::interval(COLLECT_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    std::future::poll_fn(|cx| {
        // Polled until pending, so the next tick wakes this task; nothing else does.
        while ticks.poll_tick(cx).is_ready() {}
        while open {
            match deliveries.try_recv() {
                Ok(chunk) => pending.extend(chunk),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        while let Some((intended, delivery)) = pending.front_mut() {
            // Read before polling, so an unanswered record leaves no waker for its answer to
            // wake (see COLLECT_EVERY).
            let Some(done) = delivery.answered_at() else {
                break;
            };
            let Poll::Ready(result) = Pin::new(delivery).poll(cx) else {
                break;
            };
            match result {
                Ok(_) => {
                    acknowledged += 1;
                    same_latency.add(*intended, done, &mut histogram);
                }
                Err(err) => {
                    failed += 1;
                    first_error.get_or_insert(err);
                }
            }
            pending.pop_front();
            last_answer = last_answer.max(Some(done));
        }
        let now = Instant::now();
        if now >= next_progress {
            next_progress = now + PROGRESS_INTERVAL;
            same_latency.flush(&mut histogram);
            let p99 = Percentiles::of(&histogram).p99;
            progress(
                started.elapsed(),
                acknowledged,
                acknowledged * record_size,
                &progress_note(p99, failed, &producer.stats(), now),
            );
        }
        if open || !pending.is_empty() {
            Poll::Pending
        } else {
            same_latency.flush(&mut histogram);
            Poll::Ready(())
        }
    })
    .await;
    Ok(Outcome {
        histogram,
        acknowledged,
        failed,
        first_error,
        // The last answer, not the collector's last look, which may come a tick later.
        finished: last_answer.unwrap_or_else(Instant::now),
    })
}

/// Longest request error shown on the progress line, in characters.
const PROGRESS_ERROR_CHARS: usize = 120;

/// The end of a progress line: the ack p99 so far, the records that failed for good, and
/// while requests are failing (the producer retries them until the delivery timeout, two
/// minutes by default) the latest failure, so that a full disk or a lost broker reads as that
/// and not as a stall.
fn progress_note(p99: f64, failed: u64, stats: &ProducerStats, now: Instant) -> String {
    let mut note = format!("p99 {p99:.2} ms");
    if failed > 0 {
        note.push_str(&format!(" | {failed} records failed"));
    }
    if let Some(failure) = stats.last_failure()
        && now.saturating_duration_since(failure.at) < 2 * PROGRESS_INTERVAL
    {
        let error: String = failure.error.chars().take(PROGRESS_ERROR_CHARS).collect();
        note.push_str(&format!(" | requests failing, retried: {error}"));
    }
    note
}

/// Acknowledged records counted into the latency histogram a run at a time: the records of one
/// batch share their answer's instant, and without `--rate` every [`CLOCK_READ_EVERY`] records
/// share their intended send time, so most records repeat the one before. One histogram entry
/// per run instead of a subtraction of instants and an entry per record took a fifth off the
/// collector's cost, which the bench's CPU figure includes.
#[derive(Default)]
struct SameLatency {
    /// The run's intended send time, its answer's instant, and how many records it holds.
    run: Option<(Instant, Instant, u64)>,
}

impl SameLatency {
    /// Counts a record meant to go at `intended` and answered at `done`.
    fn add(&mut self, intended: Instant, done: Instant, histogram: &mut Histogram<u64>) {
        match &mut self.run {
            Some((run_intended, run_done, count))
                if *run_intended == intended && *run_done == done =>
            {
                *count += 1;
            }
            _ => {
                self.flush(histogram);
                self.run = Some((intended, done, 1));
            }
        }
    }

    /// Puts the run counted so far into `histogram`.
    fn flush(&mut self, histogram: &mut Histogram<u64>) {
        if let Some((intended, done, count)) = self.run.take() {
            record_latencies(histogram, done.saturating_duration_since(intended), count);
        }
    }
}

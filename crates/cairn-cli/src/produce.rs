//! `cairn produce TOPIC`: one record per stdin line (`KEY SEP VALUE` with `--key-separator`, or
//! a JSON object with `--format json`, see `record_input`), through the client's [`Producer`]:
//! batched per partition, pipelined, idempotent (so retries keep each key's order and write
//! nothing twice). Exits 0 only when every record was acknowledged.
//!
//! A failure (a bad line, a record the broker refused) stops reading input, waits for every
//! record already sent, and then says how many were acknowledged and up to which line every
//! record was, so the input can be resumed after that line without writing anything twice.
//!
//! While a record waits for its answer longer than [`WAIT_NOTICE_EVERY`] (a leader change, an
//! unreachable broker), a line on stderr says so and what the latest failed request was told,
//! since the producer retries in silence until `--timeout`.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use cairn_client::{
    Acks, ClientError, Compression, DeliveryFuture, Placement, Producer, ProducerConfig,
    RequestFailure,
};
use clap::{Args, ValueEnum};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::encoding::Encoding;
use crate::record_input::RecordInput;
use crate::target::Target;
use crate::usage_error::{usage, usage_bail};

/// Most records whose results are awaited at once; past it, reading stdin waits for the oldest.
/// The producer's buffer bounds memory too; this bounds the bookkeeping of line numbers.
pub const RESULTS_IN_FLIGHT: usize = 100_000;

/// How long the oldest record waits for its answer before stderr says what it waits for, and
/// how often it says so again.
const WAIT_NOTICE_EVERY: Duration = Duration::from_secs(2);

/// Acknowledgement levels on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum AckArg {
    /// Wait for nothing.
    None,
    /// Wait for the leader.
    Leader,
    /// Wait for every in-sync replica (with one node: the leader).
    #[default]
    All,
}

/// How stdin is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// One record per line: the value, or KEY SEP VALUE with --key-separator.
    #[default]
    Text,
    /// One JSON object per line: {"key", "value" (null: a tombstone), "headers" ({k: v} or
    /// [[k, v], ...]), "partition", "timestamp" (ms or ISO-8601)}; reads `consume --format json`.
    Json,
}

/// `cairn produce` arguments.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// The topic.
    pub topic: String,
    /// Input format.
    #[arg(long, value_enum, default_value_t)]
    pub format: InputFormat,
    /// Split each text line at the first SEP into key and value (default: no key).
    #[arg(long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// How keys are written in the input: text (the bytes as they are), base64 or hex.
    #[arg(long, value_enum, default_value_t, value_name = "ENCODING")]
    pub key_encoding: Encoding,
    /// How values, and header values in JSON input, are written: text, base64 or hex.
    #[arg(long, value_enum, default_value_t, value_name = "ENCODING")]
    pub value_encoding: Encoding,
    /// Send every record to this partition (default: Kafka's partitioner by key).
    #[arg(long)]
    pub partition: Option<i32>,
    /// How many replicas must have each record before it counts as produced.
    #[arg(long, value_enum, default_value_t)]
    pub acks: AckArg,
    /// A header added to every record (as text), repeatable.
    #[arg(long = "header", value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// Batch compression: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    pub compression: Compression,
    /// How long a batch waits for more records while its partition has a request in flight
    /// (Kafka's linger.ms); a partition with nothing in flight sends at once.
    #[arg(long, value_name = "MS", default_value_t = 5)]
    pub linger_ms: u64,
    /// Bytes of records that fill a batch (Kafka's batch.size; the library's default).
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024)]
    pub batch_size: usize,
}

fn parse_compression(name: &str) -> Result<Compression, String> {
    Compression::from_name(name)
        .ok_or_else(|| format!("unknown compression {name:?}: use none, gzip, snappy, lz4 or zstd"))
}

/// Runs `cairn produce`.
///
/// # Errors
/// A bad flag (a usage error), a malformed line, an unreachable or silent broker, or a record
/// the broker did not acknowledge; each says how much was acknowledged first.
pub async fn run(target: &Target, args: ProduceArgs) -> anyhow::Result<()> {
    let headers: Vec<(String, Option<Bytes>)> = args
        .headers
        .iter()
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| usage(format!("--header {pair:?} is not KEY=VALUE")))?;
            Ok((key.to_string(), Some(Bytes::from(value.to_string()))))
        })
        .collect::<anyhow::Result<_>>()?;
    if args.key_separator.as_deref() == Some("") {
        usage_bail!("--key-separator must not be empty");
    }
    if args.partition.is_some_and(|p| p < 0) {
        usage_bail!("--partition must not be negative");
    }
    if args.format == InputFormat::Json && args.key_separator.is_some() {
        usage_bail!("--key-separator applies to text input, not --format json");
    }
    let input = RecordInput {
        json: args.format == InputFormat::Json,
        key_separator: args.key_separator.as_ref().map(|s| s.as_bytes().to_vec()),
        key_encoding: args.key_encoding,
        value_encoding: args.value_encoding,
    };
    let config = ProducerConfig {
        acks: match args.acks {
            AckArg::None => Acks::None,
            AckArg::Leader => Acks::Leader,
            AckArg::All => Acks::All,
        },
        compression: args.compression,
        linger: Duration::from_millis(args.linger_ms),
        batch_size: args.batch_size,
        buffer_memory: (32 << 20_usize).max(args.batch_size.saturating_mul(4)),
        ..ProducerConfig::default()
    };
    let producer = Producer::connect(&target.brokers, target.producer_config(config)).await?;
    let mut tally = Tally::default();
    let stopped = send_lines(&producer, &args, &input, &headers, &mut tally).await;
    // Whatever stopped the input, every record already sent gets its answer before the
    // report, so the count of acknowledged records is exact.
    while !tally.results.is_empty() {
        tally.await_oldest(&producer).await;
    }
    match (stopped, tally.first_failure.take()) {
        (Ok(()), None) => {
            eprintln!("produced {} records to {}", tally.acknowledged, args.topic);
            Ok(())
        }
        // One line: the cause first, then what was written, which a script resuming the input
        // needs whatever the cause.
        (Err(err), _) => Err(anyhow::anyhow!(
            "{}; {}",
            crate::one_line(&target.explain(err)),
            tally.summary(&args.topic)
        )),
        (Ok(()), Some((line, err))) => Err(anyhow::anyhow!(
            "the record on line {line} was not produced to {}: {}; {}",
            args.topic,
            crate::one_line(&target.explain(err.into())),
            tally.summary(&args.topic)
        )),
    }
}

/// Reads stdin and sends one record per line, until the input ends, a line is bad, or a
/// record has failed.
async fn send_lines(
    producer: &Producer,
    args: &ProduceArgs,
    input: &RecordInput,
    headers: &[(String, Option<Bytes>)],
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    let mut line_number = 0_usize;
    // Input may pause for long (`tail -f | cairn produce`): a record that waits meanwhile is
    // still told about.
    let mut ticks = tokio::time::interval(WAIT_NOTICE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while tally.first_failure.is_none() {
        line.clear();
        let read = loop {
            tokio::select! {
                // Cancel-safe as used: bytes read before a tick stay in `line`, and the next
                // call appends the rest of the line.
                read = stdin.read_until(b'\n', &mut line) => break read,
                _ = ticks.tick() => {
                    tally.count_answered();
                    if tally.first_failure.is_some() {
                        // A record failed: stop reading even while the input is idle.
                        return Ok(());
                    }
                    tally.notice_waiting(producer, Instant::now());
                }
            }
        };
        if read.context("reading stdin")? == 0 {
            break;
        }
        line_number += 1;
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let Some(mut record) = input
            .parse(text)
            .map_err(|why| anyhow::anyhow!("line {line_number}: {why}"))?
        else {
            tally.skipped(line_number);
            continue;
        };
        let chosen_by_line = record.partition;
        record.partition = record.partition.or(args.partition);
        record.headers.extend(headers.iter().cloned());
        let delivery = producer.send(&args.topic, record).await.with_context(|| {
            match chosen_by_line {
                // `consume --format json` writes each record's partition, so piping it into
                // another topic (a dead-letter topic with fewer partitions) lands here.
                Some(partition) => format!(
                    "producing line {line_number} to {} (its \"partition\": {partition} chose the \
                     partition; drop the field, e.g. with jq -c 'del(.partition)', to let the \
                     key choose)",
                    args.topic
                ),
                None => format!("producing line {line_number} to {}", args.topic),
            }
        })?;
        tally
            .results
            .push_back((line_number, Instant::now(), delivery));
        while tally.results.len() >= RESULTS_IN_FLIGHT {
            tally.await_oldest(producer).await;
        }
    }
    Ok(())
}

/// The line `produce` prints while the record on `line` has waited since `since`, naming the
/// latest failed request if it failed while this record waited (an older one says nothing
/// about this wait).
fn waiting_notice(
    line: usize,
    since: Instant,
    failure: Option<&RequestFailure>,
    now: Instant,
) -> String {
    let waited = now.saturating_duration_since(since).as_secs();
    let cause = match failure {
        Some(failure) if failure.at + WAIT_NOTICE_EVERY >= since => format!(
            "the latest request failed {:.1} s ago at {}: {}",
            now.saturating_duration_since(failure.at).as_secs_f64(),
            failure.broker,
            failure.error.replace('\n', " ")
        ),
        _ => "no request has failed; the broker has not answered yet".to_string(),
    };
    format!("waiting {waited} s for the answer to line {line}, retrying until --timeout; {cause}")
}

/// What happened to the records sent so far.
#[derive(Default)]
struct Tally {
    /// Records sent and not yet counted, in line order: line, when sent, answer.
    results: VecDeque<(usize, Instant, DeliveryFuture)>,
    /// When stderr last said what a record waits for.
    last_notice: Option<Instant>,
    acknowledged: usize,
    failed: usize,
    /// The first record that failed: its line and why.
    first_failure: Option<(usize, ClientError)>,
    /// Every line up to this one was acknowledged (or skipped), while no record failed.
    done_through: usize,
}

impl Tally {
    /// Waits for the oldest outstanding record and counts its answer.
    async fn await_oldest(&mut self, producer: &Producer) {
        let result = loop {
            let Some((_, _, delivery)) = self.results.front_mut() else {
                return;
            };
            let waited = tokio::time::timeout(WAIT_NOTICE_EVERY, delivery).await;
            match waited {
                Ok(result) => break result,
                Err(_) => self.notice_waiting(producer, Instant::now()),
            }
        };
        if let Some((line, _, _)) = self.results.pop_front() {
            self.count(line, result);
        }
    }

    /// Counts the records at the front that have their answers, without waiting.
    fn count_answered(&mut self) {
        while let Some((_, _, delivery)) = self.results.front_mut() {
            if delivery.answered_at().is_none() {
                return;
            }
            // Answered, so ready at the first poll; the waker is never called.
            let mut context = Context::from_waker(Waker::noop());
            let Poll::Ready(result) = Pin::new(delivery).poll(&mut context) else {
                return;
            };
            if let Some((line, _, _)) = self.results.pop_front() {
                self.count(line, result);
            }
        }
    }

    /// Counts the answer of the record on `line`.
    fn count(&mut self, line: usize, result: Result<Placement, ClientError>) {
        match result {
            Ok(_) => {
                self.acknowledged += 1;
                if self.first_failure.is_none() {
                    self.done_through = line;
                }
            }
            Err(err) => {
                self.failed += 1;
                if self.first_failure.is_none() {
                    self.first_failure = Some((line, err));
                }
            }
        }
    }

    /// Says on stderr what the oldest unanswered record waits for, once it has waited
    /// [`WAIT_NOTICE_EVERY`], and again at most that often.
    fn notice_waiting(&mut self, producer: &Producer, now: Instant) {
        let Some((line, sent, delivery)) = self.results.front() else {
            return;
        };
        let quiet = self
            .last_notice
            .is_some_and(|last| now.saturating_duration_since(last) < WAIT_NOTICE_EVERY);
        if delivery.answered_at().is_some()
            || now.saturating_duration_since(*sent) < WAIT_NOTICE_EVERY
            || quiet
        {
            return;
        }
        let stats = producer.stats();
        eprintln!(
            "{}",
            waiting_notice(*line, *sent, stats.last_failure(), now)
        );
        self.last_notice = Some(now);
    }

    /// A blank line that carried no record.
    fn skipped(&mut self, line: usize) {
        if self.results.is_empty() && self.first_failure.is_none() {
            self.done_through = line;
        }
    }

    /// How much was written, for an error message.
    fn summary(&self, topic: &str) -> String {
        let failed = if self.failed > 0 {
            format!(", {} failed", self.failed)
        } else {
            String::new()
        };
        let resume = if self.done_through == 0 {
            "resume from line 1".to_string()
        } else {
            format!(
                "every record up to line {} was, resume after it",
                self.done_through
            )
        };
        format!(
            "{} records were acknowledged by {topic}{failed} ({resume})",
            self.acknowledged
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(at: Instant) -> RequestFailure {
        RequestFailure {
            at,
            broker: "127.0.0.1:7173".to_string(),
            error: "not the leader\nof orders-0".to_string(),
        }
    }

    #[test]
    fn a_wait_names_the_failure_that_happened_during_it() {
        let since = Instant::now();
        let now = since + Duration::from_secs(4);
        let notice = waiting_notice(
            12,
            since,
            Some(&failure(since + Duration::from_secs(3))),
            now,
        );
        assert_eq!(
            notice,
            "waiting 4 s for the answer to line 12, retrying until --timeout; the latest request \
             failed 1.0 s ago at 127.0.0.1:7173: not the leader of orders-0"
        );
    }

    #[test]
    fn a_failure_long_before_the_wait_is_not_blamed_for_it() {
        let old = Instant::now();
        let since = old + Duration::from_secs(60);
        let notice = waiting_notice(3, since, Some(&failure(old)), since + WAIT_NOTICE_EVERY);
        assert!(notice.ends_with("no request has failed; the broker has not answered yet"));
        let notice = waiting_notice(3, since, None, since + WAIT_NOTICE_EVERY);
        assert!(notice.starts_with("waiting 2 s for the answer to line 3"));
    }
}

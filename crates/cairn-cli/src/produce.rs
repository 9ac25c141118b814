//! `cairn produce TOPIC`: one record per stdin line (`KEY SEP VALUE` with `--key-separator`),
//! through the client's [`Producer`]: batched per partition, pipelined, idempotent (so retries
//! keep each key's order and write nothing twice). Exits 0 only when every record was
//! acknowledged; otherwise names the first record that failed and why.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use cairn_client::{Acks, Compression, DeliveryFuture, OutgoingRecord, Producer, ProducerConfig};
use clap::{Args, ValueEnum};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Most records whose results are awaited at once; past it, reading stdin waits for the oldest.
/// The producer's buffer bounds memory too; this bounds the bookkeeping of line numbers.
pub const RESULTS_IN_FLIGHT: usize = 100_000;

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

/// `cairn produce` arguments.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// The topic.
    pub topic: String,
    /// Split each line at the first SEP into key and value (default: no key).
    #[arg(long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// Send every record to this partition (default: Kafka's partitioner by key).
    #[arg(long)]
    pub partition: Option<i32>,
    /// How many replicas must have each record before it counts as produced.
    #[arg(long, value_enum, default_value_t)]
    pub acks: AckArg,
    /// A header added to every record, repeatable.
    #[arg(long = "header", value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// Batch compression: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    pub compression: Compression,
    /// How long a batch waits for more records before it is sent (Kafka's linger.ms).
    #[arg(long, value_name = "MS", default_value_t = 5)]
    pub linger_ms: u64,
    /// Bytes of records that fill a batch (Kafka's batch.size).
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    pub batch_size: usize,
}

fn parse_compression(name: &str) -> Result<Compression, String> {
    Compression::from_name(name)
        .ok_or_else(|| format!("unknown compression {name:?}: use none, gzip, snappy, lz4 or zstd"))
}

/// Runs `cairn produce`.
///
/// # Errors
/// A malformed line or header, an unreachable broker, or a record the broker did not
/// acknowledge (with its reason).
pub async fn run(brokers: &str, args: ProduceArgs) -> anyhow::Result<()> {
    let headers: Vec<(String, Option<Bytes>)> = args
        .headers
        .iter()
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("--header {pair:?} is not KEY=VALUE"))?;
            Ok((key.to_string(), Some(Bytes::from(value.to_string()))))
        })
        .collect::<anyhow::Result<_>>()?;
    if args.key_separator.as_deref() == Some("") {
        bail!("--key-separator must not be empty");
    }
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
    let producer = Producer::connect(brokers, config).await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut results: VecDeque<(usize, DeliveryFuture)> = VecDeque::new();
    let (mut acknowledged, mut line_number) = (0_usize, 0_usize);
    while let Some(line) = lines.next_line().await.context("reading stdin")? {
        line_number += 1;
        let (key, value) = match &args.key_separator {
            Some(sep) => {
                let (key, value) = line
                    .split_once(sep.as_str())
                    .with_context(|| format!("line {line_number} has no key separator {sep:?}"))?;
                (
                    Some(Bytes::from(key.to_string())),
                    Bytes::from(value.to_string()),
                )
            }
            None => (None, Bytes::from(line)),
        };
        let record = OutgoingRecord {
            partition: args.partition,
            key,
            value: Some(value),
            headers: headers.clone(),
            timestamp_ms: 0,
        };
        let delivery = producer
            .send(&args.topic, record)
            .await
            .with_context(|| format!("producing line {line_number} to {}", args.topic))?;
        results.push_back((line_number, delivery));
        while results.len() >= RESULTS_IN_FLIGHT {
            acknowledged += await_oldest(&mut results, &args.topic).await?;
        }
    }
    while !results.is_empty() {
        acknowledged += await_oldest(&mut results, &args.topic).await?;
    }
    eprintln!("produced {acknowledged} records to {}", args.topic);
    Ok(())
}

/// Waits for the oldest outstanding record; an error names its line.
async fn await_oldest(
    results: &mut VecDeque<(usize, DeliveryFuture)>,
    topic: &str,
) -> anyhow::Result<usize> {
    let Some((line, delivery)) = results.pop_front() else {
        return Ok(0);
    };
    delivery
        .await
        .with_context(|| format!("the record on line {line} was not produced to {topic}"))?;
    Ok(1)
}

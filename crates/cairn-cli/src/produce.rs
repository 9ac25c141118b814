//! `cairn produce TOPIC`: one record per stdin line (`KEY SEP VALUE` with `--key-separator`),
//! sent in requests of up to [`RECORDS_PER_REQUEST`] records. One request is in flight at a time,
//! so records of a key keep their order without relying on idempotent sequences. Exits 0 only
//! when every record was acknowledged.

use anyhow::{Context, bail};
use bytes::Bytes;
use cairn_client::{Acks, OutgoingRecord, Producer};
use clap::{Args, ValueEnum};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Most records per produce request.
pub const RECORDS_PER_REQUEST: usize = 500;
/// Most value and key bytes per produce request.
pub const BYTES_PER_REQUEST: usize = 1 << 20;

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
}

/// Runs `cairn produce`.
///
/// # Errors
/// A malformed line or header, an unreachable broker, or a refused request (with its reason).
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
    let acks = match args.acks {
        AckArg::None => Acks::None,
        AckArg::Leader => Acks::Leader,
        AckArg::All => Acks::All,
    };
    let producer = Producer::connect(brokers).await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let (mut pending, mut pending_bytes, mut sent, mut line_number) =
        (Vec::new(), 0usize, 0usize, 0usize);
    while let Some(line) = lines.next_line().await.context("reading stdin")? {
        line_number += 1;
        let record = match &args.key_separator {
            Some(sep) => {
                let (key, value) = line
                    .split_once(sep.as_str())
                    .with_context(|| format!("line {line_number} has no key separator {sep:?}"))?;
                OutgoingRecord {
                    key: Some(Bytes::from(key.to_string())),
                    value: Some(Bytes::from(value.to_string())),
                    ..Default::default()
                }
            }
            None => OutgoingRecord {
                value: Some(Bytes::from(line)),
                ..Default::default()
            },
        };
        pending_bytes +=
            record.key.as_ref().map_or(0, Bytes::len) + record.value.as_ref().map_or(0, Bytes::len);
        pending.push(OutgoingRecord {
            headers: headers.clone(),
            ..record
        });
        if pending.len() >= RECORDS_PER_REQUEST || pending_bytes >= BYTES_PER_REQUEST {
            sent += send(&producer, &args, std::mem::take(&mut pending), acks).await?;
            pending_bytes = 0;
        }
    }
    if !pending.is_empty() {
        sent += send(&producer, &args, pending, acks).await?;
    }
    eprintln!("produced {sent} records to {}", args.topic);
    Ok(())
}

async fn send(
    producer: &Producer,
    args: &ProduceArgs,
    records: Vec<OutgoingRecord>,
    acks: Acks,
) -> anyhow::Result<usize> {
    let count = records.len();
    producer
        .send(&args.topic, args.partition, records, acks)
        .await
        .with_context(|| format!("producing to {}", args.topic))?;
    Ok(count)
}

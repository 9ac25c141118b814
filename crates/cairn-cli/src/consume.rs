//! `cairn consume TOPIC`: prints records from a starting point (`--from`), for every partition or
//! one, until `--max` records, the end offsets captured at start (`--until-end`), or Ctrl-C.
//! Text prints each value; `--format json` prints one object per line. Output is flushed record
//! by record, so a pipe or file sees each record as it arrives.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use cairn_client::{ConsumedRecord, Consumer, Seek};
use clap::Args;
use serde::Serialize;

use crate::topic::Format;

/// How long one poll waits for new records.
const POLL_WAIT: Duration = Duration::from_millis(500);

/// `cairn consume` arguments.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// The topic.
    pub topic: String,
    /// Where to start: earliest, latest, an offset, or @UNIX_MS (first record at or after it).
    #[arg(
        long,
        default_value = "latest",
        value_name = "earliest|latest|OFFSET|@UNIX_MS"
    )]
    pub from: String,
    /// Read only this partition (default: all).
    #[arg(long)]
    pub partition: Option<i32>,
    /// Stop at the end offsets captured when the command started.
    #[arg(long)]
    pub until_end: bool,
    /// Stop after this many records.
    #[arg(long)]
    pub max: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Consume as a member of this consumer group: the group assigns partitions, and what is
    /// printed is committed. `--from` then applies only to partitions without a committed
    /// offset; `--until-end` stops at the ends captured when partitions were assigned.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// With --group: how long the broker waits for this member's heartbeat before it moves its
    /// partitions to other members (default 45000; the broker accepts 500..=1800000).
    #[arg(long, value_name = "MS", requires = "group")]
    pub session_timeout_ms: Option<u64>,
}

#[derive(Serialize)]
struct RecordJson<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: Option<String>,
    value: Option<String>,
    headers: Vec<HeaderJson>,
}

#[derive(Serialize)]
struct HeaderJson {
    key: String,
    value: Option<String>,
}

/// Parses a position flag (`--from`, `--to`): earliest, latest, an offset, or @UNIX_MS.
///
/// # Errors
/// Text that is none of those, or a negative offset, naming `flag`.
pub(crate) fn seek(flag: &str, text: &str) -> anyhow::Result<Seek> {
    Ok(match text {
        "earliest" => Seek::Earliest,
        "latest" => Seek::Latest,
        other => match other.strip_prefix('@') {
            Some(ms) => Seek::Timestamp(ms.parse().with_context(|| {
                format!("{flag} {other:?}: @ needs milliseconds since the epoch")
            })?),
            None => {
                let offset: i64 = other.parse().with_context(|| {
                    format!("{flag} {other:?}: expected earliest, latest, an offset or @UNIX_MS")
                })?;
                if offset < 0 {
                    bail!("{flag} {other}: an offset must not be negative");
                }
                Seek::Offset(offset)
            }
        },
    })
}

/// Runs `cairn consume`.
///
/// # Errors
/// A bad `--from`, an unreachable broker, an unknown topic or partition, an offset out of range.
pub async fn run(brokers: &str, mut args: ConsumeArgs) -> anyhow::Result<()> {
    if let Some(group) = args.group.take() {
        return crate::consume_group::run(brokers, args, group).await;
    }
    let from = seek("--from", &args.from)?;
    let partitions: Vec<i32> = args.partition.into_iter().collect();
    let mut consumer = Consumer::assign(brokers, &args.topic, &partitions, from).await?;
    let ends = if args.until_end {
        Some(consumer.list_offsets(&partitions, Seek::Latest).await?)
    } else {
        None
    };
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    let mut interrupt = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        if args.max.is_some_and(|max| printed >= max) {
            break;
        }
        if let Some(ends) = &ends
            && consumer
                .positions()
                .iter()
                .all(|(p, position)| ends.get(p).is_none_or(|end| position >= end))
        {
            break;
        }
        let records = tokio::select! {
            records = consumer.poll(POLL_WAIT) => records?,
            _ = &mut interrupt => break,
        };
        let mut out = stdout.lock();
        for record in records {
            if ends.as_ref().is_some_and(|ends| {
                ends.get(&record.partition)
                    .is_some_and(|end| record.offset >= *end)
            }) {
                continue;
            }
            if args.max.is_some_and(|max| printed >= max) {
                break;
            }
            print_record(&mut out, &record, args.format)?;
            printed += 1;
        }
    }
    Ok(())
}

/// Prints one record in `format` (a text line with its value, or a JSON object per line) and
/// flushes, so a pipe or file sees each record as soon as it is read. `cairn replay` prints
/// through this too, so both commands' output is the same.
///
/// # Errors
/// A failed write.
pub fn print_record(
    out: &mut impl Write,
    record: &ConsumedRecord,
    format: Format,
) -> anyhow::Result<()> {
    let text =
        |b: &Option<bytes::Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    match format {
        Format::Text => writeln!(out, "{}", text(&record.value).unwrap_or_default())?,
        Format::Json => {
            let json = RecordJson {
                topic: &record.topic,
                partition: record.partition,
                offset: record.offset,
                timestamp: record.timestamp_ms,
                key: text(&record.key),
                value: text(&record.value),
                headers: record
                    .headers
                    .iter()
                    .map(|(k, v)| HeaderJson {
                        key: k.clone(),
                        value: text(v),
                    })
                    .collect(),
            };
            writeln!(out, "{}", serde_json::to_string(&json)?)?;
        }
    }
    out.flush()?;
    Ok(())
}

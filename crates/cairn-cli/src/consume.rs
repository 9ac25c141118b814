//! `cairn consume TOPIC`: prints records from a starting point (`--from`), for every partition or
//! one, until `--max` records, the end offsets captured at start (`--until-end`), or Ctrl-C.
//! Text prints each value; `--format json` prints one object per line; `--template` prints any
//! fields (see `template`). Output is flushed record by record, so a pipe or file sees each
//! record as it arrives.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_client::{Consumer, Seek};
use clap::Args;

use crate::encoding::Encoding;
use crate::position::Position;
use crate::record_output::RecordOutput;
use crate::target::Target;
use crate::template::Template;
use crate::topic::Format;
use crate::usage_error::{usage, usage_bail};

/// How long one poll waits for new records (well inside any `--timeout`).
const POLL_WAIT: Duration = Duration::from_millis(500);

const FROM_HELP: &str = "Where to start: earliest, latest, an offset, -N (N records before the \
end of each partition), +N (N after its start), @UNIX_MS or an ISO-8601 time such as \
2026-12-01T10:00:00Z (the first record at or after it)";

const TEMPLATE_HELP: &str = "Print each record through this pattern instead of --format: \
%t topic, %p partition, %o offset, %T timestamp (ms), %k key, %v value, %K key length, \
%S value size (-1 for null), %h headers (k=v,...), %% a percent sign; escapes \\n \\t \\r \\\\. \
A null key or value prints as (null)";

/// `cairn consume` arguments.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// The topic.
    pub topic: String,
    /// Where to start (see the long help).
    #[arg(
        long,
        default_value = "latest",
        value_name = "POSITION",
        allow_hyphen_values = true,
        help = FROM_HELP
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
    /// Output format: the value per line (null as "(null)"), or one JSON object per line
    /// (null as null; what `produce --format json` reads back).
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Print each record through this pattern (see the long help).
    #[arg(long, value_name = "PATTERN", conflicts_with = "format", help = TEMPLATE_HELP)]
    pub template: Option<String>,
    /// How keys are printed. text: as they are (JSON output refuses keys that are not UTF-8
    /// rather than alter them); base64 or hex: any bytes.
    #[arg(long, value_enum, default_value_t, value_name = "ENCODING")]
    pub key_encoding: Encoding,
    /// How values and header values are printed, as for --key-encoding.
    #[arg(long, value_enum, default_value_t, value_name = "ENCODING")]
    pub value_encoding: Encoding,
    /// Consume as a member of this consumer group: the group assigns partitions, and what is
    /// printed is committed. `--from` then applies only to partitions without a committed
    /// offset (earliest or latest); `--until-end` stops at the ends captured when partitions
    /// were assigned.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// With --group: how long the broker waits for this member's heartbeat before it moves its
    /// partitions to other members (default 45000; the broker accepts 500..=1800000).
    #[arg(long, value_name = "MS", requires = "group")]
    pub session_timeout_ms: Option<u64>,
}

impl ConsumeArgs {
    /// The output settings these flags ask for.
    ///
    /// # Errors
    /// A usage error for a bad template.
    pub fn output(&self) -> anyhow::Result<RecordOutput> {
        let template = self
            .template
            .as_deref()
            .map(Template::parse)
            .transpose()
            .map_err(|why| usage(format!("--template: {why}")))?;
        Ok(RecordOutput {
            format: self.format,
            template,
            key_encoding: self.key_encoding,
            value_encoding: self.value_encoding,
        })
    }
}

/// Runs `cairn consume`.
///
/// # Errors
/// A bad `--from` or template, an unreachable or silent broker, an unknown topic or
/// partition, an offset out of range (naming the partition), a failed write.
pub async fn run(target: &Target, mut args: ConsumeArgs) -> anyhow::Result<()> {
    let output = args.output()?;
    if let Some(group) = args.group.take() {
        return crate::consume_group::run(target, args, group, output).await;
    }
    let from = Position::parse("--from", &args.from)?;
    if args.partition.is_some_and(|p| p < 0) {
        usage_bail!("--partition must not be negative");
    }
    let partitions: Vec<i32> = args.partition.into_iter().collect();
    let (seek, relative) = match from {
        Position::Absolute(seek) => (seek, false),
        Position::FromEnd(_) | Position::FromStart(_) => (Seek::Earliest, true),
    };
    let mut consumer = Consumer::assign_with(
        &target.brokers,
        &args.topic,
        &partitions,
        seek,
        target.timeouts(),
    )
    .await?;
    let needs_ends = args.until_end || relative || matches!(seek, Seek::Offset(_));
    let ends = if needs_ends {
        Some(consumer.list_offsets(&partitions, Seek::Latest).await?)
    } else {
        None
    };
    if let Some(ends) = &ends {
        start_positions(&mut consumer, &args.topic, from, &partitions, ends).await?;
    }
    let ends = if args.until_end { ends } else { None };
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    let mut interrupt = std::pin::pin!(tokio::signal::ctrl_c());
    let mut outage = crate::outage::Outage::new(target.request_timeout());
    let reading = format!("reading {}", args.topic);
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
        let polled = tokio::select! {
            records = consumer.poll(POLL_WAIT) => records,
            _ = &mut interrupt => break,
        };
        let Some(records) = outage.settle(polled, &reading).await? else {
            continue;
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
            output.print(&mut out, &record)?;
            printed += 1;
        }
    }
    Ok(())
}

/// Sets each partition's start for the positions that depend on its bounds: a relative one
/// (`-N`, `+N`), or an explicit offset, which must lie inside the partition: naming the
/// partition and its range here beats an out-of-range error from the first fetch.
async fn start_positions(
    consumer: &mut Consumer,
    topic: &str,
    from: Position,
    partitions: &[i32],
    ends: &BTreeMap<i32, i64>,
) -> anyhow::Result<()> {
    let starts = consumer.list_offsets(partitions, Seek::Earliest).await?;
    for (&partition, &end) in ends {
        let start = starts.get(&partition).copied().unwrap_or(0);
        let offset = match from {
            Position::Absolute(Seek::Offset(offset)) => {
                if offset < start || offset > end {
                    anyhow::bail!(
                        "--from {offset} is out of range for {topic}/{partition}: it holds offsets {start} to {end} (the end is the next offset to be written)"
                    );
                }
                offset
            }
            other => match other.relative_offset(start, end) {
                Some(offset) => offset,
                None => continue,
            },
        };
        consumer.seek(partition, offset)?;
    }
    Ok(())
}

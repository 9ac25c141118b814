//! `cairn consume TOPIC --group G`: joins consumer group G, prints the records of the
//! partitions the group assigns this member, and commits what it printed (on an interval, when
//! a partition moves to another member, and on exit). `--from` applies only to partitions the
//! group has no committed offset for (Kafka's `auto.offset.reset`). SIGTERM and SIGINT flush,
//! commit and leave the group, so its partitions move to the other members at once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_client::{
    ConsumedRecord, GroupConsumer, GroupConsumerConfig, OffsetReset, RebalanceListener,
    TopicPartition,
};
use tokio::signal::unix::{SignalKind, signal};

use crate::consume::ConsumeArgs;
use crate::record_output::RecordOutput;
use crate::target::Target;
use crate::usage_error::usage_bail;

/// How long one poll waits for new records.
const POLL_WAIT: Duration = Duration::from_millis(200);
/// How often printed positions are committed.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// Logs rebalances on stderr (through tracing), so an operator sees partitions move.
struct LogRebalances {
    group: String,
}

impl RebalanceListener for LogRebalances {
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        tracing::info!(group = %self.group, partitions = %list(partitions), "partitions assigned");
    }

    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        tracing::info!(group = %self.group, partitions = %list(partitions), "partitions revoked");
    }

    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        tracing::warn!(group = %self.group, partitions = %list(partitions), "partitions lost (fenced)");
    }
}

fn list(partitions: &[TopicPartition]) -> String {
    partitions
        .iter()
        .map(|p| format!("{}-{}", p.topic, p.partition))
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs `cairn consume --group`.
///
/// # Errors
/// A bad flag combination, an unreachable broker, a bad group id, an unknown topic.
pub async fn run(
    target: &Target,
    args: ConsumeArgs,
    group: String,
    output: RecordOutput,
) -> anyhow::Result<()> {
    let reset = match args.from.as_str() {
        "earliest" => OffsetReset::Earliest,
        "latest" => OffsetReset::Latest,
        other => usage_bail!(
            "--from {other:?} with --group: use earliest or latest (they apply to partitions the group has no committed offset for; move committed offsets with `cairn group reset-offsets`)"
        ),
    };
    if args.partition.is_some() {
        usage_bail!("--partition cannot be combined with --group: the group assigns partitions");
    }
    let mut terminate =
        signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut interrupt =
        signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    let mut cfg = GroupConsumerConfig::new(group.clone());
    cfg.client_id = format!("cairn-cli-{}", std::process::id());
    cfg.auto_offset_reset = reset;
    cfg.auto_commit_interval = COMMIT_INTERVAL;
    cfg.timeouts = target.timeouts();
    if let Some(ms) = args.session_timeout_ms {
        cfg.session_timeout = Duration::from_millis(ms);
    }
    let listener = Box::new(LogRebalances {
        group: group.clone(),
    });
    let mut consumer =
        GroupConsumer::subscribe(&target.brokers, cfg, &[args.topic.as_str()], listener)
            .await
            .with_context(|| format!("joining group {group:?}"))?;
    let patience = Patience {
        started: Instant::now(),
        request_timeout: target.request_timeout(),
        session_timeout: args
            .session_timeout_ms
            .map_or(DEFAULT_SESSION_TIMEOUT, Duration::from_millis),
    };
    let result = consume(
        &mut consumer,
        &args,
        &output,
        &patience,
        &mut terminate,
        &mut interrupt,
    )
    .await;
    let closed = consumer
        .close()
        .await
        .with_context(|| format!("committing and leaving group {group:?}"));
    result.and(closed)
}

async fn consume(
    consumer: &mut GroupConsumer,
    args: &ConsumeArgs,
    output: &RecordOutput,
    patience: &Patience,
    terminate: &mut tokio::signal::unix::Signal,
    interrupt: &mut tokio::signal::unix::Signal,
) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut printed = 0u64;
    // The heartbeats have their own limit (`patience`); this one is for the polls.
    let mut outage = crate::outage::Outage::new(patience.request_timeout);
    let reading = format!("reading {}", args.topic);
    loop {
        if args.max.is_some_and(|max| printed >= max) || (args.until_end && consumer.caught_up()) {
            return Ok(());
        }
        patience.check(consumer)?;
        let polled = tokio::select! {
            records = consumer.poll(POLL_WAIT) => records,
            _ = terminate.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
        };
        let Some(records) = outage.settle(polled, &reading).await? else {
            continue;
        };
        // The first record of each partition that is not printed: its position goes back there,
        // so the commit covers exactly what was printed.
        let mut give_back: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        let mut failed = None;
        let mut out = stdout.lock();
        for record in &records {
            let partition = TopicPartition {
                topic: record.topic.clone(),
                partition: record.partition,
            };
            if give_back.contains_key(&partition) {
                continue;
            }
            let past_end = args.until_end && beyond_end(consumer, record);
            if failed.is_some() || past_end || args.max.is_some_and(|max| printed >= max) {
                give_back.insert(partition, record.offset);
                continue;
            }
            match output.print(&mut out, record) {
                Ok(()) => printed += 1,
                Err(err) => {
                    // Not printed, so not committed: hand it and what follows back.
                    give_back.insert(partition, record.offset);
                    failed = Some(err);
                }
            }
        }
        drop(out);
        for (partition, offset) in give_back {
            consumer.seek(&partition, offset)?;
        }
        if let Some(err) = failed {
            return Err(err.context("writing a record to stdout"));
        }
    }
}

/// The session timeout the broker applies when `--session-timeout-ms` is not given.
const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(45);

/// How long the member waits on a coordinator that does not answer: the group consumer
/// retries heartbeats for ever, so the command sets the limit. Until the first answer it is the
/// request deadline (`--timeout`), as for any other command; once a member, the session
/// timeout, after which the coordinator has given its partitions away anyway.
struct Patience {
    started: Instant,
    request_timeout: Duration,
    session_timeout: Duration,
}

impl Patience {
    fn check(&self, consumer: &GroupConsumer) -> anyhow::Result<()> {
        match consumer.last_answered_heartbeat() {
            None if self.started.elapsed() > self.request_timeout => {
                Err(cairn_client::ClientError::Broker {
                    code: cairn_client::ErrorCode::RequestTimedOut,
                    status: tonic::Code::DeadlineExceeded,
                    message: "the group coordinator answered no heartbeat".to_string(),
                    leader: None,
                }
                .into())
            }
            Some(sent) if sent.elapsed() > self.session_timeout.max(self.request_timeout) => {
                anyhow::bail!(
                    "the group coordinator has answered no heartbeat for {} s (longer than the session timeout, {} s, and --timeout, {} s): this member has lost its partitions",
                    sent.elapsed().as_secs(),
                    self.session_timeout.as_secs_f64(),
                    self.request_timeout.as_secs_f64()
                )
            }
            _ => Ok(()),
        }
    }
}

/// True when the record lies at or past the end captured when its partition was assigned.
fn beyond_end(consumer: &GroupConsumer, record: &ConsumedRecord) -> bool {
    let partition = TopicPartition {
        topic: record.topic.clone(),
        partition: record.partition,
    };
    consumer
        .end_at_assignment(&partition)
        .is_some_and(|end| record.offset >= end)
}

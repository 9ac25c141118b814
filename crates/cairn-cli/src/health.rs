//! `cairn health`: asks each broker of `--broker` whether it serves (the standard gRPC health
//! check), one line per broker, and exits 0 only when every one does. It is made for scripts,
//! container health checks and readiness probes: a broker that cannot be reached, answers
//! anything but SERVING, or says nothing within `--timeout` (default 5 s here, connecting
//! included) fails the check, and the line says which broker and why. Under each broker's line
//! come the partitions it reports stopped (the reason it is NOT_SERVING) or damaged (it serves,
//! but reads of the damaged batches fail).

use std::time::Duration;

use anyhow::bail;
use cairn_client::{HealthStatus, Timeouts, check_health_with, node_health_with};
use clap::Args;
use futures_util::future::join_all;
use serde::Serialize;

use crate::target::{DEFAULT_HEALTH_TIMEOUT, Target, show_duration};
use crate::topic::Format;
use crate::usage_error::usage_bail;

/// `cairn health`'s flags.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The same as `--timeout MSms`, kept for scripts written before `--timeout`.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub timeout_ms: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// One broker's line of the report.
#[derive(Debug, Serialize)]
struct BrokerReport {
    broker: String,
    /// SERVING, NOT_SERVING, UNKNOWN, or UNREACHABLE when there was no answer.
    status: &'static str,
    /// Why there was no answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Partitions the broker reports stopped or damaged.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    partitions: Vec<PartitionReport>,
}

/// One stopped or damaged partition of a broker's report.
#[derive(Debug, Serialize)]
struct PartitionReport {
    topic: String,
    partition: i32,
    state: &'static str,
    reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    location: String,
    corrupt_reads: u64,
}

impl PartitionReport {
    fn line(&self) -> String {
        let mut line = format!(
            "  {} {}-{}: {}",
            self.state, self.topic, self.partition, self.reason
        );
        if !self.location.is_empty() {
            line.push_str(&format!(" (at {})", self.location));
        }
        if self.corrupt_reads > 0 {
            line.push_str(&format!("; {} reads refused", self.corrupt_reads));
        }
        line
    }
}

/// The partitions a broker that answered reports as not well; none when it cannot say (an
/// older broker, or no answer in time: the status line already tells that).
async fn troubles(broker: &str, timeout: Duration, timeouts: Timeouts) -> Vec<PartitionReport> {
    match tokio::time::timeout(timeout, node_health_with(broker, timeouts)).await {
        Ok(Ok(troubles)) => troubles
            .into_iter()
            .map(|t| PartitionReport {
                topic: t.topic,
                partition: t.partition,
                state: t.state,
                reason: t.reason,
                location: t.location,
                corrupt_reads: t.corrupt_reads,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Checks every broker of `brokers` at once and reports each.
///
/// # Errors
/// `--broker` names no broker, or a broker does not serve (after the report is printed).
pub async fn run(target: &Target, args: HealthArgs) -> anyhow::Result<()> {
    let timeout = match (args.timeout_ms, target.timeout) {
        (Some(_), Some(_)) => {
            usage_bail!(
                "give --timeout or --timeout-ms, not both (--timeout-ms MS is --timeout MSms)"
            )
        }
        (Some(ms), None) => Duration::from_millis(ms),
        (None, Some(timeout)) => timeout,
        (None, None) => DEFAULT_HEALTH_TIMEOUT,
    };
    let list: Vec<&str> = target
        .brokers
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .collect();
    if list.is_empty() {
        bail!("--broker names no broker");
    }
    let reports = join_all(list.iter().map(|&broker| async move {
        let timeouts = Timeouts {
            tls: target.tls.clone(),
            ..Timeouts::default()
        };
        let checked = tokio::time::timeout(timeout, check_health_with(broker, timeouts.clone()));
        let (status, error) = match checked.await {
            Ok(Ok(status)) => (status.as_str(), None),
            Ok(Err(err)) => ("UNREACHABLE", Some(crate::one_line(&err.into()))),
            Err(_) => (
                "UNREACHABLE",
                Some(format!("no answer within {}", show_duration(timeout))),
            ),
        };
        let partitions = if error.is_none() {
            troubles(broker, timeout, timeouts).await
        } else {
            Vec::new()
        };
        BrokerReport {
            broker: broker.to_string(),
            status,
            error,
            partitions,
        }
    }))
    .await;

    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&reports)?)?,
        Format::Text => {
            for report in &reports {
                match &report.error {
                    Some(error) => outln!("{} {}: {error}", report.broker, report.status)?,
                    None => outln!("{} {}", report.broker, report.status)?,
                }
                for partition in &report.partitions {
                    outln!("{}", partition.line())?;
                }
            }
        }
    }
    let down = reports
        .iter()
        .filter(|r| r.status != HealthStatus::Serving.as_str())
        .count();
    if down > 0 {
        bail!("{down} of {} brokers not serving", reports.len());
    }
    Ok(())
}

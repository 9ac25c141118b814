//! `cairn health`: asks each broker of `--broker` whether it serves (the standard gRPC health
//! check), one line per broker, and exits 0 only when every one does. It is made for scripts,
//! container health checks and readiness probes: a broker that cannot be reached, answers
//! anything but SERVING, or says nothing within `--timeout` (default 5 s here, connecting
//! included) fails the check, and the line says which broker and why.

use std::time::Duration;

use anyhow::bail;
use cairn_client::{HealthStatus, check_health};
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
        let (status, error) = match tokio::time::timeout(timeout, check_health(broker)).await {
            Ok(Ok(status)) => (status.as_str(), None),
            Ok(Err(err)) => ("UNREACHABLE", Some(crate::one_line(&err.into()))),
            Err(_) => (
                "UNREACHABLE",
                Some(format!("no answer within {}", show_duration(timeout))),
            ),
        };
        BrokerReport {
            broker: broker.to_string(),
            status,
            error,
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

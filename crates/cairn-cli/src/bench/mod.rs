//! `cairn bench`: load generators that measure a running broker through the real client, with
//! figures a script can compare across runs (`--format json`). See BENCHMARKS.md for how the
//! published figures were taken.
//!
//! Code map: `produce` and `consume` are the two benchmarks; `baseline` measures the machine's
//! raw fsync'd writes and the log's own appends in the same run; `report` holds the histogram,
//! percentiles, rates and the progress line.

mod baseline;
mod consume;
mod produce;
mod report;

use std::time::Duration;

use clap::{Subcommand, ValueEnum};

pub use consume::BenchConsumeArgs;
pub use produce::BenchProduceArgs;

/// How often the progress line on stderr is refreshed.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Report format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON object on stdout.
    Json,
}

/// `cairn bench` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Produce records as fast as the broker takes them (or at --rate) and report throughput
    /// and latency percentiles.
    #[command(
        after_help = "Examples:\n  cairn bench produce --records 500000 --record-size 1024 --partitions 4\n  cairn bench produce --rate 20000 --format json\n  cairn bench produce --baseline-dir ./cairn-data"
    )]
    Produce(BenchProduceArgs),
    /// Read a topic from the earliest offset to its end and report throughput.
    #[command(after_help = "Examples:\n  cairn bench consume --topic cairn-bench --format json")]
    Consume(BenchConsumeArgs),
}

/// Runs a `cairn bench` subcommand.
///
/// # Errors
/// As the benchmark's own `run`.
pub async fn run(brokers: &str, command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Produce(args) => produce::run(brokers, args).await,
        BenchCommand::Consume(args) => consume::run(brokers, args).await,
    }
}

//! `cairn bench`: load generators that measure a running broker through the real client, with
//! figures a script can compare across runs (`--format json`). See BENCHMARKS.md for how the
//! published figures were taken.
//!
//! Code map: `produce`, `consume` and `replay` are the benchmarks; `produce_flags` checks
//! produce's flags before anything is created and `produce_report` prints its figures;
//! `baseline` measures the machine's raw fsync'd writes and the log's own appends in the same
//! run, `fsync_baseline` the same writes and 4 KiB fsync latency the way fio does,
//! `broker_cpu` reads the broker's CPU time from its `/metrics`, `read_baseline` the
//! log's own reads of the partitions a replay or consume reads, `loopback_baseline` the bare
//! socket's, and `cpu_ceiling` the fastest replay those allow (and this process's CPU time);
//! `replica_floor` (`cairn bench floor`) is the least ack latency the disk and loopback allow
//! a paced produce with N copies, with no broker at all, and `rpc_floor` (`cairn bench
//! rpc-floor`) what a paced request to an fsyncing server costs in the broker's stack alone;
//! `send_floor` the least CPU any client spends per byte it produces (copy, CRC, socket);
//! `report` holds the histogram, percentiles, rates, CPU per GB and the progress line.
//!
//! Every benchmark checks its flags before it creates a topic or a scratch file.

mod baseline;
mod broker_cpu;
mod consume;
mod cpu_ceiling;
mod fsync_baseline;
mod loopback_baseline;
mod pacer;
mod produce;
mod produce_flags;
mod produce_report;
mod producers_held;
mod read_baseline;
mod replay;
mod replica_floor;
mod report;
mod rpc_floor;
mod scratch;
mod send_floor;

use std::time::Duration;

use clap::{Subcommand, ValueEnum};

pub use consume::BenchConsumeArgs;
pub use produce::BenchProduceArgs;
pub use replay::BenchReplayArgs;
pub use replica_floor::BenchFloorArgs;
pub use rpc_floor::BenchRpcFloorArgs;

/// Refuses a benchmark flag outside `low..=high`, naming it, as a usage error.
///
/// # Errors
/// A [`crate::usage_error::UsageError`] when `value` is out of range.
pub(crate) fn flag_within(name: &str, value: u64, low: u64, high: u64) -> anyhow::Result<()> {
    if value < low || value > high {
        crate::usage_error::usage_bail!(
            "--{name} {value} is out of range: it must be {low} to {high}"
        );
    }
    Ok(())
}

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
    #[command(
        after_help = "Examples:\n  cairn bench consume --topic cairn-bench --format json\n  cairn bench consume --topic cairn-bench --baseline-dir ./cairn-data"
    )]
    Consume(BenchConsumeArgs),
    /// Replay a topic through the client's Replay and compare with the log's own reads of the
    /// same partitions, measured in the same run.
    #[command(
        after_help = "Examples:\n  cairn bench replay --topic orders --baseline-dir ./cairn-data\n  cairn bench replay --topic orders --fetch-format raw --rounds 5 --format json"
    )]
    Replay(BenchReplayArgs),
    /// The least ack latency this machine allows a paced produce with N copies: leaders and
    /// followers as threads writing and fsyncing scratch files, talking over loopback, with no
    /// broker. Needs no running broker.
    #[command(
        after_help = "Examples:\n  cairn bench floor --dir ./cairn-data --replicas 1 --rate 20000\n  cairn bench floor --dir ./cairn-data --replicas 3 --rate 20000 --format json"
    )]
    Floor(BenchFloorArgs),
    /// What one paced producer's requests to an fsyncing server cost over loopback in three
    /// stacks (blocking threads, tokio tasks, gRPC over HTTP/2 with h2), with no broker: the
    /// least the broker's stack allows at low load. Needs no running broker.
    #[command(
        name = "rpc-floor",
        after_help = "Examples:\n  cairn bench rpc-floor --dir ./cairn-data\n  cairn bench rpc-floor --dir ./cairn-data --rounds 3 --format json"
    )]
    RpcFloor(BenchRpcFloorArgs),
}

/// Runs a `cairn bench` subcommand.
///
/// # Errors
/// As the benchmark's own `run`.
pub async fn run(target: &crate::target::Target, command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Produce(args) => produce::run(target, args).await,
        BenchCommand::Consume(args) => consume::run(target, args).await,
        BenchCommand::Replay(args) => replay::run(target, args).await,
        BenchCommand::Floor(args) => {
            tokio::task::spawn_blocking(move || replica_floor::run(&args)).await?
        }
        BenchCommand::RpcFloor(args) => rpc_floor::run(args).await,
    }
}

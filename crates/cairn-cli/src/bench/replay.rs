//! `cairn bench replay`: replays a topic end to end through `cairn_client::Replay` (raw
//! batches decoded here, and/or records decoded by the broker) and, with `--baseline-dir`,
//! reads the same ranges straight from disk with `cairn_log::LogReader` in the same run
//! (`read_baseline`), sends the same batch bytes through one loopback TCP stream
//! (`loopback_baseline`), and works out from those two the fastest any replay could run here
//! (`cpu_ceiling`), reporting replay throughput as a ratio to each.
//!
//! Each round runs every reading once, in the same order; the report gives each reading's
//! median and each round's ratios, since this shared machine's figures drift between rounds.
//! The caller's work per record is the same on both sides: count it and its key and value
//! bytes.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;
use cairn_client::{MAX_FETCH_MAX_BYTES, Replay, ReplayConfig, ReplayFormat};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use super::OutputFormat;
use super::cpu_ceiling::{self, ceiling};
use super::loopback_baseline::loopback_tcp;
use super::read_baseline::{Copies, Range, Reading};
use super::report::Throughput;
use crate::usage_error::usage_bail;

/// `cairn bench replay` arguments.
#[derive(Debug, Args)]
pub struct BenchReplayArgs {
    /// Topic to replay (every partition, earliest offset to the current end).
    #[arg(long, default_value = "orders")]
    pub topic: String,
    /// How records travel: raw batches decoded by the client, records decoded by the broker,
    /// or both, one after the other in each round.
    #[arg(long, value_enum, default_value_t)]
    pub fetch_format: FetchFormatArg,
    /// The broker's data directory: the same partitions are copied from there into a scratch
    /// directory and read with the log's own reader, in the same run, for the ratios.
    #[arg(long, value_name = "DIR")]
    pub baseline_dir: Option<PathBuf>,
    /// Rounds of every reading.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Bytes per fetched chunk (and per baseline read).
    #[arg(long, value_name = "BYTES", default_value_t = cairn_client::DEFAULT_FETCH_MAX_BYTES)]
    pub fetch_max_bytes: i32,
    /// Output format of the final report.
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
}

/// Which replay paths to measure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum FetchFormatArg {
    /// Raw batches, checked and decoded by the client.
    Raw,
    /// Records decoded by the broker.
    Decoded,
    /// Both.
    #[default]
    Both,
}

/// Each reading's results, one per round.
#[derive(Default)]
struct Results {
    raw: Vec<Reading>,
    decoded: Vec<Reading>,
    baseline_raw_batches: Vec<Reading>,
    baseline_full_decode: Vec<Reading>,
    /// The same batch bytes through one loopback TCP stream.
    loopback: Vec<Reading>,
    /// The fastest any replay could be here (`cpu_ceiling`).
    ceiling: Vec<Reading>,
}

/// Most rounds of one run: each round reads the whole topic two to five times.
pub const MAX_ROUNDS: u32 = 100;

/// Runs `cairn bench replay`.
///
/// # Errors
/// A flag out of range (a usage error, before the baseline copies anything), an unreachable
/// broker, an unknown or empty topic, a failed fetch, or a baseline that cannot copy or read
/// the partitions.
pub async fn run(target: &crate::target::Target, args: BenchReplayArgs) -> anyhow::Result<()> {
    check_flags(&args)?;
    let ranges = ranges(target, &args).await?;
    let total: i64 = ranges.iter().map(|r| r.end - r.start).sum();
    if total <= 0 {
        bail!("topic {} holds no records to replay", args.topic);
    }
    let copies = args
        .baseline_dir
        .as_ref()
        .map(|dir| Copies::make(dir, &args.topic, &ranges))
        .transpose()?;
    let max_bytes = i64::from(args.fetch_max_bytes);
    let mut results = Results::default();
    for round in 1..=args.rounds {
        eprintln!("round {round} of {}", args.rounds);
        if let Some(copies) = &copies {
            let full = copies.full_decode(max_bytes)?;
            let batches = copies.raw_batches(max_bytes)?;
            let loopback = loopback_tcp(batches.bytes, full.records)?;
            results
                .ceiling
                .push(ceiling(loopback.cpu, &full, cpu_ceiling::cores()));
            results.loopback.push(loopback.reading);
            results.baseline_full_decode.push(full);
            results.baseline_raw_batches.push(batches);
        }
        if args.fetch_format != FetchFormatArg::Decoded {
            results
                .raw
                .push(replay(target, &args, ReplayFormat::RawBatches).await?);
        }
        if args.fetch_format != FetchFormatArg::Raw {
            results
                .decoded
                .push(replay(target, &args, ReplayFormat::Decoded).await?);
        }
    }
    report(&args, &results)?;
    Ok(())
}

/// Refuses flags out of range before the baseline copies the partitions: the client would
/// refuse a bad `--fetch-max-bytes` only at the first replay, after the copy.
fn check_flags(args: &BenchReplayArgs) -> anyhow::Result<()> {
    if !(1..=MAX_ROUNDS).contains(&args.rounds) {
        usage_bail!("--rounds {} is out of range: 1..={MAX_ROUNDS}", args.rounds);
    }
    if !(1..=MAX_FETCH_MAX_BYTES).contains(&args.fetch_max_bytes) {
        usage_bail!(
            "--fetch-max-bytes {} is out of range: 1..={MAX_FETCH_MAX_BYTES}",
            args.fetch_max_bytes
        );
    }
    Ok(())
}

/// Every partition's range: earliest offset to the current high watermark.
async fn ranges(
    target: &crate::target::Target,
    args: &BenchReplayArgs,
) -> anyhow::Result<Vec<Range>> {
    let config = ReplayConfig {
        timeouts: target.timeouts(),
        ..ReplayConfig::default()
    };
    let replay = Replay::start(&target.brokers, &args.topic, config).await?;
    Ok(replay
        .progress()
        .partitions
        .iter()
        .map(|p| Range {
            partition: p.partition,
            start: p.start_offset,
            end: p.end_offset,
        })
        .collect())
}

/// One whole replay; the caller's work is counting.
async fn replay(
    target: &crate::target::Target,
    args: &BenchReplayArgs,
    format: ReplayFormat,
) -> anyhow::Result<Reading> {
    let config = ReplayConfig {
        format,
        fetch_max_bytes: args.fetch_max_bytes,
        timeouts: target.timeouts(),
        ..ReplayConfig::default()
    };
    let started = Instant::now();
    let mut replay = Replay::start(&target.brokers, &args.topic, config).await?;
    let (mut records, mut bytes) = (0_u64, 0_u64);
    while let Some(chunk) = replay.next_chunk().await {
        for record in chunk? {
            let record = record?;
            records += 1;
            bytes += record.payload_bytes() as u64;
        }
    }
    Ok(Reading {
        records,
        bytes,
        elapsed: started.elapsed(),
    })
}

/// The reading with the median records/s.
fn median(readings: &[Reading]) -> Option<Reading> {
    let mut sorted = readings.to_vec();
    sorted.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
    sorted.get(sorted.len() / 2).copied()
}

fn rate(reading: &Reading) -> f64 {
    Throughput::of(reading.records, reading.bytes, reading.elapsed).records_per_sec
}

/// Per-round ratios of records/s, `numerator` over `denominator`.
fn ratios(numerator: &[Reading], denominator: &[Reading]) -> Vec<f64> {
    numerator
        .iter()
        .zip(denominator)
        .map(|(n, d)| rate(n) / rate(d).max(1e-9))
        .collect()
}

fn reading_json(readings: &[Reading]) -> Value {
    match median(readings) {
        None => Value::Null,
        Some(m) => {
            let t = Throughput::of(m.records, m.bytes, m.elapsed);
            json!({
                "records": m.records,
                "bytes": m.bytes,
                "seconds": m.elapsed.as_secs_f64(),
                "records_per_sec": t.records_per_sec,
                "mb_per_sec": t.mb_per_sec,
                "rounds_records_per_sec": readings.iter().map(rate).collect::<Vec<_>>(),
            })
        }
    }
}

fn ratio_json(numerator: &[Reading], denominator: &[Reading]) -> Value {
    let per_round = ratios(numerator, denominator);
    if per_round.is_empty() {
        return Value::Null;
    }
    let mut sorted = per_round.clone();
    sorted.sort_by(f64::total_cmp);
    json!({ "median": sorted[sorted.len() / 2], "rounds": per_round })
}

fn report(args: &BenchReplayArgs, results: &Results) -> std::io::Result<()> {
    let r = results;
    match args.format {
        OutputFormat::Json => outln!(
            "{}",
            json!({
                "bench": "replay",
                "topic": args.topic,
                "rounds": args.rounds,
                "fetch_max_bytes": args.fetch_max_bytes,
                "replay_raw": reading_json(&r.raw),
                "replay_decoded": reading_json(&r.decoded),
                "baseline_full_decode": reading_json(&r.baseline_full_decode),
                "baseline_raw_batches": reading_json(&r.baseline_raw_batches),
                "baseline_loopback_tcp": reading_json(&r.loopback),
                "cpu_ceiling": reading_json(&r.ceiling),
                "cores": cpu_ceiling::cores(),
                "ratios": {
                    "cpu_ceiling_to_full_decode": ratio_json(&r.ceiling, &r.baseline_full_decode),
                    "raw_to_cpu_ceiling": ratio_json(&r.raw, &r.ceiling),
                    "decoded_to_cpu_ceiling": ratio_json(&r.decoded, &r.ceiling),
                    "raw_to_loopback_tcp": ratio_json(&r.raw, &r.loopback),
                    "decoded_to_loopback_tcp": ratio_json(&r.decoded, &r.loopback),
                    "loopback_tcp_to_full_decode": ratio_json(&r.loopback, &r.baseline_full_decode),
                    "raw_to_full_decode": ratio_json(&r.raw, &r.baseline_full_decode),
                    "raw_to_raw_batches": ratio_json(&r.raw, &r.baseline_raw_batches),
                    "decoded_to_full_decode": ratio_json(&r.decoded, &r.baseline_full_decode),
                    "decoded_to_raw_batches": ratio_json(&r.decoded, &r.baseline_raw_batches),
                },
            })
        )?,
        OutputFormat::Text => {
            for (name, readings) in [
                ("replay, raw batches", &r.raw),
                ("replay, broker-decoded", &r.decoded),
                ("log read + full decode", &r.baseline_full_decode),
                ("log read, batches only", &r.baseline_raw_batches),
                ("loopback TCP, same bytes", &r.loopback),
                ("CPU ceiling of any replay", &r.ceiling),
            ] {
                if let Some(m) = median(readings) {
                    let t = Throughput::of(m.records, m.bytes, m.elapsed);
                    outln!(
                        "{name:<24} {:>10} records in {:>6.3} s: {:>11.0} records/s {:>8.1} MB/s (median of {})",
                        m.records,
                        m.elapsed.as_secs_f64(),
                        t.records_per_sec,
                        t.mb_per_sec,
                        readings.len()
                    )?;
                }
            }
            for (name, numerator, denominator) in [
                ("ceiling / full decode", &r.ceiling, &r.baseline_full_decode),
                ("raw / ceiling", &r.raw, &r.ceiling),
                ("decoded / ceiling", &r.decoded, &r.ceiling),
                ("raw / loopback TCP", &r.raw, &r.loopback),
                ("decoded / loopback TCP", &r.decoded, &r.loopback),
                (
                    "loopback / full decode",
                    &r.loopback,
                    &r.baseline_full_decode,
                ),
                ("raw / full decode", &r.raw, &r.baseline_full_decode),
                ("raw / batches only", &r.raw, &r.baseline_raw_batches),
                ("decoded / full decode", &r.decoded, &r.baseline_full_decode),
                (
                    "decoded / batches only",
                    &r.decoded,
                    &r.baseline_raw_batches,
                ),
            ] {
                let per_round = ratios(numerator, denominator);
                if !per_round.is_empty() {
                    let text: Vec<String> = per_round.iter().map(|x| format!("{x:.2}")).collect();
                    outln!("{name:<24} per round: {}", text.join(", "))?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn reading(records: u64, millis: u64) -> Reading {
        Reading {
            records,
            bytes: records * 100,
            elapsed: Duration::from_millis(millis),
        }
    }

    #[test]
    fn flags_out_of_range_are_refused_by_name() {
        use clap::Parser;
        #[derive(Parser)]
        struct Command {
            #[command(flatten)]
            args: BenchReplayArgs,
        }
        let check = |flags: &[&str]| {
            let mut line = vec!["bench-replay"];
            line.extend_from_slice(flags);
            let parsed = Command::try_parse_from(line).map_err(|e| e.to_string())?;
            check_flags(&parsed.args).map_err(|e| {
                assert!(e.is::<crate::usage_error::UsageError>());
                e.to_string()
            })
        };
        assert_eq!(check(&[]), Ok(()));
        for (flags, expected) in [
            (
                &["--rounds", "0"][..],
                "--rounds 0 is out of range: 1..=100",
            ),
            (&["--rounds", "101"], "--rounds 101 is out of range"),
            (
                &["--fetch-max-bytes", "0"],
                "--fetch-max-bytes 0 is out of range",
            ),
            (
                &["--fetch-max-bytes=-5"],
                "--fetch-max-bytes -5 is out of range",
            ),
            (&["--fetch-max-bytes", "67108865"], "1..=67108864"),
        ] {
            let message = check(flags).expect_err("refused");
            assert!(message.contains(expected), "{flags:?}: {message}");
        }
    }

    #[test]
    fn the_median_is_by_rate_and_ratios_are_per_round() {
        let readings = [reading(100, 1000), reading(300, 1000), reading(200, 1000)];
        assert_eq!(median(&readings).map(|m| m.records), Some(200));
        let ratio = ratios(&[reading(50, 1000)], &[reading(100, 1000)]);
        assert_eq!(ratio, [0.5]);
        assert_eq!(median(&[]), None);
    }
}

//! `cairn replay TOPIC`: streams every partition of a topic from the earliest offset (or the
//! `--checkpoint` file's offsets, when the file exists) to the end offsets captured at start,
//! through `cairn_client::Replay` (raw batches, decoded here), printing each record as
//! `cairn consume` does. With `--follow` it then keeps printing new records.
//!
//! Code map: `checkpoint_file` reads and atomically replaces the checkpoint file;
//! `progress_bar` draws the progress line and the summary on stderr.
//!
//! The invariant: the checkpoint file never names a record that was not written to stdout.
//! It is written (periodically, at the end, and on SIGTERM or SIGINT) only after stdout has
//! been flushed, and never after a failed write. Delivery is at least once: a crash between
//! printing and the next checkpoint prints those records again on the next run.

mod checkpoint_file;
mod progress_bar;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_client::{Replay, ReplayConfig};
use clap::Args;
use tokio::signal::unix::{SignalKind, signal};

use self::progress_bar::{ProgressBar, REDRAW_INTERVAL, summary};
use crate::encoding::Encoding;
use crate::record_output::RecordOutput;
use crate::target::Target;
use crate::topic::Format;

/// How often the checkpoint file is replaced while records flow.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

/// `cairn replay` arguments.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The topic.
    pub topic: String,
    /// Resume from the offsets in FILE if it exists, and keep FILE up to date (every 5 s, at
    /// the end, and on SIGTERM or SIGINT), written atomically.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Output format, as `cairn consume`'s.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// How keys are printed, as `cairn consume`'s.
    #[arg(long, value_enum, default_value_t, value_name = "ENCODING")]
    pub key_encoding: Encoding,
    /// How values and header values are printed, as `cairn consume`'s.
    #[arg(long, value_enum, default_value_t, value_name = "ENCODING")]
    pub value_encoding: Encoding,
    /// After the captured end, keep waiting for and printing new records.
    #[arg(long)]
    pub follow: bool,
    /// No progress line and no summary on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `cairn replay`.
///
/// # Errors
/// A malformed or unfitting checkpoint file (naming the file and line), an unreachable
/// broker, an unknown topic, a failed fetch, or a failed write to stdout or the checkpoint.
pub async fn run(target: &Target, args: ReplayArgs) -> anyhow::Result<()> {
    let checkpoint = match &args.checkpoint {
        Some(path) => checkpoint_file::load(path)?,
        None => None,
    };
    let config = ReplayConfig {
        checkpoint,
        follow: args.follow,
        timeouts: target.timeouts(),
        ..ReplayConfig::default()
    };
    let mut replay = Replay::start(&target.brokers, &args.topic, config)
        .await
        .with_context(|| match &args.checkpoint {
            Some(path) => format!(
                "replaying {} from checkpoint file {}",
                args.topic,
                path.display()
            ),
            None => format!("replaying {}", args.topic),
        })?;
    let mut stop = std::pin::pin!(
        shutdown_signal().context("cannot install the SIGTERM and SIGINT handlers")?
    );
    let mut bar = ProgressBar::new(!args.quiet);
    let outcome = print_all(&mut replay, &args, &mut bar, &mut stop).await;
    // A failed replay still saves how far it got; a failed write to stdout saves nothing more
    // (the record that failed already counts as handed out).
    let result = match outcome {
        Ok(()) => Ok(()),
        Err(Failure::Replay(err)) => Err(err),
        Err(Failure::Output(err)) => return Err(err),
    };
    std::io::stdout().flush().context("writing stdout")?;
    if let Some(path) = &args.checkpoint {
        checkpoint_file::store(path, &replay.checkpoint())?;
    }
    let path = args.checkpoint.as_ref().map(|p| p.display().to_string());
    bar.finish(&summary(&replay.progress(), path.as_deref()));
    result
}

/// A failure of the loop: of the replay (the checkpoint is still worth saving) or of the
/// output (it is not).
enum Failure {
    Replay(anyhow::Error),
    Output(anyhow::Error),
}

/// Prints records until the end (every partition at its captured end), a signal, or a
/// failure; redraws the progress line and replaces the checkpoint file on a timer.
async fn print_all(
    replay: &mut Replay,
    args: &ReplayArgs,
    bar: &mut ProgressBar,
    stop: &mut (impl std::future::Future<Output = ()> + Unpin),
) -> Result<(), Failure> {
    let stdout = std::io::stdout();
    let mut ticks = tokio::time::interval(REDRAW_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_checkpoint = Instant::now();
    loop {
        // `Replay::next` is cancel safe, so losing the race to a tick or a signal loses nothing.
        tokio::select! {
            biased;
            _ = &mut *stop => return Ok(()),
            _ = ticks.tick() => {
                let now = Instant::now();
                bar.tick(now, || replay.progress());
                if let Some(path) = &args.checkpoint
                    && now.duration_since(last_checkpoint) >= CHECKPOINT_INTERVAL
                {
                    last_checkpoint = now;
                    stdout.lock().flush().context("writing stdout").map_err(Failure::Output)?;
                    checkpoint_file::store(path, &replay.checkpoint()).map_err(Failure::Output)?;
                }
            }
            next = replay.next() => match next {
                None => return Ok(()),
                Some(Err(err)) => {
                    return Err(Failure::Replay(
                        anyhow::Error::new(err).context(format!("replaying {}", args.topic)),
                    ));
                }
                Some(Ok(record)) => {
                    let record = record.to_record(&args.topic);
                    let output = RecordOutput {
                        key_encoding: args.key_encoding,
                        value_encoding: args.value_encoding,
                        ..RecordOutput::plain(args.format)
                    };
                    output
                        .print(&mut stdout.lock(), &record)
                        .context("writing stdout")
                        .map_err(Failure::Output)?;
                }
            },
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT. Installing the handlers keeps either signal from
/// killing the process, so the checkpoint can be written first.
///
/// # Errors
/// The OS refused a handler.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

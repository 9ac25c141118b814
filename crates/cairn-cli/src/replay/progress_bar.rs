//! The progress line of `cairn replay` on stderr: records, megabytes, rates, percentage and
//! ETA, redrawn in place with `\r` at most every [`REDRAW_INTERVAL`], and a summary line at the
//! end. It never writes to stdout, which carries only records.

use std::io::Write;
use std::time::{Duration, Instant};

use cairn_client::ReplayProgress;

/// Shortest time between two redraws (about ten a second).
pub const REDRAW_INTERVAL: Duration = Duration::from_millis(100);
/// Columns the line is padded to, so a shorter line covers a longer one.
const LINE_WIDTH: usize = 79;

/// The progress line, or nothing when disabled.
#[derive(Debug)]
pub struct ProgressBar {
    enabled: bool,
    last_drawn: Option<Instant>,
}

impl ProgressBar {
    /// A bar that draws only if `enabled`.
    pub fn new(enabled: bool) -> ProgressBar {
        ProgressBar {
            enabled,
            last_drawn: None,
        }
    }

    /// Redraws the line if enabled and [`REDRAW_INTERVAL`] has passed since the last time;
    /// `progress` is only computed then.
    pub fn tick(&mut self, now: Instant, progress: impl FnOnce() -> ReplayProgress) {
        if !self.enabled
            || self
                .last_drawn
                .is_some_and(|last| now.duration_since(last) < REDRAW_INTERVAL)
        {
            return;
        }
        self.last_drawn = Some(now);
        let mut err = std::io::stderr().lock();
        // A progress line that cannot be written is not worth failing the replay for.
        // Padded rather than cleared with an escape code, so a log file reads plainly too.
        let _ = write!(err, "\r{:<LINE_WIDTH$}", render(&progress()));
        let _ = err.flush();
    }

    /// Replaces the line with `summary` (if enabled).
    pub fn finish(&mut self, summary: &str) {
        if !self.enabled {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.last_drawn.is_some() {
            let _ = write!(err, "\r{:LINE_WIDTH$}\r", "");
        }
        let _ = writeln!(err, "{summary}");
    }
}

/// One progress line.
pub fn render(progress: &ReplayProgress) -> String {
    let mut line = format!(
        "{:5.1}% {} records {:.1} MB {:.0} rec/s {:.1} MB/s",
        progress.fraction_done() * 100.0,
        progress.records,
        progress.payload_bytes as f64 / 1e6,
        progress.records_per_sec(),
        progress.mb_per_sec(),
    );
    if progress.caught_up() {
        line.push_str(" caught up");
    } else if let Some(eta) = progress.eta() {
        line.push_str(&format!(" ETA {}", clock(eta)));
    }
    line
}

/// The summary line printed when the replay ends.
pub fn summary(progress: &ReplayProgress, checkpoint: Option<&str>) -> String {
    let mut line = format!(
        "replayed {} records ({:.1} MB) in {:.2} s: {:.0} records/s, {:.1} MB/s, {:.1}% of the captured range",
        progress.records,
        progress.payload_bytes as f64 / 1e6,
        progress.elapsed.as_secs_f64(),
        progress.records_per_sec(),
        progress.mb_per_sec(),
        progress.fraction_done() * 100.0,
    );
    if let Some(path) = checkpoint {
        line.push_str(&format!("; checkpoint in {path}"));
    }
    line
}

/// `1h02m03s`, `2m03s` or `3s`.
fn clock(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s:02}s"),
        _ => format!("{h}h{m:02}m{s:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use cairn_client::PartitionProgress;

    use super::*;

    fn progress(position: i64) -> ReplayProgress {
        ReplayProgress {
            records: 250_000,
            payload_bytes: 25_000_000,
            elapsed: Duration::from_secs(2),
            partitions: vec![PartitionProgress {
                partition: 0,
                start_offset: 0,
                position,
                end_offset: 1_000_000,
            }],
        }
    }

    #[test]
    fn the_line_shows_counts_rates_percentage_and_eta() {
        assert_eq!(
            render(&progress(250_000)),
            " 25.0% 250000 records 25.0 MB 125000 rec/s 12.5 MB/s ETA 6s"
        );
        assert!(render(&progress(1_000_000)).ends_with("caught up"));
    }

    #[test]
    fn durations_read_as_a_clock() {
        assert_eq!(clock(Duration::from_secs(3)), "3s");
        assert_eq!(clock(Duration::from_secs(123)), "2m03s");
        assert_eq!(clock(Duration::from_secs(3723)), "1h02m03s");
    }

    #[test]
    fn the_summary_names_the_checkpoint_file() {
        let line = summary(&progress(1_000_000), Some("orders.ckpt"));
        assert!(
            line.starts_with("replayed 250000 records (25.0 MB) in 2.00 s"),
            "{line}"
        );
        assert!(line.ends_with("; checkpoint in orders.ckpt"), "{line}");
    }
}

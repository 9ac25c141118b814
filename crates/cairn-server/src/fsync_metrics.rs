//! `cairn_log_fsync_seconds` and `cairn_log_fsync_failures_total`: the process-wide
//! histogram `cairn-log` keeps of segment `fdatasync` durations, rendered at scrape time. The
//! log owns the buckets; this file only writes them in the Prometheus text format.

use std::fmt::Write as _;

use cairn_broker::{FSYNC_BUCKET_UPPER_NANOS, FsyncSnapshot};

/// Appends the fsync families for `snapshot` (normally `cairn_broker::fsync_latency().snapshot()`).
pub fn render(snapshot: &FsyncSnapshot, out: &mut String) {
    out.push_str(
        "# HELP cairn_log_fsync_seconds Duration of fdatasync calls on segment files (group commits, flushes and seals), all partitions.\n\
         # TYPE cairn_log_fsync_seconds histogram\n",
    );
    let mut cumulative = 0u64;
    for (upper_nanos, count) in FSYNC_BUCKET_UPPER_NANOS.iter().zip(&snapshot.slot_counts) {
        cumulative = cumulative.saturating_add(*count);
        let le = *upper_nanos as f64 / 1e9;
        let _ = writeln!(
            out,
            "cairn_log_fsync_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    let total = snapshot.count();
    let _ = writeln!(out, "cairn_log_fsync_seconds_bucket{{le=\"+Inf\"}} {total}");
    let _ = writeln!(
        out,
        "cairn_log_fsync_seconds_sum {}",
        snapshot.sum_nanos as f64 / 1e9
    );
    let _ = writeln!(out, "cairn_log_fsync_seconds_count {total}");
    let _ = writeln!(
        out,
        "# HELP cairn_log_fsync_failures_total fdatasync calls on segment files that failed (each poisons its partition).\n\
         # TYPE cairn_log_fsync_failures_total counter\n\
         cairn_log_fsync_failures_total {}",
        snapshot.failure_count
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cairn_broker::FsyncLatency;

    use super::*;

    #[test]
    fn buckets_are_cumulative_with_seconds_labels() {
        let latency = FsyncLatency::new();
        latency.observe(Duration::from_micros(40), false);
        latency.observe(Duration::from_millis(2), false);
        latency.observe(Duration::from_secs(20), true);
        let mut out = String::new();
        render(&latency.snapshot(), &mut out);
        assert!(
            out.contains("cairn_log_fsync_seconds_bucket{le=\"0.00005\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("cairn_log_fsync_seconds_bucket{le=\"0.0025\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("cairn_log_fsync_seconds_bucket{le=\"10\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("cairn_log_fsync_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{out}"
        );
        assert!(out.contains("cairn_log_fsync_seconds_count 3\n"), "{out}");
        assert!(out.contains("cairn_log_fsync_failures_total 1\n"), "{out}");
        let sum_line = out
            .lines()
            .find(|l| l.starts_with("cairn_log_fsync_seconds_sum "))
            .unwrap();
        let sum: f64 = sum_line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!((sum - 20.00204).abs() < 1e-9, "{sum}");
    }
}

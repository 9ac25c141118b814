//! [`QuotaMetrics`]: `cairn_quota_throttle_seconds_total{principal,kind}` and
//! `cairn_quota_throttled_requests_total{principal,kind}`. Only principals that were throttled
//! get series, and those are principals with a quota (set by an operator), so a client cannot
//! grow the label set by itself.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use super::throttler::QuotaKind;

/// A series' labels: the principal and the kind's label.
type SeriesKey = (String, &'static str);

/// Throttle time and count per principal and kind.
#[derive(Debug, Default)]
pub struct QuotaMetrics {
    throttled: Mutex<BTreeMap<SeriesKey, (Duration, u64)>>,
}

impl QuotaMetrics {
    /// Counts one answer of `principal` delayed by `delay` for `kind`.
    pub fn count(&self, principal: &str, kind: QuotaKind, delay: Duration) {
        let mut throttled = self.throttled.lock().unwrap_or_else(|e| e.into_inner());
        let entry = throttled
            .entry((principal.to_string(), kind.label()))
            .or_default();
        entry.0 += delay;
        entry.1 += 1;
    }

    /// Seconds `principal` was throttled for `kind` so far.
    pub fn throttle_seconds(&self, principal: &str, kind: QuotaKind) -> f64 {
        self.throttled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(principal.to_string(), kind.label()))
            .map_or(0.0, |e| e.0.as_secs_f64())
    }

    /// Appends both families in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let throttled = self.throttled.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            out,
            "# HELP cairn_quota_throttle_seconds_total Time answers were delayed because their principal was over a quota, by principal and quota kind."
        );
        let _ = writeln!(out, "# TYPE cairn_quota_throttle_seconds_total counter");
        for ((principal, kind), (delay, _)) in throttled.iter() {
            let _ = writeln!(
                out,
                "cairn_quota_throttle_seconds_total{{principal=\"{}\",kind=\"{kind}\"}} {:.3}",
                escape(principal),
                delay.as_secs_f64()
            );
        }
        let _ = writeln!(
            out,
            "# HELP cairn_quota_throttled_requests_total Answers delayed because their principal was over a quota, by principal and quota kind."
        );
        let _ = writeln!(out, "# TYPE cairn_quota_throttled_requests_total counter");
        for ((principal, kind), (_, count)) in throttled.iter() {
            let _ = writeln!(
                out,
                "cairn_quota_throttled_requests_total{{principal=\"{}\",kind=\"{kind}\"}} {count}",
                escape(principal)
            );
        }
    }
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_time_and_count_per_principal_and_kind() {
        let metrics = QuotaMetrics::default();
        metrics.count("User:a", QuotaKind::Produce, Duration::from_millis(1_500));
        metrics.count("User:a", QuotaKind::Produce, Duration::from_millis(500));
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(out.contains(
            "cairn_quota_throttle_seconds_total{principal=\"User:a\",kind=\"produce\"} 2.000"
        ));
        assert!(out.contains(
            "cairn_quota_throttled_requests_total{principal=\"User:a\",kind=\"produce\"} 2"
        ));
    }
}

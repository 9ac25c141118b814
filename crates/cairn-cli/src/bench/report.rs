//! What a benchmark run reports: throughput, latency percentiles from an HDR histogram, CPU per
//! GB, and the same figures as one JSON object for scripts. Also the progress line printed
//! while it runs.

use std::io::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Longest latency the histograms hold; longer ones are clamped (and still counted).
pub const MAX_LATENCY_MICROS: u64 = 600_000_000;

/// A histogram of latencies in microseconds, 3 significant digits.
///
/// # Errors
/// Only if the fixed bounds above were made invalid.
pub fn latency_histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 3)?)
}

/// Records one latency, clamped to the histogram's range.
pub fn record_latency(histogram: &mut Histogram<u64>, latency: Duration) {
    record_latencies(histogram, latency, 1);
}

/// Records `count` samples of the same `latency` at once (see [`record_latency`]).
pub fn record_latencies(histogram: &mut Histogram<u64>, latency: Duration, count: u64) {
    let micros = u64::try_from(latency.as_micros())
        .unwrap_or(MAX_LATENCY_MICROS)
        .clamp(1, MAX_LATENCY_MICROS);
    let _ = histogram.record_n(micros, count);
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// The percentiles of `histogram` (all zero when it is empty).
    pub fn of(histogram: &Histogram<u64>) -> Percentiles {
        let ms = |micros: u64| micros as f64 / 1000.0;
        if histogram.is_empty() {
            return Percentiles {
                p50: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
            };
        }
        Percentiles {
            p50: ms(histogram.value_at_quantile(0.50)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }

    /// As a JSON object.
    pub fn to_json(self) -> Value {
        json!({ "p50": self.p50, "p99": self.p99, "p99_9": self.p999, "max": self.max })
    }

    /// As one line of text.
    pub fn to_text(self) -> String {
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            self.p50, self.p99, self.p999, self.max
        )
    }
}

/// The line of a produce report that gives the service time: the round trip of one produce
/// request, from its send to the broker's answer, with no time in the producer's buffer.
/// `None` when no request was answered (`Producer::stats()` has no round trip to report); the
/// line then says so rather than show a made-up figure.
pub fn service_time_line(service_time: Option<Percentiles>) -> String {
    match service_time {
        Some(p) => format!(
            "service time (produce request round trip, no queueing): {}",
            p.to_text()
        ),
        None => "service time (produce request round trip): not measured; no request was answered"
            .to_string(),
    }
}

/// CPU-seconds spent per GB (10^9 bytes) of `bytes`; zero bytes give zero, not infinity.
pub fn cpu_seconds_per_gb(cpu_seconds: f64, bytes: u64) -> f64 {
    if bytes == 0 {
        return 0.0;
    }
    cpu_seconds / (bytes as f64 / 1e9)
}

/// Throughput of `records` records and `bytes` bytes over `elapsed`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Throughput {
    /// Records per second.
    pub records_per_sec: f64,
    /// Megabytes (10^6 bytes) per second.
    pub mb_per_sec: f64,
}

impl Throughput {
    /// The rates for a run.
    pub fn of(records: u64, bytes: u64, elapsed: Duration) -> Throughput {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        Throughput {
            records_per_sec: records as f64 / seconds,
            mb_per_sec: bytes as f64 / seconds / 1e6,
        }
    }
}

/// Overwrites the current stderr line with a progress report (stderr only, so stdout stays
/// clean for `--format json`).
pub fn progress(elapsed: Duration, records: u64, bytes: u64, extra: &str) {
    let rate = Throughput::of(records, bytes, elapsed);
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\r{:>6.1}s {:>10} records {:>10.0} rec/s {:>8.1} MB/s {extra}   ",
        elapsed.as_secs_f64(),
        records,
        rate.records_per_sec,
        rate.mb_per_sec
    );
    let _ = err.flush();
}

/// Ends the progress line.
pub fn progress_done() {
    eprintln!();
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut histogram = latency_histogram().unwrap();
        for ms in 1..=1000_u64 {
            record_latency(&mut histogram, Duration::from_millis(ms));
        }
        let p = Percentiles::of(&histogram);
        assert!((p.p50 - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99 - 990.0).abs() < 2.0, "{p:?}");
        assert!((p.max - 1000.0).abs() < 1.0, "{p:?}");
    }

    #[test]
    fn an_empty_run_reports_zeros_and_huge_latencies_are_clamped() {
        let mut histogram = latency_histogram().unwrap();
        assert_eq!(Percentiles::of(&histogram).max, 0.0);
        record_latency(&mut histogram, Duration::from_secs(100_000));
        assert!(Percentiles::of(&histogram).max <= MAX_LATENCY_MICROS as f64 / 1000.0 * 1.01);
    }

    #[test]
    fn the_service_time_line_never_makes_up_a_figure() {
        assert!(service_time_line(None).contains("not measured"));
        let p = Percentiles {
            p50: 1.0,
            p99: 2.0,
            p999: 3.0,
            max: 4.0,
        };
        let line = service_time_line(Some(p));
        assert!(
            line.contains("round trip") && line.contains("p50 1.00 ms"),
            "{line}"
        );
    }

    #[test]
    fn cpu_per_gb_scales_by_the_bytes() {
        assert_eq!(cpu_seconds_per_gb(2.0, 500_000_000), 4.0);
        assert_eq!(cpu_seconds_per_gb(2.0, 0), 0.0);
    }

    #[test]
    fn throughput_is_per_second() {
        let t = Throughput::of(1000, 2_000_000, Duration::from_secs(2));
        assert_eq!(t.records_per_sec, 500.0);
        assert_eq!(t.mb_per_sec, 1.0);
    }
}

//! [`RateWindow`]: how much one principal did of one kind (bytes produced, bytes fetched,
//! requests) over the last few seconds, and how long to delay its answer so that its rate comes
//! back to a quota. Pure: the caller passes the time (milliseconds on any monotonic clock), so
//! the tests drive it with a made-up clock.
//!
//! The window is [`SAMPLE_COUNT`] samples of [`SAMPLE_MS`] each (Kafka's default shape: eleven
//! one-second samples). A sample starts at its first record, and samples older than the window
//! are dropped, so the rate is the total over the time since the oldest kept sample started.
//! That time counts as at least [`MIN_ELAPSED_MS`]: a principal idle for a while may send up to
//! one second's worth at once without delay, and a lone request never waits.

use std::collections::VecDeque;

/// Length of one sample.
pub const SAMPLE_MS: u64 = 1_000;

/// Samples kept; the window spans `SAMPLE_COUNT * SAMPLE_MS`.
pub const SAMPLE_COUNT: usize = 11;

/// The least elapsed time a rate is computed over (one sample): the burst allowed after idling.
pub const MIN_ELAPSED_MS: u64 = SAMPLE_MS;

#[derive(Clone, Copy, Debug)]
struct Sample {
    start_ms: u64,
    amount: u64,
}

/// Recent amounts of one kind, in samples.
#[derive(Clone, Debug, Default)]
pub struct RateWindow {
    samples: VecDeque<Sample>,
}

impl RateWindow {
    /// An empty window.
    pub fn new() -> RateWindow {
        RateWindow::default()
    }

    /// Adds `amount` at `now_ms`. A time before the newest sample (a clock that went back) is
    /// counted in the newest sample.
    pub fn record(&mut self, now_ms: u64, amount: u64) {
        self.expire(now_ms);
        match self.samples.back_mut() {
            Some(last) if now_ms < last.start_ms.saturating_add(SAMPLE_MS) => {
                last.amount = last.amount.saturating_add(amount);
            }
            _ => self.samples.push_back(Sample {
                start_ms: now_ms,
                amount,
            }),
        }
        while self.samples.len() > SAMPLE_COUNT {
            self.samples.pop_front();
        }
    }

    /// The total over the window at `now_ms`.
    pub fn total(&mut self, now_ms: u64) -> u64 {
        self.expire(now_ms);
        self.samples.iter().map(|s| s.amount).sum()
    }

    /// The time the window's total is spread over at `now_ms`, at least [`MIN_ELAPSED_MS`].
    fn elapsed_ms(&self, now_ms: u64) -> u64 {
        let start = self.samples.front().map_or(now_ms, |s| s.start_ms);
        now_ms.saturating_sub(start).max(MIN_ELAPSED_MS)
    }

    /// The rate at `now_ms`, per second.
    pub fn rate_per_sec(&mut self, now_ms: u64) -> f64 {
        let total = self.total(now_ms);
        total as f64 * 1_000.0 / self.elapsed_ms(now_ms) as f64
    }

    /// How long (ms) to delay an answer at `now_ms` so that the rate, with nothing more
    /// recorded, is back at `quota_per_sec`: the time at which the total would be exactly the
    /// quota's worth, less the time already elapsed. Zero while at or under the quota.
    pub fn delay_ms(&mut self, now_ms: u64, quota_per_sec: u64) -> u64 {
        if quota_per_sec == 0 {
            // A quota of zero is refused when set; treat one as no quota rather than divide.
            return 0;
        }
        let total = u128::from(self.total(now_ms));
        let due_ms = total * 1_000 / u128::from(quota_per_sec);
        let due_ms = u64::try_from(due_ms).unwrap_or(u64::MAX);
        due_ms.saturating_sub(self.elapsed_ms(now_ms))
    }

    /// True if nothing was recorded within the window before `now_ms` (the window can go).
    pub fn is_idle(&mut self, now_ms: u64) -> bool {
        self.expire(now_ms);
        self.samples.is_empty()
    }

    /// Drops samples that started a whole window or more before `now_ms`.
    fn expire(&mut self, now_ms: u64) {
        let span = SAMPLE_MS * SAMPLE_COUNT as u64;
        while self
            .samples
            .front()
            .is_some_and(|s| now_ms.saturating_sub(s.start_ms) >= span)
        {
            self.samples.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_the_quota_nothing_is_delayed() {
        let mut window = RateWindow::new();
        // 100 B/s quota, 50 B every 500 ms: exactly the quota, never over.
        for step in 0..40u64 {
            let now = step * 500;
            window.record(now, 50);
            assert!(window.delay_ms(now, 100) <= 500, "step {step}");
        }
        let mut lone = RateWindow::new();
        lone.record(7, 10);
        assert_eq!(lone.delay_ms(7, 100), 0, "one second's worth goes at once");
    }

    #[test]
    fn the_delay_brings_the_rate_back_to_the_quota() {
        let mut window = RateWindow::new();
        window.record(0, 1_000);
        // 1000 B at 100 B/s is due at 10 s; one second (the minimum) counts as elapsed.
        assert_eq!(window.delay_ms(0, 100), 9_000);
        // Waiting the delay out, the rate is exactly the quota.
        assert_eq!(window.delay_ms(10_000, 100), 0);
        assert!((window.rate_per_sec(10_000) - 100.0).abs() < 1e-9);
    }

    #[test]
    fn a_client_that_waits_each_delay_out_gets_the_quota() {
        let (mut window, mut now, mut sent) = (RateWindow::new(), 0u64, 0u64);
        let quota = 1_000;
        while now < 60_000 {
            window.record(now, 300);
            sent += 300;
            now += window.delay_ms(now, quota).max(1);
        }
        // Over a minute, at most the one-second burst above the quota.
        let rate = sent as f64 * 1_000.0 / now as f64;
        assert!(rate <= 1_000.0 * 62.0 / 60.0, "rate {rate}");
        assert!(rate >= 950.0, "rate {rate}");
    }

    #[test]
    fn old_samples_leave_the_window() {
        let mut window = RateWindow::new();
        window.record(0, 500);
        window.record(1_500, 5);
        assert_eq!(window.total(10_999), 505);
        assert_eq!(window.total(11_000), 5);
        assert_eq!(window.total(13_000), 0);
        assert!(window.is_idle(13_000));
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let mut window = RateWindow::new();
        window.record(0, u64::MAX);
        window.record(1, u64::MAX);
        assert_eq!(window.delay_ms(1, 1), u64::MAX - MIN_ELAPSED_MS);
        assert_eq!(window.delay_ms(1, 0), 0);
        window.record(u64::MAX, 1);
        assert_eq!(window.total(u64::MAX), 1);
    }
}

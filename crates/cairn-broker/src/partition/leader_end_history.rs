//! [`LeaderEndHistory`]: when a partition leader's log grew past each end it has had this term,
//! so that a follower's lag can be told in seconds as well as in entries.
//!
//! A follower's lag in seconds is how long it has been behind: the time since the leader's log
//! first grew past the end of the follower's copy, and 0 while the follower holds everything
//! the leader has. This is Kafka's measure (the time since the follower was last caught up,
//! which `replica.lag.time.max.ms` judges): a follower that keeps up under steady load is a
//! round trip behind, not "behind since the load began", and a stalled one ages from the moment
//! the leader moved on without it.
//!
//! Pure state: no clock and no I/O (callers pass monotonic milliseconds), so every rule is unit
//! tested. It holds at most [`HISTORY_SAMPLES_MAX`] samples, thinning old ones first. Merging
//! two samples keeps the earlier time, so a figure read through a merged sample can only be too high, never too low:
//! a lagging follower is never reported as caught up. The invariant: samples ascend strictly in
//! end and do not descend in time.

use std::collections::VecDeque;

/// Samples kept per partition led here. Past it two are merged, old ones first, so old
/// history thins out while the newest stays sharp.
pub(crate) const HISTORY_SAMPLES_MAX: usize = 64;

/// A growth of the leader's log within this long of the newest sample joins that sample rather
/// than starting one: under steady load the log grows on every append, and one sample per
/// append would spend the whole history on the last few milliseconds.
pub(crate) const SAMPLE_SPACING_MS: u64 = 100;

/// One step of the leader's log: it first grew past the previous sample's end at `since_ms`
/// and had reached `end` by the next sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sample {
    /// The log end (entries, the next index to be written) the step reached.
    end: u64,
    /// When the leader's log was first seen past the previous sample's end.
    since_ms: u64,
}

/// When a leader's log grew past each end it has had during one term.
#[derive(Debug, Default)]
pub(crate) struct LeaderEndHistory {
    /// The term the samples belong to; `None` while this node does not lead.
    term: Option<u64>,
    samples: VecDeque<Sample>,
}

impl LeaderEndHistory {
    /// Records that, at `now_ms`, this node leads in `term` with a log ending at `leader_end`,
    /// and that its followers' copies end at `follower_ends`. A new term starts a new history:
    /// how long a follower was behind a previous leader is not known here, so it is counted
    /// from the first observation of this term at the earliest. Samples every follower has
    /// passed are dropped.
    pub(crate) fn observe(
        &mut self,
        now_ms: u64,
        term: u64,
        leader_end: u64,
        follower_ends: impl IntoIterator<Item = u64>,
    ) {
        if self.term != Some(term) {
            self.term = Some(term);
            self.samples.clear();
        }
        match self.samples.back_mut() {
            Some(newest) if leader_end <= newest.end => {}
            Some(newest) if now_ms.saturating_sub(newest.since_ms) < SAMPLE_SPACING_MS => {
                newest.end = leader_end;
            }
            _ => {
                self.samples.push_back(Sample {
                    end: leader_end,
                    since_ms: now_ms,
                });
                if self.samples.len() > HISTORY_SAMPLES_MAX {
                    self.merge_cheapest(now_ms);
                }
            }
        }
        if let Some(slowest) = follower_ends.into_iter().min() {
            while self.samples.front().is_some_and(|s| s.end <= slowest) {
                self.samples.pop_front();
            }
        }
        self.check();
    }

    /// Forgets the history: this node no longer leads.
    pub(crate) fn step_down(&mut self) {
        self.term = None;
        self.samples.clear();
    }

    /// Milliseconds a follower whose copy ends at `follower_end` has been behind at `now_ms`:
    /// since the leader's log first grew past that end, or 0 when it has not (the follower has
    /// everything the leader had at the last observation).
    pub(crate) fn lag_ms(&self, follower_end: u64, now_ms: u64) -> u64 {
        self.samples
            .iter()
            .find(|s| s.end > follower_end)
            .map_or(0, |s| now_ms.saturating_sub(s.since_ms))
    }

    /// Merges the adjacent pair whose merge costs least into the earlier sample, which keeps
    /// its time. The ends the later sample covered then read as behind since the earlier time:
    /// an overstatement by at most the gap between them. The cost weighed is that gap relative
    /// to the later sample's age (the smallest lag read through it), so recent history stays
    /// sharp and old history thins out, each figure off by about the same fraction. The oldest
    /// sample's time is never changed, so the slowest follower's figure stays exact.
    fn merge_cheapest(&mut self, now_ms: u64) {
        let cost = |i: usize| {
            let since = |j: usize| self.samples.get(j).map_or(0, |s| s.since_ms);
            let gap = since(i + 1).saturating_sub(since(i));
            let age = now_ms.saturating_sub(since(i + 1));
            (u128::from(gap), u128::from(age))
        };
        // gap_a / age_a < gap_b / age_b, cross-multiplied so an age of 0 (an infinite cost)
        // needs no division.
        let cheapest = (0..self.samples.len().saturating_sub(1)).min_by(|&a, &b| {
            let ((gap_a, age_a), (gap_b, age_b)) = (cost(a), cost(b));
            (gap_a * age_b).cmp(&(gap_b * age_a))
        });
        if let Some(i) = cheapest
            && let Some(later) = self.samples.remove(i + 1)
            && let Some(earlier) = self.samples.get_mut(i)
        {
            earlier.end = later.end;
        }
    }

    fn check(&self) {
        debug_assert!(
            self.samples.len() <= HISTORY_SAMPLES_MAX,
            "{} samples, limit {HISTORY_SAMPLES_MAX}",
            self.samples.len()
        );
        debug_assert!(
            self.samples
                .iter()
                .zip(self.samples.iter().skip(1))
                .all(|(a, b)| a.end < b.end && a.since_ms <= b.since_ms),
            "samples out of order: {:?}",
            self.samples
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TERM: u64 = 3;

    #[test]
    fn a_follower_holding_the_leaders_whole_log_has_no_lag() {
        let mut history = LeaderEndHistory::default();
        history.observe(1_000, TERM, 10, [10, 10]);
        history.observe(9_000, TERM, 10, [10, 10]);
        assert_eq!(history.lag_ms(10, 9_000), 0);
    }

    #[test]
    fn a_stalled_follower_is_behind_since_the_leader_moved_past_it() {
        let mut history = LeaderEndHistory::default();
        history.observe(1_000, TERM, 10, [10, 10]);
        // The leader grows at 2 s; follower 3 copies it, the other stays at 10.
        history.observe(2_000, TERM, 15, [15, 10]);
        history.observe(5_000, TERM, 20, [20, 10]);
        assert_eq!(history.lag_ms(10, 7_500), 5_500, "behind since 2 s");
        assert_eq!(history.lag_ms(20, 7_500), 0, "caught up");
        // Partly caught up: it now has what the leader had until 5 s.
        assert_eq!(history.lag_ms(15, 7_500), 2_500);
    }

    #[test]
    fn a_follower_that_keeps_up_under_steady_load_lags_by_one_step_not_since_the_load_began() {
        let mut history = LeaderEndHistory::default();
        // The leader appends every 200 ms; the follower copies each append 50 ms later, so at
        // every observation it is one append behind.
        let mut end = 0;
        for step in 0..100u64 {
            let t = step * 200;
            end += 1;
            history.observe(t, TERM, end, [end - 1]);
            assert_eq!(
                history.lag_ms(end - 1, t + 40),
                40,
                "one append behind, 40 ms old"
            );
            history.observe(t + 50, TERM, end, [end]);
            assert_eq!(history.lag_ms(end, t + 60), 0);
        }
    }

    #[test]
    fn growth_closer_than_the_spacing_joins_the_newest_sample_and_can_only_overstate() {
        let mut history = LeaderEndHistory::default();
        history.observe(1_000, TERM, 10, [5]);
        history.observe(1_000 + SAMPLE_SPACING_MS - 1, TERM, 12, [5]);
        assert_eq!(history.lag_ms(5, 2_000), 1_000, "exact: passed at 1_000");
        // The end 11 was first passed at 1_099, but the merged sample says 1_000.
        assert_eq!(history.lag_ms(11, 2_000), 1_000);
        assert_eq!(history.lag_ms(12, 2_000), 0);
    }

    #[test]
    fn a_new_term_counts_from_its_first_observation() {
        let mut history = LeaderEndHistory::default();
        history.observe(1_000, TERM, 10, [5]);
        history.observe(8_000, TERM + 1, 12, [5]);
        assert_eq!(history.lag_ms(5, 9_000), 1_000);
        history.step_down();
        assert_eq!(history.lag_ms(5, 9_000), 0, "a follower has no history");
    }

    #[test]
    fn the_history_stays_bounded_and_keeps_the_oldest_time_exact() {
        let mut history = LeaderEndHistory::default();
        // A follower stuck at 0 while the leader grows every second for ten minutes.
        for second in 1..=600u64 {
            history.observe(second * 1_000, TERM, second, [0]);
        }
        assert!(history.samples.len() <= HISTORY_SAMPLES_MAX);
        assert_eq!(history.lag_ms(0, 601_000), 600_000, "behind since 1 s");
        // Someone halfway holds what the leader had at 300 s: read through merged samples,
        // the figure may be high but never low, and stays within a fifth.
        let lag = history.lag_ms(300, 601_000);
        assert!(lag >= 300_000, "understated: {lag}");
        assert!(lag <= 360_000, "far too high: {lag}");
        // The newest history stays sharp: what the leader had until 590 s.
        assert_eq!(history.lag_ms(590, 601_000), 10_000);
    }

    #[test]
    fn samples_every_follower_passed_are_dropped() {
        let mut history = LeaderEndHistory::default();
        for second in 1..=10u64 {
            history.observe(second * 1_000, TERM, second, [second]);
        }
        assert!(history.samples.len() <= 1, "{:?}", history.samples);
    }
}

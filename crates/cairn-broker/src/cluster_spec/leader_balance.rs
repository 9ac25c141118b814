//! [`LeaderBalanceSettings`]: how often a node moves the leaderships it holds back to their
//! preferred replicas (Kafka's `auto.leader.rebalance.enable` and
//! `leader.imbalance.check.interval.seconds`), from one operator setting, the interval. It is
//! pure: text in, checked settings or a typed [`ClusterSpecError`] out.
//!
//! Why one setting and not three: the settle time and the per-pass bound follow from the
//! interval. A preferred node must answer probes for [`SETTLE_INTERVALS`] whole intervals
//! before leaderships go back to it, so a node that keeps dropping out pulls nothing back; and
//! a pass moves at most [`DEFAULT_MOVES_PER_PASS`] leaderships, so a returning node that
//! prefers 1,000 partitions takes them back over a few passes rather than in one storm of
//! elections.

use std::time::Duration;

use super::ClusterSpecError;

/// Default interval between two automatic balancing passes: 10 s. Kafka checks every 300 s
/// because its moves go through the controller; a move here is one vote round trip started by
/// the leader itself, so leaderships can come back soon after a restart without costing much.
pub const DEFAULT_LEADER_BALANCE_INTERVAL_MS: u64 = 10_000;

/// Longest interval accepted: one day. Past it balancing is effectively off, which `0` says
/// plainly; a larger figure is surely a typo.
pub const MAX_LEADER_BALANCE_INTERVAL_MS: u64 = 86_400_000;

/// Whole intervals a preferred replica's node must have answered probes without a break
/// before an automatic pass moves a leadership to it.
pub const SETTLE_INTERVALS: u32 = 3;

/// Most leaderships one node moves in one pass (automatic or asked for).
pub const DEFAULT_MOVES_PER_PASS: u32 = 64;

/// Preferred-leader balancing as this node runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderBalanceSettings {
    /// Between automatic passes; `None` turns automatic balancing off (a pass asked for with
    /// `cairn cluster balance-leaders` still runs).
    pub interval: Option<Duration>,
    /// How long a preferred replica's node must have been reachable before an automatic pass
    /// moves a leadership to it (a pass asked for does not wait).
    pub settle: Duration,
    /// Most leaderships one pass moves.
    pub moves_per_pass_max: u32,
}

impl Default for LeaderBalanceSettings {
    fn default() -> Self {
        LeaderBalanceSettings::every(Some(Duration::from_millis(
            DEFAULT_LEADER_BALANCE_INTERVAL_MS,
        )))
    }
}

impl LeaderBalanceSettings {
    /// Settings for passes every `interval` (`None`: no automatic passes), with the settle
    /// time and per-pass bound that follow from it (see the module docs).
    pub fn every(interval: Option<Duration>) -> LeaderBalanceSettings {
        let settle = interval
            .unwrap_or(Duration::from_millis(DEFAULT_LEADER_BALANCE_INTERVAL_MS))
            .saturating_mul(SETTLE_INTERVALS);
        LeaderBalanceSettings {
            interval,
            settle,
            moves_per_pass_max: DEFAULT_MOVES_PER_PASS,
        }
    }

    /// Settings from the interval as text, whole milliseconds, `0` meaning off; `None` takes
    /// [`DEFAULT_LEADER_BALANCE_INTERVAL_MS`].
    ///
    /// # Errors
    /// [`ClusterSpecError::InvalidLeaderBalanceInterval`] for anything but a whole number from
    /// 0 to [`MAX_LEADER_BALANCE_INTERVAL_MS`].
    pub fn parse(text: Option<&str>) -> Result<LeaderBalanceSettings, ClusterSpecError> {
        let Some(text) = text else {
            return Ok(LeaderBalanceSettings::default());
        };
        let ms = text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms <= MAX_LEADER_BALANCE_INTERVAL_MS)
            .ok_or_else(|| ClusterSpecError::InvalidLeaderBalanceInterval {
                text: text.to_string(),
            })?;
        Ok(LeaderBalanceSettings::every(
            (ms > 0).then(|| Duration::from_millis(ms)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_sets_the_settle_time_and_zero_turns_passes_off() {
        let settings = LeaderBalanceSettings::parse(Some("500")).expect("valid");
        assert_eq!(settings.interval, Some(Duration::from_millis(500)));
        assert_eq!(settings.settle, Duration::from_millis(1_500));
        let off = LeaderBalanceSettings::parse(Some("0")).expect("valid");
        assert_eq!(off.interval, None);
        assert_eq!(
            LeaderBalanceSettings::parse(None).expect("default"),
            LeaderBalanceSettings::default()
        );
    }

    #[test]
    fn anything_but_whole_milliseconds_up_to_a_day_is_refused_by_name() {
        for bad in ["-1", "1.5", "ten", "", "86400001"] {
            assert_eq!(
                LeaderBalanceSettings::parse(Some(bad)),
                Err(ClusterSpecError::InvalidLeaderBalanceInterval {
                    text: bad.to_string()
                }),
                "{bad:?}"
            );
        }
    }
}

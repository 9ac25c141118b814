//! [`Throttler`]: the rate windows of every principal on this node, and the delay each answer
//! owes. Quotas are enforced per node, as Kafka's are per broker: a principal that spreads its
//! requests over three nodes may get three times its quota in all.
//!
//! It reads the time itself (a monotonic clock from its creation) but keeps the rules in
//! [`RateWindow`], which the tests drive with a made-up clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_controller::security::quota::QuotaLimits;

use super::window::RateWindow;

/// The longest an answer is delayed (Kafka caps its throttle at the request timeout, 30 s by
/// default): past it a client would time out and retry, which is more load, not less.
pub const MAX_THROTTLE: Duration = Duration::from_secs(30);

/// Principals with windows beyond which idle ones are dropped (a bound on memory; principals
/// are proven names, so the set is small, but an mTLS CA may sign many).
const PRINCIPAL_WINDOWS_MAX: usize = 10_000;

/// What a quota limits, as the metrics label it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    /// Produced bytes, against `producer_byte_rate`.
    Produce,
    /// Fetched bytes (fetch, subscribe, replay), against `consumer_byte_rate`.
    Fetch,
    /// Requests, against `request_rate`.
    Request,
}

impl QuotaKind {
    /// Every kind, in label order.
    pub const ALL: [QuotaKind; 3] = [QuotaKind::Produce, QuotaKind::Fetch, QuotaKind::Request];

    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            QuotaKind::Produce => "produce",
            QuotaKind::Fetch => "fetch",
            QuotaKind::Request => "request",
        }
    }

    fn limit(self, limits: &QuotaLimits) -> Option<u64> {
        match self {
            QuotaKind::Produce => limits.producer_byte_rate,
            QuotaKind::Fetch => limits.consumer_byte_rate,
            QuotaKind::Request => limits.request_rate,
        }
    }

    fn idx(self) -> usize {
        match self {
            QuotaKind::Produce => 0,
            QuotaKind::Fetch => 1,
            QuotaKind::Request => 2,
        }
    }
}

/// One request's use, for [`Throttler::record`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes produced.
    pub produced_bytes: u64,
    /// Bytes fetched.
    pub fetched_bytes: u64,
}

/// A delay owed, and which quota it is for (the largest of the delays, when several).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttle {
    /// How long to delay the answer, at most [`MAX_THROTTLE`].
    pub delay: Duration,
    /// The quota that asked for it.
    pub kind: QuotaKind,
}

/// The windows of every principal that has a rate quota.
#[derive(Debug)]
pub struct Throttler {
    epoch: Instant,
    windows: Mutex<HashMap<Arc<str>, [RateWindow; 3]>>,
}

impl Default for Throttler {
    fn default() -> Self {
        Throttler::new()
    }
}

impl Throttler {
    /// No windows yet.
    pub fn new() -> Throttler {
        Throttler {
            epoch: Instant::now(),
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Records one request of `principal` using `usage` now, and answers the delay it owes
    /// under `limits`, if any. Kinds without a limit are not recorded.
    pub fn record(&self, principal: &str, limits: &QuotaLimits, usage: Usage) -> Option<Throttle> {
        let now_ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= PRINCIPAL_WINDOWS_MAX && !windows.contains_key(principal) {
            windows.retain(|_, w| !w.iter_mut().all(|w| w.is_idle(now_ms)));
        }
        let entry = windows.entry(Arc::from(principal)).or_default();
        let mut owed: Option<Throttle> = None;
        for kind in QuotaKind::ALL {
            let Some(limit) = kind.limit(limits) else {
                continue;
            };
            let amount = match kind {
                QuotaKind::Produce => usage.produced_bytes,
                QuotaKind::Fetch => usage.fetched_bytes,
                QuotaKind::Request => 1,
            };
            let window = &mut entry[kind.idx()];
            if amount > 0 {
                window.record(now_ms, amount);
            }
            let delay = Duration::from_millis(window.delay_ms(now_ms, limit)).min(MAX_THROTTLE);
            if !delay.is_zero() && owed.is_none_or(|o| o.delay < delay) {
                owed = Some(Throttle { delay, kind });
            }
        }
        owed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_delay_is_owed_and_unlimited_kinds_owe_nothing() {
        let throttler = Throttler::new();
        let limits = QuotaLimits {
            producer_byte_rate: Some(1_000),
            request_rate: Some(1_000),
            ..QuotaLimits::default()
        };
        let usage = Usage {
            produced_bytes: 5_000,
            fetched_bytes: 1 << 40,
        };
        let owed = throttler.record("User:a", &limits, usage).unwrap();
        assert_eq!(owed.kind, QuotaKind::Produce);
        // 5 s due, at most one second elapsed counted (a loaded test machine may add a little).
        assert!(owed.delay <= Duration::from_secs(4), "{owed:?}");
        assert!(owed.delay >= Duration::from_secs(3), "{owed:?}");
        assert_eq!(
            throttler.record("User:b", &QuotaLimits::default(), usage),
            None
        );
        let huge = Usage {
            produced_bytes: u64::MAX,
            fetched_bytes: 0,
        };
        let capped = throttler.record("User:c", &limits, huge).unwrap();
        assert_eq!(capped.delay, MAX_THROTTLE);
    }
}

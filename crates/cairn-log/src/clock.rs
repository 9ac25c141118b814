//! Time, injected: the log and the broker read it only through a [`Clock`], so tests decide
//! what "now" is for `segment.ms` rolls, `retention.ms` and session timeouts.
//!
//! A clock gives two readings. The wall clock is for what is stored or shown (record and
//! commit timestamps, retention by age). The monotonic reading is for timeouts: an NTP step, a
//! migrated VM or an operator's `date -s` moves the wall clock by any amount, and a session
//! timeout measured on it would expire every member at once, or none for an hour.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

/// A source of wall-clock and monotonic time in milliseconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Milliseconds since an arbitrary start, on a clock that never goes back and does not jump
    /// when the wall clock is set. For measuring timeouts; never stored or shown.
    fn monotonic_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }

    fn monotonic_ms(&self) -> u64 {
        static START: OnceLock<Instant> = OnceLock::new();
        let start = *START.get_or_init(Instant::now);
        u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A clock that moves only when told to, for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicI64,
    elapsed_ms: AtomicU64,
}

impl ManualClock {
    /// A clock reading `now_ms`.
    pub fn new(now_ms: i64) -> ManualClock {
        ManualClock {
            now_ms: AtomicI64::new(now_ms),
            elapsed_ms: AtomicU64::new(0),
        }
    }

    /// Lets `delta_ms` pass: both readings move forward (a negative delta moves only the wall
    /// clock back, as a step would).
    pub fn advance(&self, delta_ms: i64) {
        self.now_ms.fetch_add(delta_ms, Ordering::SeqCst);
        if let Ok(elapsed) = u64::try_from(delta_ms) {
            self.elapsed_ms.fetch_add(elapsed, Ordering::SeqCst);
        }
    }

    /// Sets the wall clock, as a step of it would: the monotonic reading stays where it was.
    pub fn set(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    fn monotonic_ms(&self) -> u64 {
        self.elapsed_ms.load(Ordering::SeqCst)
    }
}

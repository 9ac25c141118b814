//! The pause before a link to a peer is tried again after it failed: doubling from a minimum to
//! a maximum, back to the minimum once a stream opens. No jitter: there is one link per node
//! pair, so no herd of clients retries in step.

use std::time::Duration;

/// Reconnection pauses of one link.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Pauses from `min` doubling up to `max` (`max` below `min` is taken as `min`).
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The pause after one more failure in a row.
    pub(crate) fn failed(&mut self) -> Duration {
        let pause = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        pause
    }

    /// A stream opened: the next failure pauses the minimum again.
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_maximum_and_reset_to_the_minimum() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(50), ms(300));
        let pauses: Vec<_> = (0..5).map(|_| backoff.failed()).collect();
        assert_eq!(pauses, vec![ms(50), ms(100), ms(200), ms(300), ms(300)]);
        backoff.reset();
        assert_eq!(backoff.failed(), ms(50));
    }

    #[test]
    fn a_maximum_below_the_minimum_is_the_minimum() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(50), ms(10));
        assert_eq!(backoff.failed(), ms(50));
        assert_eq!(backoff.failed(), ms(50));
    }
}

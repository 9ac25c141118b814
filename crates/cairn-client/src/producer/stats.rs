//! What a producer measures about its own requests: how many it sent, how many failed, and the
//! round trip of each produce request (the service time, apart from the time records wait in
//! the buffer), in a fixed log-linear histogram that every request task records into without
//! a lock.
//!
//! Why the split matters: a record's latency from `send` to its acknowledgement is queueing
//! plus service. At full speed the queueing dominates (records wait behind the buffer), and a
//! user who sees a p50 of hundreds of milliseconds needs to know that the broker answered each
//! request in a millisecond or two.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::ClientError;

/// Buckets per power of two: a value is known to within 1/16 (6.25%).
const SUB_BUCKETS: u64 = 16;
/// Values below this many microseconds get a bucket each.
const LINEAR_BELOW: u64 = SUB_BUCKETS;
/// Bucket count: the linear ones, then 16 per power of two from 2^4 up to 2^63.
const BUCKETS: usize = (LINEAR_BELOW + (64 - 4) * SUB_BUCKETS) as usize;

/// The bucket of a round trip of `micros` microseconds.
fn bucket_of(micros: u64) -> usize {
    if micros < LINEAR_BELOW {
        return micros as usize;
    }
    let power = 63 - u64::from(micros.leading_zeros());
    let sub = (micros >> (power - 4)) - SUB_BUCKETS;
    (LINEAR_BELOW + (power - 4) * SUB_BUCKETS + sub) as usize
}

/// The largest value (in microseconds) that falls in bucket `index`.
fn bucket_upper(index: usize) -> u64 {
    let index = index as u64;
    if index < LINEAR_BELOW {
        return index;
    }
    let power = (index - LINEAR_BELOW) / SUB_BUCKETS + 4;
    let sub = (index - LINEAR_BELOW) % SUB_BUCKETS;
    let lower = (SUB_BUCKETS + sub) << (power - 4);
    lower + (1_u64 << (power - 4)) - 1
}

/// The recorder the request tasks share.
pub(crate) struct RequestStats {
    failed: AtomicU64,
    buckets: Box<[AtomicU64]>,
    /// The latest failed request (locked only when a request fails).
    last_failure: Mutex<Option<RequestFailure>>,
}

/// A produce request that failed: retried by the producer unless the error is final or the
/// record's delivery timeout has passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestFailure {
    /// When its answer (or the lack of one) came.
    pub at: Instant,
    /// The broker it was sent to.
    pub broker: String,
    /// What went wrong, as one line.
    pub error: String,
}

impl RequestStats {
    /// Nothing recorded yet.
    pub fn new() -> RequestStats {
        RequestStats {
            failed: AtomicU64::new(0),
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            last_failure: Mutex::new(None),
        }
    }

    /// Keeps `error`, the answer of a request sent to `broker`, as the latest failure.
    pub fn record_failure(&self, broker: &str, error: &ClientError) {
        let failure = RequestFailure {
            at: Instant::now(),
            broker: broker.to_string(),
            error: error.to_string(),
        };
        *self
            .last_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(failure);
    }

    /// One request answered after `round_trip`; `failed` if the answer was an error.
    pub fn record(&self, round_trip: Duration, failed: bool) {
        let micros = u64::try_from(round_trip.as_micros()).unwrap_or(u64::MAX);
        if let Some(bucket) = self.buckets.get(bucket_of(micros)) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        if failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A copy of the figures so far.
    pub fn snapshot(&self) -> ProducerStats {
        ProducerStats {
            last_failure: self
                .last_failure
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            failed_requests: self.failed.load(Ordering::Relaxed),
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// A producer's request figures at one moment ([`Producer::stats`](super::Producer::stats)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerStats {
    failed_requests: u64,
    buckets: Vec<u64>,
    last_failure: Option<RequestFailure>,
}

impl ProducerStats {
    /// Produce requests answered (acknowledged or failed), retries included.
    pub fn requests(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Of those, how many were answered with an error or not at all.
    pub fn failed_requests(&self) -> u64 {
        self.failed_requests
    }

    /// The latest of those failures: what a caller whose records wait can tell its user (a
    /// leader change, an unreachable broker) while the producer retries.
    pub fn last_failure(&self) -> Option<&RequestFailure> {
        self.last_failure.as_ref()
    }

    /// The `quantile` (0.0 to 1.0) of the requests' round trips, from sending a request to
    /// its answer, to within 6.25%; `None` before any request was answered.
    pub fn round_trip_quantile(&self, quantile: f64) -> Option<Duration> {
        let total = self.requests();
        if total == 0 {
            return None;
        }
        let rank = ((quantile.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Duration::from_micros(bucket_upper(index)));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lands_in_a_bucket_whose_bound_is_within_a_sixteenth() {
        for micros in (0..5_000).chain([65_535, 1 << 20, 123_456_789, u64::MAX / 2]) {
            let index = bucket_of(micros);
            assert!(index < BUCKETS, "{micros}");
            let upper = bucket_upper(index);
            assert!(upper >= micros, "{micros} above its bucket's bound {upper}");
            assert!(
                upper - micros <= micros / 16,
                "{micros}: bound {upper} too far"
            );
        }
    }

    #[test]
    fn quantiles_follow_the_recorded_round_trips() {
        let stats = RequestStats::new();
        assert_eq!(stats.snapshot().round_trip_quantile(0.5), None);
        for ms in 1..=100 {
            stats.record(Duration::from_millis(ms), ms == 100);
        }
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.requests(), 100);
        assert_eq!(snapshot.failed_requests(), 1);
        let p50 = snapshot.round_trip_quantile(0.5).expect("recorded");
        assert!(
            (Duration::from_millis(50)..=Duration::from_micros(53_200)).contains(&p50),
            "{p50:?}"
        );
        let max = snapshot.round_trip_quantile(1.0).expect("recorded");
        assert!(max >= Duration::from_millis(100), "{max:?}");
    }
}

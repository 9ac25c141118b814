//! How long segment `fdatasync` calls take, for an operator's fsync-latency histogram: a fixed
//! set of buckets kept in relaxed atomics, one process-wide instance ([`fsync_latency`]) that
//! every partition's writer thread adds to and a metrics endpoint reads at scrape time.
//!
//! It is process-wide rather than per log because the figure is the disk's, not a partition's,
//! and threading a handle through every `Log::open` would touch every caller for one number.
//! It deliberately holds no labels and renders nothing: the server owns the exposition format.
//!
//! Timing uses the monotonic clock (`Instant`) around the system call only; it never reaches
//! log decisions, so "`cairn-log` never reads the wall clock" still holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Inclusive upper bounds of the finite buckets, in nanoseconds, ascending: from a fast NVMe
/// flush (tens of microseconds) to a stalled disk (seconds). `+Inf` is implicit.
pub const FSYNC_BUCKET_UPPER_NANOS: [u64; 17] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Slots: one per finite bucket plus the overflow slot for `+Inf`.
const SLOT_COUNT: usize = FSYNC_BUCKET_UPPER_NANOS.len() + 1;

// Placement by `partition_point` needs strictly ascending bounds.
const _: () = {
    let mut idx = 1;
    while idx < FSYNC_BUCKET_UPPER_NANOS.len() {
        assert!(FSYNC_BUCKET_UPPER_NANOS[idx - 1] < FSYNC_BUCKET_UPPER_NANOS[idx]);
        idx += 1;
    }
};

/// Counts of fsync durations per bucket (not cumulative), their sum, and failures.
#[derive(Debug)]
pub struct FsyncLatency {
    slot_counts: [AtomicU64; SLOT_COUNT],
    sum_nanos: AtomicU64,
    failure_count: AtomicU64,
}

/// A copy of [`FsyncLatency`] at one moment: per-bucket counts (not cumulative), the last one
/// being `+Inf`'s overflow slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsyncSnapshot {
    /// Counts per bucket of [`FSYNC_BUCKET_UPPER_NANOS`], then the overflow count.
    pub slot_counts: Vec<u64>,
    /// The sum of every observed duration, in nanoseconds.
    pub sum_nanos: u64,
    /// fsync calls that returned an error (each also observed in the buckets).
    pub failure_count: u64,
}

impl FsyncSnapshot {
    /// Every fsync observed: the total of the slots.
    pub fn count(&self) -> u64 {
        self.slot_counts
            .iter()
            .fold(0u64, |sum, c| sum.saturating_add(*c))
    }
}

impl Default for FsyncLatency {
    fn default() -> Self {
        FsyncLatency::new()
    }
}

impl FsyncLatency {
    /// All counts at zero.
    pub const fn new() -> FsyncLatency {
        FsyncLatency {
            slot_counts: [const { AtomicU64::new(0) }; SLOT_COUNT],
            sum_nanos: AtomicU64::new(0),
            failure_count: AtomicU64::new(0),
        }
    }

    /// Counts one fsync that took `elapsed`, and whether it failed.
    pub fn observe(&self, elapsed: Duration, failed: bool) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        // `le` is inclusive: the first bucket whose bound is at or above the value.
        let slot_idx = FSYNC_BUCKET_UPPER_NANOS.partition_point(|&upper| upper < nanos);
        if let Some(slot) = self.slot_counts.get(slot_idx) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        if failed {
            self.failure_count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts now. Each is read once, so a snapshot racing writers may be a few
    /// observations behind but is never ahead of what happened.
    pub fn snapshot(&self) -> FsyncSnapshot {
        FsyncSnapshot {
            slot_counts: self
                .slot_counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum_nanos: self.sum_nanos.load(Ordering::Relaxed),
            failure_count: self.failure_count.load(Ordering::Relaxed),
        }
    }
}

static FSYNC_LATENCY: FsyncLatency = FsyncLatency::new();

/// The process-wide fsync latency of segment files, added to by every log in this process.
pub fn fsync_latency() -> &'static FsyncLatency {
    &FSYNC_LATENCY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_inclusive_buckets_and_count_failures() {
        let latency = FsyncLatency::new();
        latency.observe(Duration::from_micros(50), false);
        latency.observe(Duration::from_nanos(50_001), false);
        latency.observe(Duration::from_millis(3), true);
        latency.observe(Duration::from_secs(11), false);
        let snap = latency.snapshot();
        let mut expected = vec![0u64; SLOT_COUNT];
        expected[0] = 1;
        expected[1] = 1;
        expected[6] = 1;
        expected[SLOT_COUNT - 1] = 1;
        assert_eq!(snap.slot_counts, expected);
        assert_eq!(snap.count(), 4);
        assert_eq!(snap.failure_count, 1);
        assert_eq!(snap.sum_nanos, 50_000 + 50_001 + 3_000_000 + 11_000_000_000);
    }

    #[test]
    fn a_log_flush_is_observed_process_wide() {
        use crate::batch::{Batch, BatchBuilder, Compression, RecordInput};
        let dir = tempfile::tempdir().unwrap();
        let mut log = crate::Log::open(dir.path(), crate::LogConfig::default(), 0).unwrap();
        let before = fsync_latency().snapshot().count();
        let mut builder = BatchBuilder::new(Compression::None);
        let record = RecordInput {
            key: None,
            value: Some(b"v"),
            headers: &[],
            timestamp_ms: 0,
        };
        builder.push(&record).unwrap();
        let batch = Batch::validate(builder.build().unwrap()).unwrap();
        log.append(&[batch], None, 0).unwrap();
        // Other tests may fsync concurrently: the count can only have grown by at least one.
        assert!(fsync_latency().snapshot().count() > before);
    }
}

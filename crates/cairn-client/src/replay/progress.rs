//! [`ReplayProgress`]: how far a replay is, per partition and in total, as a snapshot the
//! caller can print or export. It is computed from offsets, so a compacted topic (fewer records
//! than offsets) still reaches exactly 100% at its end.

use std::time::Duration;

/// One partition's position against its range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionProgress {
    /// The partition.
    pub partition: i32,
    /// Where its replay started.
    pub start_offset: i64,
    /// The next offset to hand out (everything before it has been).
    pub position: i64,
    /// The high watermark captured at start. In follow mode `position` may pass it.
    pub end_offset: i64,
}

impl PartitionProgress {
    /// Offsets left before the captured end.
    pub fn remaining(&self) -> u64 {
        u64::try_from(self.end_offset.saturating_sub(self.position)).unwrap_or(0)
    }

    /// Offsets of the range handed out so far (capped at the range).
    pub fn done(&self) -> u64 {
        let reached = self.position.min(self.end_offset);
        u64::try_from(reached.saturating_sub(self.start_offset)).unwrap_or(0)
    }

    /// Offsets in the range.
    pub fn total(&self) -> u64 {
        u64::try_from(self.end_offset.saturating_sub(self.start_offset)).unwrap_or(0)
    }
}

/// A snapshot of a replay's progress.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayProgress {
    /// Records handed to the caller.
    pub records: u64,
    /// Bytes of their keys and values.
    pub payload_bytes: u64,
    /// Time since the replay started.
    pub elapsed: Duration,
    /// Every partition, in partition order.
    pub partitions: Vec<PartitionProgress>,
}

impl ReplayProgress {
    /// Offsets in every partition's range together.
    pub fn offsets_total(&self) -> u64 {
        self.partitions.iter().map(PartitionProgress::total).sum()
    }

    /// Offsets handed out so far, capped at each range.
    pub fn offsets_done(&self) -> u64 {
        self.partitions.iter().map(PartitionProgress::done).sum()
    }

    /// The fraction of the captured range done, 0.0 to 1.0 (1.0 for an empty range).
    pub fn fraction_done(&self) -> f64 {
        let total = self.offsets_total();
        if total == 0 {
            return 1.0;
        }
        (self.offsets_done() as f64 / total as f64).min(1.0)
    }

    /// True when every partition has reached its captured end.
    pub fn caught_up(&self) -> bool {
        self.partitions.iter().all(|p| p.position >= p.end_offset)
    }

    /// Records handed out per second so far.
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Megabytes (10^6 bytes) of keys and values per second so far.
    pub fn mb_per_sec(&self) -> f64 {
        self.payload_bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The time left to the captured end at the average rate so far, or `None` before
    /// anything was read.
    pub fn eta(&self) -> Option<Duration> {
        let done = self.offsets_done();
        if done == 0 {
            return None;
        }
        let left = self.offsets_total().saturating_sub(done);
        let seconds = self.elapsed.as_secs_f64() * left as f64 / done as f64;
        Duration::try_from_secs_f64(seconds).ok()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    fn partition(start_offset: i64, position: i64, end_offset: i64) -> PartitionProgress {
        PartitionProgress {
            partition: 0,
            start_offset,
            position,
            end_offset,
        }
    }

    #[test]
    fn fraction_and_eta_come_from_offsets() {
        let progress = ReplayProgress {
            records: 10,
            payload_bytes: 100,
            elapsed: Duration::from_secs(2),
            partitions: vec![partition(0, 25, 100), partition(100, 125, 200)],
        };
        assert_eq!(progress.fraction_done(), 0.25);
        assert_eq!(progress.eta().unwrap(), Duration::from_secs(6));
        assert!(!progress.caught_up());
    }

    #[test]
    fn an_empty_range_is_done_and_following_past_the_end_caps_at_one() {
        let empty = ReplayProgress {
            records: 0,
            payload_bytes: 0,
            elapsed: Duration::ZERO,
            partitions: vec![partition(5, 5, 5)],
        };
        assert_eq!(empty.fraction_done(), 1.0);
        assert!(empty.caught_up());
        assert_eq!(empty.eta(), None);
        let past = ReplayProgress {
            partitions: vec![partition(0, 150, 100)],
            ..empty
        };
        assert_eq!(past.fraction_done(), 1.0);
        assert_eq!(past.partitions[0].remaining(), 0);
    }
}

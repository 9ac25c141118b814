//! What a partition reports about its own trouble: the first damaged batch seen (by opening,
//! a read or the scrub) and how many reads met damage. Health checks and metrics read it; no
//! decision about serving is taken from it (a damaged batch is refused by the read itself).
//! A Raft-replicated copy that heals its damage from a peer clears it (`heal`).
//!
//! Only the first damage is kept: an operator acts on a partition, not on each batch, and a
//! count that only grows is all a metric needs.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_log::{DamagedRange, LogError};

/// The first damage seen in a partition's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// The segment file and position, as `path@position`.
    pub location: String,
    /// The lowest offset the damaged batch may hold.
    pub offset: u64,
    /// What is wrong with it.
    pub reason: String,
}

impl From<&DamagedRange> for Damage {
    fn from(range: &DamagedRange) -> Damage {
        Damage {
            location: format!("{}@{}", range.path.display(), range.position.0),
            offset: range.from_offset.0,
            reason: range.reason.clone(),
        }
    }
}

/// Why a partition is not fully well, as health and metrics report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionCondition {
    /// Takes no writes and serves no reads: its log would not open, or a write or fsync failed
    /// (an fsync error is never retried; the partition recovers when the node restarts).
    Stopped {
        /// Why.
        reason: String,
    },
    /// Serves every readable offset, but holds damaged batches whose reads fail with
    /// `CORRUPT_MESSAGE`.
    Damaged(Damage),
}

/// One partition's trouble, named for an operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionProblem {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// What is wrong.
    pub condition: PartitionCondition,
    /// Reads answered with `CORRUPT_MESSAGE` since the node started.
    pub corrupt_reads: u64,
}

/// The damage record of one partition. Short `std` locks over plain data: never held across
/// an `.await`.
#[derive(Debug, Default)]
pub(super) struct DamageRecord {
    first: Mutex<Option<Damage>>,
    /// Reads answered with `CorruptBatch` since the partition opened.
    corrupt_reads: AtomicU64,
}

impl DamageRecord {
    /// A record that starts with `damage` (found while opening), if any.
    pub(super) fn starting_with(damage: Option<Damage>) -> DamageRecord {
        DamageRecord {
            first: Mutex::new(damage),
            corrupt_reads: AtomicU64::new(0),
        }
    }

    /// Counts a read that met damage and keeps it if it is the first. Returns true when it was
    /// the first, so the caller logs it once.
    pub(super) fn note_read(&self, err: &LogError) -> bool {
        let LogError::CorruptBatch {
            path,
            position,
            offset,
            reason,
        } = err
        else {
            return false;
        };
        self.corrupt_reads.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_some() {
            return false;
        }
        *first = Some(Damage {
            location: format!("{}@{}", path.display(), position.0),
            offset: offset.0,
            reason: reason.to_string(),
        });
        true
    }

    /// Keeps damage a scan found, if it is the first.
    pub(super) fn note_scanned(&self, range: &DamagedRange) {
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(Damage::from(range));
        }
    }

    /// Keeps `damage` (found by the healer's scan) if it is the first.
    pub(super) fn note_found(&self, damage: Damage) {
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(damage);
        }
    }

    /// Forgets the damage: a replicated copy rewrote every damaged committed entry with a
    /// peer's good copy, and a scan found none left. The count of damaged reads stays (it
    /// only grows).
    pub(super) fn clear(&self) {
        *self.first.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The first damage seen, if any.
    pub(super) fn first(&self) -> Option<Damage> {
        self.first.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads that met damage so far.
    pub(super) fn corrupt_reads(&self) -> u64 {
        self.corrupt_reads.load(Ordering::Relaxed)
    }
}

//! What the cleaner does with one batch: keep it as it is, rewrite it with fewer records (or a
//! new delete horizon), or drop it. The rules are `segments-format.md`, "Compaction":
//!
//! - A keyed record survives when it is the newest record of its key in the cleaned range; a
//!   record with a null key always survives (Kafka refuses them on compacted topics at produce;
//!   the log keeps what it was given rather than lose data it cannot place).
//! - A tombstone (null value) that is the newest of its key survives until its batch's KIP-534
//!   delete horizon has passed. The first clean that keeps a tombstone in a batch without a
//!   horizon sets one: `now + delete.retention.ms`, in `baseTimestamp` with attribute bit 6,
//!   re-encoding the records' timestamp deltas so that every record keeps its timestamp.
//! - Meta entries, control batches and transactional batches are never changed, and records
//!   the cleaner cannot read (a codec error, past the decompression limit) are kept as they are.
//!
//! Deciding is pure: no I/O, and the same batch, key map and time give the same answer.

use crate::batch::{Attributes, Batch, BatchError, Record};

use super::key_map::{KeyMap, is_compactable, record_offset};
use super::rewrite::{encode_record, rebuild_batch};

/// Attribute bit 6: `baseTimestamp` holds the delete horizon (KIP-534).
const DELETE_HORIZON_BIT: i16 = 0x40;

/// What to do with a batch.
#[derive(Debug)]
pub(crate) enum Filtered {
    /// Copy the batch unchanged.
    Unchanged,
    /// Write this batch instead (same base offset and last offset delta).
    Rewritten(Batch),
    /// Every record went and nothing requires the header: leave the batch out.
    Dropped,
}

/// The inputs of a decision that do not depend on the batch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FilterContext<'a> {
    pub(crate) keys: &'a KeyMap,
    pub(crate) now_ms: i64,
    pub(crate) delete_retention_ms: u64,
    pub(crate) decompress_limit_bytes: usize,
}

/// What one decision removed and what it left behind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FilterCounts {
    pub(crate) records_removed: u64,
    pub(crate) tombstones_removed: u64,
    /// The delete horizon of tombstones still kept in the batch, if any.
    pub(crate) horizon_ms: Option<i64>,
}

/// Decides what becomes of `batch`. `keep_header` says the batch must stay even with no record
/// left (the first or last batch of its segment, or the last batch of its producer id).
pub(crate) fn filter_batch(
    batch: &Batch,
    keep_header: bool,
    ctx: &FilterContext<'_>,
) -> (Filtered, FilterCounts) {
    let none = (Filtered::Unchanged, FilterCounts::default());
    if !is_compactable(batch) {
        return none;
    }
    let Ok(records) = batch.records(ctx.decompress_limit_bytes) else {
        return none;
    };
    let header = batch.header();
    let has_horizon = header.attributes.has_delete_horizon();
    let horizon_passed = has_horizon && ctx.now_ms >= header.base_timestamp;
    let mut kept: Vec<Record<'_>> = Vec::new();
    let mut counts = FilterCounts::default();
    let mut tombstone_kept = false;
    for record in records.iter() {
        let Ok(record) = record else { return none };
        let Some(offset) = record_offset(batch, &record) else {
            return none;
        };
        let newest = record
            .key
            .is_none_or(|key| ctx.keys.latest(key).is_none_or(|latest| latest <= offset));
        let expired_tombstone = record.value.is_none() && record.key.is_some() && horizon_passed;
        if newest && !expired_tombstone {
            tombstone_kept |= record.value.is_none() && record.key.is_some();
            kept.push(record);
            continue;
        }
        counts.records_removed += 1;
        if expired_tombstone && newest {
            counts.tombstones_removed += 1;
        }
    }
    let sets_horizon = tombstone_kept && !has_horizon;
    if counts.records_removed == 0 && !sets_horizon {
        counts.horizon_ms = (tombstone_kept && has_horizon).then_some(header.base_timestamp);
        return (Filtered::Unchanged, counts);
    }
    if kept.is_empty() && !keep_header {
        return (Filtered::Dropped, counts);
    }
    let (attributes, base_timestamp) = if sets_horizon {
        let horizon = ctx
            .now_ms
            .saturating_add(i64::try_from(ctx.delete_retention_ms).unwrap_or(i64::MAX));
        (
            Attributes(header.attributes.0 | DELETE_HORIZON_BIT),
            horizon,
        )
    } else {
        (header.attributes, header.base_timestamp)
    };
    match encode_kept(batch, &kept, attributes, base_timestamp) {
        Ok(rebuilt) => {
            counts.horizon_ms = tombstone_kept.then_some(base_timestamp);
            (Filtered::Rewritten(rebuilt), counts)
        }
        Err(err) => {
            tracing::warn!(offset = %batch.base_offset(), %err, "could not re-encode a cleaned batch; keeping it as it is");
            let horizon = (tombstone_kept && has_horizon).then_some(header.base_timestamp);
            (
                Filtered::Unchanged,
                FilterCounts {
                    horizon_ms: horizon,
                    ..FilterCounts::default()
                },
            )
        }
    }
}

/// Re-encodes `kept` under a header with `attributes` and `base_timestamp`, moving each
/// record's timestamp delta so that its timestamp stays what it was.
fn encode_kept(
    batch: &Batch,
    kept: &[Record<'_>],
    attributes: Attributes,
    base_timestamp: i64,
) -> Result<Batch, BatchError> {
    let mut section = Vec::with_capacity(batch.len_bytes());
    for record in kept {
        let timestamp = batch.record_timestamp(record);
        let delta = if batch.header().attributes.is_log_append_time() {
            // Under LogAppendTime every record reads the batch's max timestamp; the delta is
            // kept as it came.
            record.timestamp_delta
        } else {
            timestamp
                .checked_sub(base_timestamp)
                .ok_or(BatchError::TooLargeToEncode("timestamp delta overflows"))?
        };
        encode_record(&mut section, record, delta)?;
    }
    let count =
        i32::try_from(kept.len()).map_err(|_| BatchError::TooLargeToEncode("too many records"))?;
    rebuild_batch(batch, &section, count, attributes, base_timestamp)
}

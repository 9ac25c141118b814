//! `__consumer_offsets` as the store of committed offsets: reading it back in full when the
//! broker opens, turning commits and tombstones into its records, and applying one record to
//! the in-memory map. Loading and committing apply records through the same [`apply`], so
//! memory after a restart is what it was before.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use bytes::Bytes;
use cairn_codec::Offset;
use cairn_codec::batch::{Batch, ConsumerBatch, MAX_DECOMPRESSED_BATCH_BYTES};

use super::assignor::TopicPartition;
use super::offset_record::{
    DecodedKey, OffsetKey, OffsetValue, decode_key, decode_value, encode_key, encode_value,
};
use crate::broker::Topic;
use crate::error::BrokerError;
use crate::partition::Partition;
use crate::produce::ProduceRecord;

/// Committed offsets: group id, then partition.
pub(crate) type OffsetsByGroup = BTreeMap<String, BTreeMap<TopicPartition, OffsetValue>>;

/// Reads every partition of the offsets topic from its log start to its high watermark and
/// applies the records in order. Blocking: call from a blocking thread (it runs once, at open).
pub(crate) fn load(topic: &Topic) -> OffsetsByGroup {
    let partitions = topic.partitions_now();
    let mut offsets = OffsetsByGroup::new();
    for partition in partitions {
        // Each group's records are all in one partition, so the partitions' groups are apart.
        match load_partition(&partition) {
            Ok(loaded) => offsets.extend(loaded),
            Err(err) => {
                tracing::error!(%err, partition = partition.index(), "committed offsets of a stopped partition not loaded");
            }
        }
    }
    tracing::info!(groups = offsets.len(), "committed offsets loaded");
    offsets
}

/// Reads one partition of the offsets topic from its log start to its high watermark and
/// applies its records in order: the groups that partition holds. Blocking: call from a
/// blocking thread (at open, and when a node becomes a partition's coordinator).
///
/// Batch by batch, by the rules the offsets log's garbage collection reads it with
/// (`offsets_gc`): a damaged batch is stepped over and reported on its partition, and a batch
/// whose records cannot be read is skipped with an error, each without losing the batches
/// around it (the commits they held are lost from memory; a later commit of the same group and
/// partition, which is what a consumer makes next, supersedes them anyway). A replica may
/// delete its superseded prefix while this runs: the load then starts over from the new log
/// start (what went was all superseded).
///
/// # Errors
/// [`BrokerError::PartitionStopped`]: the partition's groups' commits are unknown until it is
/// repaired; the log's errors when its start kept moving under the load.
pub(crate) fn load_partition(partition: &Partition) -> Result<OffsetsByGroup, BrokerError> {
    let mut attempts = 0;
    loop {
        let start = partition.offsets()?.log_start_offset;
        let mut offsets = OffsetsByGroup::new();
        let mut loaded = 0u64;
        let scanned = partition.scan_batches(start.as_i64(), |batch| {
            loaded += apply_batch(&mut offsets, batch);
            ControlFlow::Continue(())
        });
        let damaged = match scanned {
            Ok(damaged) => damaged,
            Err(err)
                if attempts < LOAD_ATTEMPTS && partition.offsets()?.log_start_offset > start =>
            {
                attempts += 1;
                tracing::debug!(%err, partition = partition.index(), "the offsets log's start moved during a load; loading again");
                continue;
            }
            Err(err) => return Err(err),
        };
        for range in &damaged {
            tracing::error!(
                partition = partition.index(),
                from_offset = range.from_offset.as_i64(),
                "committed offsets in a damaged batch not loaded"
            );
            partition.note_damage(range);
        }
        tracing::debug!(
            partition = partition.index(),
            records = loaded,
            groups = offsets.len(),
            "committed offsets of one partition loaded"
        );
        return Ok(offsets);
    }
}

/// Loads tried before a log start that keeps moving is reported as an error.
const LOAD_ATTEMPTS: u32 = 8;

/// Applies one batch's records in order; returns how many were read. A batch whose records
/// cannot be read is skipped from the first unreadable record on, with an error.
fn apply_batch(offsets: &mut OffsetsByGroup, batch: &Batch) -> u64 {
    let records = match ConsumerBatch::new(batch.clone(), Offset(0), MAX_DECOMPRESSED_BATCH_BYTES) {
        Ok(Some(records)) => records,
        Ok(None) => return 0,
        Err(err) => {
            tracing::error!(base_offset = batch.base_offset().as_i64(), %err, "committed offsets in an unreadable batch not loaded");
            return 0;
        }
    };
    let mut read = 0;
    for record in records.records() {
        match record {
            Ok(record) => {
                read += 1;
                apply_stored(offsets, record.key, record.value, record.offset);
            }
            Err(err) => {
                tracing::error!(base_offset = batch.base_offset().as_i64(), %err, "committed offsets after an unreadable record not loaded");
                break;
            }
        }
    }
    read
}

/// The records of `values` for `group` (a `None` value is a tombstone).
pub(crate) fn records(
    group: &str,
    values: &[(TopicPartition, Option<OffsetValue>)],
) -> Vec<ProduceRecord> {
    values
        .iter()
        .map(|(partition, value)| ProduceRecord {
            key: Some(Bytes::from(encode_key(&OffsetKey {
                group: group.to_string(),
                partition: partition.clone(),
            }))),
            value: value.as_ref().map(|v| Bytes::from(encode_value(v))),
            headers: Vec::new(),
            timestamp_ms: 0,
        })
        .collect()
}

/// Applies one committed offset (or, with `None`, its removal); a group left without offsets
/// is forgotten.
pub(crate) fn apply(
    offsets: &mut OffsetsByGroup,
    group: &str,
    partition: TopicPartition,
    value: Option<OffsetValue>,
) {
    match value {
        Some(value) => {
            offsets
                .entry(group.to_string())
                .or_default()
                .insert(partition, value);
        }
        None => {
            if let Some(committed) = offsets.get_mut(group) {
                committed.remove(&partition);
                if committed.is_empty() {
                    offsets.remove(group);
                }
            }
        }
    }
}

/// Applies one stored record while loading (see [`stored_commit`]); records Cairn cannot read
/// are skipped with a warning.
fn apply_stored(
    offsets: &mut OffsetsByGroup,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    at: Offset,
) {
    match stored_commit(key, value) {
        Ok(Some((key, value))) => apply(offsets, &key.group, key.partition, value),
        Ok(None) => {}
        Err(why) => tracing::warn!(offset = at.as_i64(), "{why}"),
    }
}

/// What one stored record does to the committed offsets: sets (or, with a `None` value,
/// removes) the offset of its key; `Ok(None)` for a record of a kind Cairn does not keep
/// (Kafka's group metadata); an error naming what is unreadable, for a record that never held
/// an offset Cairn wrote. Loading and the offsets log's garbage collection
/// (`offsets_liveness`) both go by it, so the records the one deletes are ones the other
/// would not have used.
pub(crate) fn stored_commit(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<Option<(OffsetKey, Option<OffsetValue>)>, String> {
    let Some(key) = key else {
        return Err("__consumer_offsets record without a key skipped".to_string());
    };
    let key = match decode_key(key) {
        Ok(DecodedKey::Offset(key)) => key,
        Ok(DecodedKey::GroupMetadata) => return Ok(None),
        Err(err) => return Err(format!("unreadable __consumer_offsets key skipped: {err}")),
    };
    match value.map(decode_value).transpose() {
        Ok(value) => Ok(Some((key, value))),
        Err(err) => Err(format!(
            "unreadable __consumer_offsets value skipped: {err}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(partition: u32) -> TopicPartition {
        TopicPartition {
            topic: "orders".into(),
            partition,
        }
    }

    fn value(offset: i64) -> OffsetValue {
        OffsetValue {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 0,
        }
    }

    #[test]
    fn stored_records_replay_to_what_apply_built() {
        let values = [
            (tp(0), Some(value(5))),
            (tp(1), Some(value(9))),
            (tp(0), None),
        ];
        let mut direct = OffsetsByGroup::new();
        for (p, v) in values.clone() {
            apply(&mut direct, "g", p, v);
        }
        let mut loaded = OffsetsByGroup::new();
        for record in records("g", &values) {
            apply_stored(
                &mut loaded,
                record.key.as_deref(),
                record.value.as_deref(),
                Offset(0),
            );
        }
        assert_eq!(loaded, direct);
        assert_eq!(direct["g"].len(), 1);
        apply(&mut direct, "g", tp(1), None);
        assert!(direct.is_empty(), "a group without offsets is forgotten");
    }

    #[test]
    fn unreadable_records_are_skipped() {
        let mut offsets = OffsetsByGroup::new();
        apply_stored(&mut offsets, None, Some(b"x"), Offset(0));
        apply_stored(&mut offsets, Some(b"\x00\x09"), None, Offset(1));
        let key = encode_key(&OffsetKey {
            group: "g".into(),
            partition: tp(0),
        });
        apply_stored(&mut offsets, Some(&key), Some(b"\x00\x03"), Offset(2));
        assert!(offsets.is_empty());
    }
}

//! Keeping a replicated `__consumer_offsets` bounded. Compaction does not run on replicated
//! partitions (`segments-format.md` §14), so in a cluster every commit would stay forever: a
//! group committing every few seconds grows its partition without end, and every coordinator
//! take-over reads it all back. Instead, what compaction would do is done in two steps that
//! Raft replicates as it is:
//!
//! - **Each replica finds its superseded prefix** ([`Liveness`]): every record below the oldest
//!   record still in force (the newest record of a key that sets an offset) has a later record
//!   of its key, or is Kafka's group metadata, which loading skips; so whole segments below that
//!   point are deleted, through a Raft purge (`partition::retention_purge`). A damaged batch, or
//!   a record loading cannot read (a newer version's), ends what the scan judges: nothing at or
//!   after it counts as superseded. Each replica scans its own committed log, which is the same
//!   on every replica, so the copies delete the same records; a follower sent a snapshot starts
//!   at its leader's log start, past which nothing is missing.
//! - **The coordinator keeps that point moving** ([`spawn_copy_forward`]): a key whose newest
//!   record is old (a group that commits one partition rarely, or stopped) pins everything
//!   after it; it is committed again, with the value and commit time of that record, so that
//!   the old record is superseded too, as Kafka's cleaner copies surviving records forward.
//!   Only where memory holds the same value: memory that missed a record (a batch a load could
//!   not read) never overwrites the log's. This runs only once most of the log is garbage, so
//!   it writes at most as much as was committed.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{Arc, Weak};
use std::time::Duration;

use cairn_codec::Offset;
use cairn_codec::batch::{Batch, ConsumerBatch, MAX_DECOMPRESSED_BATCH_BYTES};

use super::assignor::TopicPartition;
use super::coordination::{Coordination, Load, lock};
use super::offset_log::stored_commit;
use super::offset_record::{OffsetKey, OffsetValue};
use crate::broker::{Broker, blocking};
use crate::error::BrokerError;
use crate::partition::Partition;
use crate::topic_name::CONSUMER_OFFSETS_TOPIC;

/// Garbage below this many records is left alone, however much of the log it is: rewriting
/// live keys to free a few kilobytes is not worth it.
pub(crate) const COPY_FORWARD_MIN_GARBAGE: u64 = 1024;

/// Which records of one offsets partition still count, from one scan of its committed log.
#[derive(Debug)]
pub(crate) struct Liveness {
    /// For every key met: its newest record's offset and value (`None`: a tombstone).
    newest: HashMap<Vec<u8>, (Offset, Option<Vec<u8>>)>,
    /// Where the scan's knowledge ends: the high watermark, the first damaged or unreadable
    /// batch, or the first record loading cannot read (a newer version's, say), which is kept
    /// with everything after it rather than judged.
    end: Offset,
    /// The high watermark the scan was to reach.
    high_watermark: Offset,
}

impl Liveness {
    /// An empty scan of a log committed up to `high_watermark`.
    pub(crate) fn new(high_watermark: Offset) -> Liveness {
        Liveness {
            newest: HashMap::new(),
            end: high_watermark,
            high_watermark,
        }
    }

    /// Takes in one batch, in log order (for `scan_batches`).
    pub(crate) fn visit(&mut self, batch: &Batch) -> ControlFlow<()> {
        if batch.base_offset() >= self.end {
            return ControlFlow::Break(());
        }
        let records =
            match ConsumerBatch::new(batch.clone(), Offset(0), MAX_DECOMPRESSED_BATCH_BYTES) {
                Ok(Some(records)) => records,
                Ok(None) => return ControlFlow::Continue(()),
                Err(_) => {
                    self.damaged_at(batch.base_offset());
                    return ControlFlow::Break(());
                }
            };
        for record in records.records() {
            let Ok(record) = record else {
                self.damaged_at(batch.base_offset());
                return ControlFlow::Break(());
            };
            if record.offset >= self.end {
                return ControlFlow::Break(());
            }
            // Only records loading applies supersede anything (see `stored_commit`).
            match (record.key, stored_commit(record.key, record.value)) {
                (Some(key), Ok(Some(_))) => {
                    let value = record.value.map(<[u8]>::to_vec);
                    self.newest.insert(key.to_vec(), (record.offset, value));
                }
                // Kafka's group metadata, which Cairn neither writes nor reads.
                (_, Ok(None)) => {}
                // (`stored_commit` refuses a record without a key.)
                (None, Ok(Some(_))) | (_, Err(_)) => {
                    self.damaged_at(record.offset);
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// Notes a damaged batch from `offset`: nothing at or past it is known, so nothing there
    /// counts as superseded.
    pub(crate) fn damaged_at(&mut self, offset: Offset) {
        self.end = self.end.min(offset);
    }

    /// Every record below this offset is superseded (or one loading skips): the oldest record
    /// still in force, or where the scan's knowledge ends.
    pub(crate) fn superseded_below(&self) -> Offset {
        self.newest
            .values()
            .filter(|(_, value)| value.is_some())
            .map(|(at, _)| *at)
            .min()
            .unwrap_or(self.end)
            .min(self.end)
    }

    /// The keys to commit again so that the superseded prefix moves: none while the garbage
    /// behind the oldest record in force is under [`COPY_FORWARD_MIN_GARBAGE`] records or under
    /// twice the keys in force (so rewriting never writes more than was committed since), or
    /// when the scan stopped short of the high watermark; otherwise every key in force whose
    /// newest record lies in the older half of that span.
    ///
    /// Each key comes with the value of its newest record, which is what to write again: the
    /// coordinator writes it only where memory holds the same (see `Broker::commit_again`).
    pub(crate) fn keys_to_copy_forward(&self) -> Vec<(OffsetKey, OffsetValue)> {
        if self.end < self.high_watermark {
            // Past where the scan stopped a key may have a newer record (one this binary
            // cannot read, or in a damaged batch a peer will heal), which writing its older
            // value again would put behind.
            return Vec::new();
        }
        let oldest = self.superseded_below();
        let live = self.newest.values().filter(|(_, v)| v.is_some()).count() as u64;
        let span = self.end.0.saturating_sub(oldest.0);
        if span < COPY_FORWARD_MIN_GARBAGE.max(live.saturating_mul(2)) {
            return Vec::new();
        }
        let below = Offset(oldest.0 + span / 2);
        self.newest
            .iter()
            .filter(|(_, (at, _))| *at < below)
            .filter_map(
                |(key, (_, value))| match stored_commit(Some(key), value.as_deref()) {
                    Ok(Some((key, Some(value)))) => Some((key, value)),
                    _ => None,
                },
            )
            .collect()
    }
}

impl Liveness {
    /// Scans a committed log up to `high_watermark` with `scan_batches` (a replica's or a
    /// partition's, from its log start), which steps over damaged batches and returns them.
    ///
    /// # Errors
    /// What `scan_batches` returns.
    pub(crate) fn scan<E>(
        high_watermark: Offset,
        scan_batches: impl FnOnce(
            &mut dyn FnMut(&Batch) -> ControlFlow<()>,
        ) -> Result<Vec<cairn_log::DamagedRange>, E>,
    ) -> Result<Liveness, E> {
        let mut liveness = Liveness::new(high_watermark);
        let damaged = scan_batches(&mut |batch| liveness.visit(batch))?;
        if let Some(first) = damaged.iter().map(|d| d.from_offset).min() {
            liveness.damaged_at(first);
        }
        Ok(liveness)
    }
}

/// Scans one offsets partition's committed log (its copy on this node).
///
/// # Errors
/// [`BrokerError::PartitionStopped`], the log's `OffsetOutOfRange`.
pub(crate) fn scan_partition(partition: &Partition) -> Result<Liveness, BrokerError> {
    let bounds = partition.offsets()?;
    Liveness::scan(bounds.high_watermark, |visit| {
        partition.scan_batches(bounds.log_start_offset.as_i64(), visit)
    })
}

/// Starts the task that, every `every`, commits again the old keys in force of each offsets
/// partition this node coordinates (see the module docs). It ends with the broker.
pub(crate) fn spawn_copy_forward(broker: Weak<Broker>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(node) = broker.upgrade() else {
                return;
            };
            if let Err(err) = node.copy_forward_offsets().await {
                tracing::debug!(%err, "copying old committed offsets forward failed; retrying at the next check");
            }
        }
    });
}

impl Broker {
    /// One pass of the copy-forward over the offsets partitions this node coordinates. A
    /// partition that fails (leadership moved, its log start moved under the scan) is tried
    /// again at the next pass; the others go on.
    async fn copy_forward_offsets(self: &Arc<Self>) -> Result<(), BrokerError> {
        let loaded: Vec<u32> = match &*self.groups.coordination() {
            Coordination::Partitions(loads) => loads
                .iter()
                .filter(|(_, load)| matches!(load, Load::Loaded { .. }))
                .map(|(index, _)| *index)
                .collect(),
            Coordination::All => return Ok(()),
        };
        let topic = self.topic(CONSUMER_OFFSETS_TOPIC)?;
        for index in loaded {
            if let Err(err) = self.copy_forward_partition(&topic, index).await {
                tracing::debug!(partition = index, %err, "copying old committed offsets forward failed; retrying at the next check");
            }
        }
        Ok(())
    }

    /// The copy-forward of offsets partition `index`.
    async fn copy_forward_partition(
        &self,
        topic: &crate::broker::Topic,
        index: u32,
    ) -> Result<(), BrokerError> {
        let partition = topic.partition(i64::from(index))?;
        let keys = blocking(move || scan_partition(&partition))
            .await?
            .keys_to_copy_forward();
        if keys.is_empty() {
            return Ok(());
        }
        let mut by_group: HashMap<String, Vec<(TopicPartition, OffsetValue)>> = HashMap::new();
        for (key, value) in keys {
            by_group
                .entry(key.group)
                .or_default()
                .push((key.partition, value));
        }
        let mut copied = 0usize;
        for (group, values) in by_group {
            copied += self.commit_again(&group, values).await?;
        }
        tracing::info!(
            partition = index,
            copied,
            "committed old offsets again so that the records they superseded can go"
        );
        Ok(())
    }

    /// Appends `group`'s committed offsets `scanned` again (the values of their newest records,
    /// as the scan read them), with the write lock held so that memory is what the log says:
    /// only those memory still holds unchanged, so that nothing a client sees changes and a
    /// value memory lacks (a batch a load could not read) is never written over the log's.
    /// Returns how many were written.
    async fn commit_again(
        &self,
        group: &str,
        scanned: Vec<(TopicPartition, OffsetValue)>,
    ) -> Result<usize, BrokerError> {
        let writes = self.groups.write_lock().await;
        self.check_coordinator(group)?;
        let values: Vec<(TopicPartition, Option<OffsetValue>)> = {
            let offsets = lock(&self.groups.offsets);
            let committed = offsets.get(group);
            scanned
                .into_iter()
                .filter(|(p, value)| committed.and_then(|c| c.get(p)) == Some(value))
                .map(|(p, value)| (p, Some(value)))
                .collect()
        };
        if values.is_empty() {
            return Ok(0);
        }
        let count = values.len();
        self.write_offsets(writes, group, values).await?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests;

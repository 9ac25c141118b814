//! The admission filter that enforces idempotent producers' sequences on a partition's writer
//! thread (see `cairn_log::AppendFilter`): it keeps the committed [`ProducerStates`] and, during a
//! group commit, the entries the group changed so far ([`PendingProducers`]). It also keeps
//! the state's snapshots (`producer_snapshot`): one every [`PRODUCER_SNAPSHOT_INTERVAL_BYTES`]
//! of log and one at a clean close, so opening reads a bounded tail of the log, whatever it holds.
//! After each group commit it forgets producers silent for longer than their expiration
//! ([`ProducerExpiration`]), when a look is due.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cairn_log::batch::Batch;
use cairn_log::{
    Admission, AppendFilter, AppendInfo, Clock, DamagedRange, EntryIndex, LogError, LogReader,
    Offset,
};

use crate::producer_snapshot;
use crate::producer_state::{
    PendingProducers, ProducerBatch, ProducerExpiration, ProducerStates, SequenceCheck,
};

/// Why an idempotent batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    /// The batch's sequence does not follow the last one written (Kafka's
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER`).
    #[error("out-of-order sequence for producer {producer_id}: expected {expected}, got {found}")]
    OutOfOrder {
        /// The producer.
        producer_id: i64,
        /// The sequence expected.
        expected: i32,
        /// The batch's base sequence.
        found: i32,
    },
    /// A newer epoch of the producer exists (Kafka's `INVALID_PRODUCER_EPOCH`).
    #[error("producer {producer_id} epoch {found} is fenced by epoch {current}")]
    FencedEpoch {
        /// The producer.
        producer_id: i64,
        /// The current epoch.
        current: i16,
        /// The batch's epoch.
        found: i16,
    },
    /// The broker knows nothing of this producer (Kafka's `UNKNOWN_PRODUCER_ID`).
    #[error("unknown producer {producer_id}: its first batch must start at sequence 0")]
    UnknownProducer {
        /// The producer.
        producer_id: i64,
    },
    /// An idempotent request must hold exactly one batch.
    #[error("an idempotent request must hold exactly one batch")]
    SeveralBatches,
}

/// Log bytes appended between two producer snapshots: what opening a partition reads at most
/// after an unclean stop (after a clean one, nothing: a snapshot is written at close).
pub const PRODUCER_SNAPSHOT_INTERVAL_BYTES: u64 = 16 << 20;

/// What opening a partition's producer state did, for its log line and for health.
#[derive(Debug, Default)]
pub(crate) struct RebuildReport {
    /// The snapshot the state started from, if one was usable.
    pub(crate) snapshot_offset: Option<Offset>,
    /// Batches read from the log after it.
    pub(crate) batches_read: u64,
    /// Damage met while reading: those batches' producers may be missing from the state.
    pub(crate) damaged: Vec<DamagedRange>,
}

/// Sequence enforcement for one partition.
#[derive(Debug)]
pub(crate) struct ProducerFilter {
    /// Where snapshots are written: the partition directory.
    dir: PathBuf,
    committed: ProducerStates,
    /// What the group being committed admitted, applied to `committed` once it is durable.
    pending: PendingProducers,
    /// Bytes admitted in the group being committed.
    pending_bytes: u64,
    /// Bytes committed since the last snapshot.
    unsnapshotted_bytes: u64,
    /// The log end the last snapshot was written at.
    snapshot_offset: Option<Offset>,
    /// Bytes between interval snapshots ([`PRODUCER_SNAPSHOT_INTERVAL_BYTES`]; tests use less).
    snapshot_interval_bytes: u64,
    /// How long a silent producer is remembered.
    expiration: ProducerExpiration,
    /// The broker's clock: when each batch is recorded, and when producers expire.
    clock: Arc<dyn Clock>,
    /// How many producers `committed` holds, for `cairn_partition_producer_ids`: the filter
    /// lives on the writer thread, so it publishes the count after each change.
    remembered: Arc<AtomicUsize>,
}

impl ProducerFilter {
    /// Restores the producer states of the partition in `dir`: from its newest usable snapshot,
    /// then every batch of the log after it (the whole log when there is none). A damaged batch
    /// is stepped over and reported, never a reason to fail: the partition must still open.
    /// Batches read from the log count as written now (their producers are kept a whole
    /// `expiration` from the open).
    pub(crate) fn open(
        dir: &Path,
        reader: &LogReader,
        expiration: ProducerExpiration,
        clock: Arc<dyn Clock>,
    ) -> (ProducerFilter, RebuildReport) {
        let log_end = reader.log_end_offset();
        let now_ms = clock.now_ms();
        let snapshot = producer_snapshot::load_newest(dir, log_end, now_ms, |err| {
            tracing::warn!(%err, "producer snapshot skipped; an older one or the log is used");
        })
        .unwrap_or_else(|err| {
            tracing::warn!(%err, "producer snapshots unreadable; rebuilding from the log");
            None
        });
        let mut report = RebuildReport {
            snapshot_offset: snapshot.as_ref().map(|s| s.offset),
            ..RebuildReport::default()
        };
        let (mut states, from) = match snapshot {
            Some(s) => (s.states, s.offset.max(reader.log_start_offset())),
            None => (ProducerStates::default(), reader.log_start_offset()),
        };
        let scanned = record_batches(
            &mut states,
            reader,
            from,
            None,
            now_ms,
            &mut report.batches_read,
        );
        match scanned {
            Ok(damaged) => report.damaged = damaged,
            // The start lies outside the log only if the log changed under us, which nothing
            // does before the writer starts; an empty state then is still safe (retries of
            // lost batches are refused as unknown, not duplicated).
            Err(err) => {
                tracing::error!(%err, dir = %dir.display(), "reading producer state from the log")
            }
        }
        let filter = ProducerFilter {
            dir: dir.to_path_buf(),
            committed: states,
            pending: PendingProducers::default(),
            pending_bytes: 0,
            unsnapshotted_bytes: 0,
            snapshot_offset: report.snapshot_offset,
            snapshot_interval_bytes: PRODUCER_SNAPSHOT_INTERVAL_BYTES,
            expiration,
            clock,
            remembered: Arc::new(AtomicUsize::new(0)),
        };
        filter.publish_count();
        (filter, report)
    }

    /// The number of producers remembered, kept current as groups commit and producers expire.
    pub(crate) fn remembered(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.remembered)
    }

    fn publish_count(&self) {
        self.remembered
            .store(self.committed.len(), Ordering::Relaxed);
    }

    /// Forgets the producers silent past their expiration, when a look is due, and publishes
    /// how many are left.
    fn expire(&mut self) {
        let forgotten = self
            .committed
            .expire_due(self.clock.now_ms(), self.expiration);
        if forgotten > 0 {
            tracing::debug!(dir = %self.dir.display(), forgotten, remembered = self.committed.len(), "producer ids expired");
        }
        self.publish_count();
    }

    /// Writes a snapshot at `log_end` unless one is there already.
    fn snapshot(&mut self, log_end: Offset, durable: bool) {
        if self.snapshot_offset == Some(log_end) && !durable {
            return;
        }
        match producer_snapshot::write(&self.dir, log_end, &self.committed, durable) {
            Ok(()) => {
                self.snapshot_offset = Some(log_end);
                self.unsnapshotted_bytes = 0;
            }
            // A snapshot only saves reading at the next open: keep serving.
            Err(err) => tracing::warn!(%err, "producer snapshot not written"),
        }
    }
}

/// Records in `states` the idempotent producers' batches of `reader`'s visible log from offset
/// `from` up to `end` (the visible end when `None`), as written at `now_ms`, counting the
/// batches read in `read`. Returns the damaged ranges stepped over.
///
/// # Errors
/// [`LogError`] when `from` lies outside the log.
pub(crate) fn record_batches(
    states: &mut ProducerStates,
    reader: &LogReader,
    from: Offset,
    end: Option<Offset>,
    now_ms: i64,
    read: &mut u64,
) -> Result<Vec<DamagedRange>, LogError> {
    reader.scan_batches(from.as_i64(), |batch| {
        if end.is_some_and(|end| batch.base_offset() >= end) {
            return ControlFlow::Break(());
        }
        *read += 1;
        if let Some(producer) = producer_batch(batch)
            && producer.is_idempotent()
        {
            let last = batch
                .base_offset()
                .plus(batch.offset_count().saturating_sub(1));
            states.record(&producer, batch.base_offset().0, last.0, now_ms);
        }
        ControlFlow::Continue(())
    })
}

fn producer_batch(batch: &Batch) -> Option<ProducerBatch> {
    let header = batch.header();
    (!batch.is_meta()).then_some(ProducerBatch {
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        base_sequence: header.base_sequence,
        // Sequences span the batch's offsets, as in Kafka (baseSequence + lastOffsetDelta):
        // compaction removes records from a batch but keeps its lastOffsetDelta, so the record
        // count would undercount the last sequence after a clean.
        record_count: header.last_offset_delta.saturating_add(1),
    })
}

fn reject(err: SequenceError) -> Admission {
    Admission::Reject(LogError::Rejected(Arc::new(err)))
}

impl AppendFilter for ProducerFilter {
    fn admit(&mut self, batches: &[Batch], next_offset: Offset) -> Admission {
        let admission = self.admit_sequences(batches, next_offset);
        if matches!(admission, Admission::Append) {
            self.pending_bytes += batches.iter().map(|b| b.len_bytes() as u64).sum::<u64>();
        }
        admission
    }

    fn commit(&mut self, log_end: Offset) {
        self.pending.apply_to(&mut self.committed);
        self.expire();
        self.unsnapshotted_bytes += std::mem::take(&mut self.pending_bytes);
        if self.unsnapshotted_bytes >= self.snapshot_interval_bytes {
            self.snapshot(log_end, false);
        }
    }

    fn rollback(&mut self) {
        self.pending.clear();
        self.pending_bytes = 0;
    }

    fn close(&mut self, log_end: Offset) {
        self.expire();
        self.snapshot(log_end, true);
    }
}

impl ProducerFilter {
    /// The sequence rules for one request; see [`AppendFilter::admit`].
    fn admit_sequences(&mut self, batches: &[Batch], next_offset: Offset) -> Admission {
        let idempotent: Vec<ProducerBatch> = batches
            .iter()
            .filter_map(producer_batch)
            .filter(|p| p.is_idempotent())
            .collect();
        if idempotent.is_empty() {
            return Admission::Append;
        }
        let ([producer], [batch]) = (idempotent.as_slice(), batches) else {
            return reject(SequenceError::SeveralBatches);
        };
        match self.pending.check(&self.committed, producer) {
            SequenceCheck::Append => {
                let last = next_offset.plus(batch.offset_count().saturating_sub(1));
                let now_ms = self.clock.now_ms();
                self.pending
                    .record(&self.committed, producer, next_offset.0, last.0, now_ms);
                Admission::Append
            }
            SequenceCheck::Duplicate {
                base_offset,
                last_offset,
            } => Admission::Duplicate(vec![AppendInfo {
                base_offset: Offset(base_offset),
                next_offset: Offset(last_offset.saturating_add(1)),
                // A duplicate's entry index is not kept; producers only use its offsets.
                entry: EntryIndex(0),
                leader_epoch: batch.leader_epoch(),
            }]),
            SequenceCheck::OutOfOrder { expected, found } => reject(SequenceError::OutOfOrder {
                producer_id: producer.producer_id,
                expected,
                found,
            }),
            SequenceCheck::FencedEpoch { current, found } => reject(SequenceError::FencedEpoch {
                producer_id: producer.producer_id,
                current,
                found,
            }),
            SequenceCheck::UnknownProducer => reject(SequenceError::UnknownProducer {
                producer_id: producer.producer_id,
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
pub(crate) mod tests {
    use super::*;
    use cairn_log::batch::{BatchBuilder, Compression, ProducerFields, RecordInput};
    use cairn_log::{Log, LogConfig, LogWriter, ManualClock, WriterOptions};

    /// An idempotent batch of two records from `producer_id` at `base_sequence`.
    pub(crate) fn idempotent_batch(producer_id: i64, base_sequence: i32) -> Batch {
        let mut builder = BatchBuilder::new(Compression::None);
        builder.set_producer(ProducerFields {
            producer_id,
            producer_epoch: 0,
            base_sequence,
        });
        let value = [b'v'; 200];
        for _ in 0..2 {
            builder
                .push(&RecordInput {
                    key: None,
                    value: Some(&value),
                    headers: &[],
                    timestamp_ms: 0,
                })
                .unwrap();
        }
        Batch::validate(builder.build().unwrap()).unwrap()
    }

    /// Opens the filter on `dir` and starts a writer with it, snapshotting every `interval`.
    fn start(dir: &Path, interval: u64) -> (LogWriter, RebuildReport) {
        let log = Log::open(dir, LogConfig::default(), 0).unwrap();
        let (mut filter, report) = ProducerFilter::open(
            dir,
            &log.reader(),
            ProducerExpiration::default(),
            Arc::new(ManualClock::new(0)),
        );
        filter.snapshot_interval_bytes = interval;
        let writer = LogWriter::spawn_filtered(
            log,
            Arc::new(ManualClock::new(0)),
            WriterOptions::default(),
            Some(Box::new(filter)),
        )
        .unwrap();
        (writer, report)
    }

    /// The state a full read of the log gives (no snapshots).
    fn rebuilt_from_the_log(dir: &Path) -> ProducerStates {
        let scratch = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            if !name.ends_with(".snapshot") && !name.ends_with(".lock") && path.is_file() {
                std::fs::copy(&path, scratch.path().join(name)).unwrap();
            }
        }
        let log = Log::open(scratch.path(), LogConfig::default(), 0).unwrap();
        let (filter, report) = ProducerFilter::open(
            scratch.path(),
            &log.reader(),
            ProducerExpiration::default(),
            Arc::new(ManualClock::new(0)),
        );
        assert_eq!(report.snapshot_offset, None);
        filter.committed
    }

    fn state_of(dir: &Path) -> (ProducerStates, RebuildReport) {
        let log = Log::open(dir, LogConfig::default(), 0).unwrap();
        let (filter, report) = ProducerFilter::open(
            dir,
            &log.reader(),
            ProducerExpiration::default(),
            Arc::new(ManualClock::new(0)),
        );
        (filter.committed, report)
    }

    /// A filter over an empty partition in `dir`, with no writer: the tests below drive
    /// admission, commit and rollback by hand, as the writer thread does.
    fn bare_filter(dir: &Path) -> ProducerFilter {
        let log = Log::open(dir, LogConfig::default(), 0).unwrap();
        ProducerFilter::open(
            dir,
            &log.reader(),
            ProducerExpiration::default(),
            Arc::new(ManualClock::new(0)),
        )
        .0
    }

    #[test]
    fn producers_silent_past_the_expiration_are_forgotten_after_a_commit_or_at_a_close() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
        let clock = Arc::new(ManualClock::new(1_000));
        let expiration = ProducerExpiration::after(std::time::Duration::from_secs(60));
        let (mut filter, _) = ProducerFilter::open(
            dir.path(),
            &log.reader(),
            expiration,
            Arc::clone(&clock) as Arc<dyn Clock>,
        );
        assert!(matches!(
            filter.admit(&[idempotent_batch(1, 0)], Offset(0)),
            Admission::Append
        ));
        filter.commit(Offset(2));
        clock.advance(30_000);
        assert!(matches!(
            filter.admit(&[idempotent_batch(2, 0)], Offset(2)),
            Admission::Append
        ));
        filter.commit(Offset(4));
        assert_eq!(filter.committed.len(), 2, "neither is 60 s silent yet");
        // 61 s after producer 1's write, 31 s after producer 2's: the next commit looks.
        clock.advance(31_000);
        assert!(matches!(
            filter.admit(&[idempotent_batch(2, 2)], Offset(4)),
            Admission::Append
        ));
        filter.commit(Offset(6));
        assert_eq!(filter.committed.len(), 1);
        assert!(
            matches!(
                filter.admit(&[idempotent_batch(1, 2)], Offset(6)),
                Admission::Reject(LogError::Rejected(ref e))
                    if e.to_string().contains("unknown producer 1")
            ),
            "a forgotten producer's next sequence is refused as unknown"
        );
        filter.rollback();
        // Nothing written for 61 s, then a clean close: its look forgets producer 2 as well.
        clock.advance(61_000);
        filter.close(Offset(6));
        let saved = producer_snapshot::load_newest(dir.path(), Offset(6), 0, |_| {})
            .unwrap()
            .unwrap();
        assert_eq!(saved.offset, Offset(6));
        assert!(
            saved.states.is_empty(),
            "the snapshot holds neither producer"
        );
    }

    fn is_duplicate_at(admission: &Admission, base: u64) -> bool {
        matches!(admission, Admission::Duplicate(infos) if infos[0].base_offset == Offset(base))
    }

    #[test]
    fn a_group_sees_its_own_batches_and_its_end_decides_whether_they_count() {
        let dir = tempfile::tempdir().unwrap();
        let mut filter = bare_filter(dir.path());
        let first = [idempotent_batch(7, 0)];
        let second = [idempotent_batch(7, 2)];
        // One group: the second request follows the first, and a retry of the first within
        // the same group is answered with the offsets it was given.
        assert!(matches!(filter.admit(&first, Offset(0)), Admission::Append));
        assert!(matches!(
            filter.admit(&second, Offset(2)),
            Admission::Append
        ));
        assert!(is_duplicate_at(&filter.admit(&first, Offset(4)), 0));
        // The group's write failed: nothing it admitted is remembered.
        filter.rollback();
        assert_eq!(filter.committed.len(), 0);
        assert!(matches!(filter.admit(&first, Offset(0)), Admission::Append));
        filter.commit(Offset(2));
        // Durable now: a retry in a later group is a duplicate, the next batch follows it.
        assert!(is_duplicate_at(&filter.admit(&first, Offset(2)), 0));
        assert!(matches!(
            filter.admit(&second, Offset(2)),
            Admission::Append
        ));
        filter.commit(Offset(4));
        assert!(is_duplicate_at(&filter.admit(&second, Offset(4)), 2));
    }

    #[test]
    fn a_group_leaves_the_producers_it_did_not_touch_as_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let mut filter = bare_filter(dir.path());
        for producer in 0..100 {
            let batch = [idempotent_batch(producer, 0)];
            assert!(matches!(filter.admit(&batch, Offset(0)), Admission::Append));
        }
        filter.commit(Offset(200));
        let before = filter.committed.clone();
        assert!(matches!(
            filter.admit(&[idempotent_batch(5, 2)], Offset(200)),
            Admission::Append
        ));
        filter.rollback();
        assert_eq!(filter.committed, before);
        assert!(matches!(
            filter.admit(&[idempotent_batch(5, 2)], Offset(200)),
            Admission::Append
        ));
        filter.commit(Offset(202));
        assert_eq!(filter.committed.len(), 100);
        assert!(is_duplicate_at(
            &filter.admit(&[idempotent_batch(5, 2)], Offset(202)),
            200
        ));
        // Every other producer is where the first group left it.
        assert!(is_duplicate_at(
            &filter.admit(&[idempotent_batch(6, 0)], Offset(202)),
            0
        ));
    }

    #[test]
    fn a_clean_close_leaves_a_snapshot_at_the_log_end_and_opening_reads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, _) = start(dir.path(), u64::MAX);
        for seq in 0i32..20 {
            writer
                .append_blocking(
                    vec![idempotent_batch(i64::from(seq % 3), (seq / 3) * 2)],
                    None,
                )
                .unwrap();
        }
        writer.close_blocking().unwrap();
        drop(writer);
        let (states, report) = state_of(dir.path());
        assert_eq!(report.snapshot_offset, Some(Offset(40)));
        assert_eq!(report.batches_read, 0);
        assert_eq!(states.len(), 3);
        assert_eq!(states, rebuilt_from_the_log(dir.path()));
    }

    #[test]
    fn after_a_crash_opening_reads_only_what_follows_the_last_interval_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, _) = start(dir.path(), 4096);
        for seq in 0i32..50 {
            writer
                .append_blocking(
                    vec![idempotent_batch(i64::from(seq % 4), (seq / 4) * 2)],
                    None,
                )
                .unwrap();
        }
        // A crash: the files as they are while the writer still runs, no close.
        let crashed = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_owned();
            if path.is_file() && name != "lock" {
                std::fs::copy(&path, crashed.path().join(name)).unwrap();
            }
        }
        writer.close_blocking().unwrap();
        let (states, report) = state_of(crashed.path());
        let snapshot = report.snapshot_offset.expect("an interval snapshot");
        assert!(
            snapshot > Offset(0) && snapshot <= Offset(100),
            "{snapshot:?}"
        );
        // Each interval is ~4 KiB of ~460-byte batches: fewer than a dozen batches read.
        assert!(report.batches_read < 12, "{report:?}");
        assert_eq!(states, rebuilt_from_the_log(crashed.path()));
        // The restored state judges a retry as the uncrashed one did.
        let mut filter_states = states;
        let retry = producer_batch(&idempotent_batch(1, 22)).unwrap();
        assert!(matches!(
            filter_states.check(&retry),
            SequenceCheck::Duplicate { .. }
        ));
        filter_states.record(&retry, 0, 0, 0);
    }
}

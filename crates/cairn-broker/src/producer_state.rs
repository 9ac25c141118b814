//! Idempotent producers: the sequence rules of Kafka's producer state (KIP-98), as a pure state
//! machine. For each producer id the broker remembers its epoch and the last
//! [`BATCHES_REMEMBERED`] batches it wrote to this partition (their sequence and offset ranges),
//! so a retried batch is answered with its original offsets instead of being written twice, a
//! gap in sequences is refused, and a fenced (older-epoch) producer is rejected.
//!
//! It does no I/O: the partition feeds it the producer fields of each batch before appending
//! ([`ProducerStates::check`]) and the offsets after ([`ProducerStates::record`]). On open it is
//! restored from the newest snapshot (`producer_snapshot.rs`) and fed the batches after it.
//!
//! A producer that has not written for [`ProducerExpiration`] (a day by default) is forgotten,
//! as Kafka forgets it after `producer.id.expiration.ms`: every client restart is a new producer
//! id, so without this a long-lived partition's state, and every snapshot of it, grows with each
//! producer that ever wrote to it. A forgotten producer that writes again is told
//! `UNKNOWN_PRODUCER_ID` (its sequence no longer starts at 0), and Cairn's client then carries
//! on under a new producer id. What counts is the broker's clock when the batch was recorded,
//! not the batch's own timestamps: a producer that re-publishes old events with their original
//! times would otherwise be forgotten between two of its own batches.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// How many recent batches are remembered per producer (Kafka's
/// `max.in.flight.requests.per.connection` ceiling for idempotence).
pub const BATCHES_REMEMBERED: usize = 5;

/// The producer fields of a batch, as in its RecordBatch v2 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerBatch {
    /// Producer id; negative for a non-idempotent batch.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Sequence of the first record.
    pub base_sequence: i32,
    /// Number of sequence numbers the batch spans: its record count as produced, which is
    /// `lastOffsetDelta + 1` also after compaction removed some of its records.
    pub record_count: i32,
}

impl ProducerBatch {
    /// True when the batch carries a producer identity to check.
    pub fn is_idempotent(&self) -> bool {
        self.producer_id >= 0
    }

    /// Sequence of the last record, wrapping at `i32::MAX` as Kafka's sequences do.
    pub fn last_sequence(&self) -> i32 {
        wrapping_sequence(self.base_sequence, self.record_count.saturating_sub(1))
    }
}

/// What to do with a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// It was written before, at these offsets: answer with them, append nothing.
    Duplicate {
        /// Offset of the batch's first record.
        base_offset: u64,
        /// Offset of its last record.
        last_offset: u64,
    },
    /// The sequence skips ahead of (or behind) the next one expected.
    OutOfOrder {
        /// The sequence the broker expected.
        expected: i32,
        /// The batch's base sequence.
        found: i32,
    },
    /// A newer epoch of this producer exists: this one is a zombie.
    FencedEpoch {
        /// The producer's current epoch.
        current: i16,
        /// The batch's epoch.
        found: i16,
    },
    /// The broker knows nothing of this producer and the batch does not start a sequence.
    UnknownProducer,
}

/// One batch a producer wrote, as remembered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Written {
    pub(crate) first_sequence: i32,
    pub(crate) last_sequence: i32,
    pub(crate) base_offset: u64,
    pub(crate) last_offset: u64,
}

/// What is remembered of one producer: its epoch, its last batches (oldest first), and when it
/// last wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProducerEntry {
    pub(crate) epoch: i16,
    pub(crate) batches: VecDeque<Written>,
    /// The broker's wall-clock time, in ms since the epoch, when this producer's newest batch
    /// was recorded: what [`ProducerExpiration`] counts from.
    pub(crate) last_write_ms: i64,
}

/// How long a partition remembers an idempotent producer after its last write (Kafka's
/// `producer.id.expiration.ms`; see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerExpiration {
    after_ms: i64,
}

/// Default [`ProducerExpiration`]: a day, as Kafka's `producer.id.expiration.ms`. Far longer
/// than any producer's delivery timeout (Cairn's client gives up on a record after 120 s), so a
/// retry never meets a forgotten state.
pub const DEFAULT_PRODUCER_ID_EXPIRATION: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest time between two looks for expired producers: Kafka's
/// `producer.id.expiration.check.interval.ms` default.
const MAX_EXPIRATION_CHECK_INTERVAL_MS: i64 = 10 * 60 * 1000;

impl Default for ProducerExpiration {
    fn default() -> Self {
        ProducerExpiration::after(DEFAULT_PRODUCER_ID_EXPIRATION)
    }
}

impl ProducerExpiration {
    /// Producers are forgotten `after` their last write (at least 1 ms).
    pub fn after(after: Duration) -> Self {
        ProducerExpiration {
            after_ms: i64::try_from(after.as_millis()).unwrap_or(i64::MAX).max(1),
        }
    }

    /// How long a producer is remembered after its last write.
    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.after_ms.unsigned_abs())
    }

    /// How often states are looked through: a tenth of the expiration, so that a producer is
    /// forgotten at most 10% late, and at most every 10 minutes, as Kafka does.
    fn check_interval_ms(&self) -> i64 {
        (self.after_ms / 10).clamp(1, MAX_EXPIRATION_CHECK_INTERVAL_MS)
    }
}

/// The producer state of one partition.
#[derive(Clone, Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    /// When [`ProducerStates::expire_due`] last looked through the producers.
    last_expiry_check_ms: Option<i64>,
}

/// Equal when they remember the same producers; when they last looked for expired ones does
/// not count.
impl PartialEq for ProducerStates {
    fn eq(&self, other: &Self) -> bool {
        self.producers == other.producers
    }
}

impl Eq for ProducerStates {}

impl ProducerStates {
    /// Every producer and what is remembered of it, for a snapshot.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(&id, entry)| (id, entry))
    }

    /// Rebuilds the states from a snapshot's entries.
    pub(crate) fn from_entries(entries: impl IntoIterator<Item = (i64, ProducerEntry)>) -> Self {
        ProducerStates {
            producers: entries.into_iter().collect(),
            last_expiry_check_ms: None,
        }
    }

    /// Decides what to do with `batch`, without changing anything.
    pub fn check(&self, batch: &ProducerBatch) -> SequenceCheck {
        check_entry(self.producers.get(&batch.producer_id), batch)
    }

    /// Remembers that `batch` was written at `base_offset..=last_offset`, recorded at `now_ms`
    /// (the broker's wall clock). Call it only for batches [`ProducerStates::check`] let
    /// through, once they are durable.
    pub fn record(
        &mut self,
        batch: &ProducerBatch,
        base_offset: u64,
        last_offset: u64,
        now_ms: i64,
    ) {
        if !batch.is_idempotent() {
            return;
        }
        let entry = self.producers.entry(batch.producer_id).or_default();
        record_entry(entry, batch, base_offset, last_offset, now_ms);
    }

    /// Forgets every producer whose last write is `expiration` or more before `now_ms`, when a
    /// look is due (at most one per tenth of the expiration, and at least one per 10 minutes of
    /// calls); returns how many were forgotten. Cheap when no look is due, so owners call it
    /// as often as they like.
    pub fn expire_due(&mut self, now_ms: i64, expiration: ProducerExpiration) -> usize {
        // A clock stepped back (now before the last look) makes a look due at once, rather
        // than none until the clock catches up with the old reading.
        if self.last_expiry_check_ms.is_some_and(|last| {
            (0..expiration.check_interval_ms()).contains(&now_ms.saturating_sub(last))
        }) {
            return 0;
        }
        self.last_expiry_check_ms = Some(now_ms);
        let before = self.producers.len();
        let cutoff = now_ms.saturating_sub(expiration.after_ms);
        self.producers
            .retain(|_, entry| entry.last_write_ms > cutoff);
        before - self.producers.len()
    }

    /// Number of producers known.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// True when no producer is known.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

/// What a group commit has admitted and not yet made durable: the entries of the producers it
/// changed, each a copy of the committed one with the group's batches recorded. Checks look
/// here before the committed states; the group's end applies it (durable) or drops it (failed).
///
/// Only the producers a group touches are copied. Copying all of them for each group, as this
/// replaced, made every append cost as much as the partition had producers: with 10,000 of them
/// an append took milliseconds of copying (see `BENCHMARKS.md`).
#[derive(Debug, Default)]
pub(crate) struct PendingProducers {
    changed: HashMap<i64, ProducerEntry>,
}

impl PendingProducers {
    /// [`ProducerStates::check`] of `batch` against `committed` with this group's batches.
    pub(crate) fn check(&self, committed: &ProducerStates, batch: &ProducerBatch) -> SequenceCheck {
        let entry = self
            .changed
            .get(&batch.producer_id)
            .or_else(|| committed.producers.get(&batch.producer_id));
        check_entry(entry, batch)
    }

    /// [`ProducerStates::record`] into this group, leaving `committed` as it is.
    pub(crate) fn record(
        &mut self,
        committed: &ProducerStates,
        batch: &ProducerBatch,
        base_offset: u64,
        last_offset: u64,
        now_ms: i64,
    ) {
        if !batch.is_idempotent() {
            return;
        }
        let entry = self.changed.entry(batch.producer_id).or_insert_with(|| {
            committed
                .producers
                .get(&batch.producer_id)
                .cloned()
                .unwrap_or_default()
        });
        record_entry(entry, batch, base_offset, last_offset, now_ms);
    }

    /// Makes the group's changes to `committed`, leaving this empty for the next group.
    pub(crate) fn apply_to(&mut self, committed: &mut ProducerStates) {
        committed.producers.extend(self.changed.drain());
    }

    /// Forgets the group's changes.
    pub(crate) fn clear(&mut self) {
        self.changed.clear();
    }
}

/// [`ProducerStates::check`] against what is remembered of the batch's producer, if anything.
fn check_entry(entry: Option<&ProducerEntry>, batch: &ProducerBatch) -> SequenceCheck {
    if !batch.is_idempotent() {
        return SequenceCheck::Append;
    }
    let Some(entry) = entry else {
        // A producer's first batch on a partition starts at sequence 0.
        return if batch.base_sequence == 0 {
            SequenceCheck::Append
        } else {
            SequenceCheck::UnknownProducer
        };
    };
    if batch.producer_epoch < entry.epoch {
        return SequenceCheck::FencedEpoch {
            current: entry.epoch,
            found: batch.producer_epoch,
        };
    }
    if batch.producer_epoch > entry.epoch {
        // A bumped epoch restarts the sequence.
        return if batch.base_sequence == 0 {
            SequenceCheck::Append
        } else {
            SequenceCheck::OutOfOrder {
                expected: 0,
                found: batch.base_sequence,
            }
        };
    }
    let last_sequence = batch.last_sequence();
    if let Some(written) = entry
        .batches
        .iter()
        .find(|w| w.first_sequence == batch.base_sequence && w.last_sequence == last_sequence)
    {
        return SequenceCheck::Duplicate {
            base_offset: written.base_offset,
            last_offset: written.last_offset,
        };
    }
    let expected = entry
        .batches
        .back()
        .map_or(0, |w| wrapping_sequence(w.last_sequence, 1));
    if batch.base_sequence == expected {
        SequenceCheck::Append
    } else {
        SequenceCheck::OutOfOrder {
            expected,
            found: batch.base_sequence,
        }
    }
}

/// Records `batch`, written at `base_offset..=last_offset`, in its producer's `entry`.
fn record_entry(
    entry: &mut ProducerEntry,
    batch: &ProducerBatch,
    base_offset: u64,
    last_offset: u64,
    now_ms: i64,
) {
    // Never backwards: a clock stepped back must not shorten a producer's remaining time.
    entry.last_write_ms = entry.last_write_ms.max(now_ms);
    if batch.producer_epoch != entry.epoch {
        entry.epoch = batch.producer_epoch;
        entry.batches.clear();
    }
    if entry.batches.len() == BATCHES_REMEMBERED {
        entry.batches.pop_front();
    }
    entry.batches.push_back(Written {
        first_sequence: batch.base_sequence,
        last_sequence: batch.last_sequence(),
        base_offset,
        last_offset,
    });
}

/// `sequence + delta`, wrapping from `i32::MAX` to 0 as Kafka's sequence numbers do.
fn wrapping_sequence(sequence: i32, delta: i32) -> i32 {
    let sum = i64::from(sequence) + i64::from(delta);
    (sum % (i64::from(i32::MAX) + 1)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn batch(producer_id: i64, epoch: i16, base_sequence: i32, records: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id,
            producer_epoch: epoch,
            base_sequence,
            record_count: records,
        }
    }

    #[test]
    fn a_retried_batch_gets_its_original_offsets() {
        let mut states = ProducerStates::default();
        let first = batch(7, 0, 0, 3);
        assert_eq!(states.check(&first), SequenceCheck::Append);
        states.record(&first, 100, 102, 0);
        let second = batch(7, 0, 3, 2);
        assert_eq!(states.check(&second), SequenceCheck::Append);
        states.record(&second, 103, 104, 0);
        assert_eq!(
            states.check(&first),
            SequenceCheck::Duplicate {
                base_offset: 100,
                last_offset: 102
            }
        );
        assert_eq!(
            states.check(&second),
            SequenceCheck::Duplicate {
                base_offset: 103,
                last_offset: 104
            }
        );
    }

    #[test]
    fn gaps_zombies_and_strangers_are_refused() {
        let mut states = ProducerStates::default();
        states.record(&batch(7, 1, 0, 3), 0, 2, 0);
        assert_eq!(
            states.check(&batch(7, 1, 5, 1)),
            SequenceCheck::OutOfOrder {
                expected: 3,
                found: 5
            }
        );
        assert_eq!(
            states.check(&batch(7, 0, 3, 1)),
            SequenceCheck::FencedEpoch {
                current: 1,
                found: 0
            }
        );
        assert_eq!(
            states.check(&batch(7, 2, 3, 1)),
            SequenceCheck::OutOfOrder {
                expected: 0,
                found: 3
            }
        );
        assert_eq!(states.check(&batch(7, 2, 0, 1)), SequenceCheck::Append);
        assert_eq!(
            states.check(&batch(9, 0, 4, 1)),
            SequenceCheck::UnknownProducer
        );
        assert_eq!(states.check(&batch(-1, -1, -1, 5)), SequenceCheck::Append);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut states = ProducerStates::default();
        for idx in 0..7 {
            let b = batch(1, 0, idx, 1);
            assert_eq!(states.check(&b), SequenceCheck::Append);
            states.record(&b, idx as u64, idx as u64, 0);
        }
        assert!(matches!(
            states.check(&batch(1, 0, 2, 1)),
            SequenceCheck::Duplicate { .. }
        ));
        assert!(matches!(
            states.check(&batch(1, 0, 1, 1)),
            SequenceCheck::OutOfOrder { .. }
        ));
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut states = ProducerStates::default();
        states.record(&batch(1, 0, 0, 1), 0, 0, 0);
        let near_end = batch(1, 0, 1, 1);
        states.record(&near_end, 1, 1, 0);
        let mut states = ProducerStates::default();
        let last = batch(1, 0, i32::MAX - 1, 2);
        states.producers.insert(
            1,
            ProducerEntry {
                epoch: 0,
                batches: VecDeque::new(),
                last_write_ms: 0,
            },
        );
        states.record(&last, 5, 6, 0);
        assert_eq!(last.last_sequence(), i32::MAX);
        assert_eq!(states.check(&batch(1, 0, 0, 1)), SequenceCheck::Append);
    }

    #[test]
    fn a_producer_silent_for_the_expiration_is_forgotten_and_must_start_again() {
        let expiration = ProducerExpiration::after(Duration::from_secs(100));
        let mut states = ProducerStates::default();
        states.record(&batch(1, 0, 0, 2), 0, 1, 1_000);
        states.record(&batch(2, 0, 0, 2), 2, 3, 1_000);
        assert_eq!(
            states.expire_due(1_000, expiration),
            0,
            "the first look finds nothing old"
        );
        // Producer 2 writes again later; producer 1 stays silent.
        states.record(&batch(2, 0, 2, 1), 4, 4, 50_000);
        assert_eq!(states.expire_due(95_000, expiration), 0, "1 wrote 94 s ago");
        assert_eq!(
            states.expire_due(101_500, expiration),
            0,
            "1 wrote 100.5 s ago, but the last look was only 6.5 s ago (one per 10 s)"
        );
        assert_eq!(states.expire_due(105_000, expiration), 1);
        assert_eq!(states.len(), 1);
        // Forgotten: its next batch is refused as unknown, and only a new sequence is taken.
        assert_eq!(
            states.check(&batch(1, 0, 2, 1)),
            SequenceCheck::UnknownProducer
        );
        assert_eq!(states.check(&batch(1, 0, 0, 1)), SequenceCheck::Append);
        assert_eq!(states.check(&batch(2, 0, 3, 1)), SequenceCheck::Append);
        assert_eq!(
            states.expire_due(149_999, expiration),
            0,
            "2 wrote 99.999 s ago"
        );
        assert_eq!(states.expire_due(160_000, expiration), 1);
        assert!(states.is_empty());
    }

    #[test]
    fn a_clock_stepped_back_neither_expires_nor_shortens_a_producer() {
        let expiration = ProducerExpiration::after(Duration::from_secs(100));
        let mut states = ProducerStates::default();
        states.record(&batch(1, 0, 0, 1), 0, 0, 500_000);
        states.record(&batch(1, 0, 1, 1), 1, 1, 10_000);
        assert_eq!(states.expire_due(20_000, expiration), 0);
        assert_eq!(
            states.expire_due(599_999, expiration),
            0,
            "its newest write counts"
        );
        assert_eq!(states.expire_due(610_000, expiration), 1);

        // Stepped back an hour after a look: the next look is not put off for that hour.
        states.record(&batch(2, 0, 0, 1), 2, 2, 3_600_000);
        assert_eq!(states.expire_due(3_650_000, expiration), 0);
        states.record(&batch(3, 0, 0, 1), 3, 3, 0);
        assert_eq!(
            states.expire_due(100_000, expiration),
            1,
            "3 wrote 100 s ago by the clock as it reads now; 2 is kept"
        );
    }

    #[test]
    fn expiration_looks_at_most_every_ten_minutes_and_at_least_every_millisecond() {
        let day = ProducerExpiration::default();
        assert_eq!(day.duration(), DEFAULT_PRODUCER_ID_EXPIRATION);
        assert_eq!(day.check_interval_ms(), 600_000);
        let tiny = ProducerExpiration::after(Duration::ZERO);
        assert_eq!(tiny.duration(), Duration::from_millis(1));
        assert_eq!(tiny.check_interval_ms(), 1);
        assert_eq!(
            ProducerExpiration::after(Duration::MAX).duration(),
            Duration::from_millis(i64::MAX as u64)
        );
    }

    proptest! {
        /// Replaying any prefix of an in-order stream is always a duplicate with the original
        /// offsets, and the next batch in order is always accepted.
        #[test]
        fn in_order_streams_and_their_retries(sizes in proptest::collection::vec(1i32..50, 1..20), retry in any::<prop::sample::Index>()) {
            let mut states = ProducerStates::default();
            let (mut sequence, mut offset) = (0i32, 0u64);
            let mut written = Vec::new();
            for size in &sizes {
                let b = batch(3, 0, sequence, *size);
                prop_assert_eq!(states.check(&b), SequenceCheck::Append);
                states.record(&b, offset, offset + *size as u64 - 1, 0);
                written.push((b, offset));
                sequence += size;
                offset += *size as u64;
            }
            let recent = &written[written.len().saturating_sub(BATCHES_REMEMBERED)..];
            let (b, base) = recent[retry.index(recent.len())];
            prop_assert_eq!(states.check(&b), SequenceCheck::Duplicate { base_offset: base, last_offset: base + b.record_count as u64 - 1 });
        }
    }

    proptest! {
        /// A group's batches recorded apart and then applied leave the same states as
        /// recording them directly; dropped, they leave the states as they were.
        #[test]
        fn pending_changes_applied_equal_direct_records_and_cleared_change_nothing(
            seed in proptest::collection::vec((0i64..6, 0i16..2, 1i32..4), 1..40),
            split in 0usize..40,
        ) {
            let mut direct = ProducerStates::default();
            let mut committed = ProducerStates::default();
            let mut pending = PendingProducers::default();
            let mut next_sequence = std::collections::HashMap::new();
            let mut offset = 0u64;
            for (i, (producer, epoch, records)) in seed.into_iter().enumerate() {
                let sequence = next_sequence.entry((producer, epoch)).or_insert(0i32);
                let batch = batch(producer, epoch, *sequence, records);
                prop_assert_eq!(pending.check(&committed, &batch), direct.check(&batch));
                if direct.check(&batch) == SequenceCheck::Append {
                    let last = offset + records as u64 - 1;
                    direct.record(&batch, offset, last, 0);
                    pending.record(&committed, &batch, offset, last, 0);
                    *sequence += records;
                    offset = last + 1;
                }
                if i == split {
                    let before = committed.clone();
                    let mut dropped = PendingProducers::default();
                    dropped.record(&committed, &batch, offset, offset, 0);
                    dropped.clear();
                    dropped.apply_to(&mut committed);
                    prop_assert_eq!(&committed, &before);
                    pending.apply_to(&mut committed);
                    prop_assert_eq!(&committed, &direct);
                }
            }
            pending.apply_to(&mut committed);
            prop_assert_eq!(committed, direct);
        }
    }
}

//! The producer states of a replicated copy's committed log, kept current in the background on
//! every replica, so that a node that becomes leader reads only the last moments of its log
//! before it takes writes.
//!
//! A new leader needs every idempotent producer's last sequences before it proposes anything
//! (`replicated/propose.rs`). Rebuilding them from the whole log at each election made a
//! leadership change cost a read of the whole partition: 0.1 s at a few hundred MB, 0.7 s
//! measured at 400 MB, seconds at the sizes retention keeps, while its producers waited. Kafka's
//! followers keep producer state as they replicate, for the same reason.
//!
//! Each pass also forgets producers silent past their expiration (`ProducerExpiration`), so a
//! new leadership starts without them, as the single-copy filter does.
//!
//! Only committed batches are recorded: the reader sees the log up to its high watermark, and
//! Raft never truncates a committed entry, so nothing recorded here can later vanish from the
//! log. (A follower's uncommitted tail can be truncated; a sequence recorded from it would make
//! the producer's retry of that batch look like a duplicate of records that are gone.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_log::{Clock, LogReader, Offset};

use crate::producer_filter::record_batches;
use crate::producer_state::{ProducerExpiration, ProducerStates};

/// How often each replica records the batches committed since its last pass; a new leader
/// reads at most about this much of its log's writes.
pub(super) const TRACK_EVERY: Duration = Duration::from_millis(500);

/// The producer states of the committed log up to [`ProducerTracker::next`].
#[derive(Debug, Default)]
pub(crate) struct ProducerTracker {
    /// How long a silent producer is remembered.
    expiration: ProducerExpiration,
    states: ProducerStates,
    /// Every committed batch below this offset is recorded in `states`.
    next: Offset,
    /// Batches read from the log so far, over every pass.
    read: u64,
    /// A pass stepped over damaged batches since the last full read.
    damaged: bool,
    /// How many producers `states` holds, published after each pass for
    /// `cairn_partition_producer_ids`, so a scrape never waits on this tracker's lock while a
    /// pass reads the log.
    remembered: Arc<AtomicUsize>,
}

/// A tracker shared by a copy's background pass and its leadership's start.
pub(crate) type SharedTracker = Arc<Mutex<ProducerTracker>>;

impl ProducerTracker {
    /// A tracker that has read nothing yet, forgetting producers silent for `expiration`.
    pub(crate) fn new(expiration: ProducerExpiration) -> Self {
        ProducerTracker {
            expiration,
            ..ProducerTracker::default()
        }
    }

    /// The background pass: records the committed batches from where the last pass stopped up
    /// to `reader`'s high watermark now, as written at `now_ms`. Does nothing while an earlier
    /// pass met damage (see [`ProducerTracker::for_leadership`]).
    pub(crate) fn catch_up(&mut self, reader: &LogReader, topic: &str, index: u32, now_ms: i64) {
        if !self.damaged {
            self.pass(reader, topic, index, now_ms);
        }
    }

    /// The states a new leadership starts from: the committed log up to `reader`'s high
    /// watermark now. If a pass stepped over damaged batches, their producers may be missing
    /// while later batches of theirs are recorded, so a retry of a damaged batch could be
    /// taken for a new one and written twice: the whole log is read again then, as the copy
    /// stands for election only once it has healed (`heal.rs`).
    pub(crate) fn for_leadership(
        &mut self,
        reader: &LogReader,
        topic: &str,
        index: u32,
        now_ms: i64,
    ) -> &ProducerStates {
        if self.damaged {
            *self = ProducerTracker {
                read: self.read,
                remembered: Arc::clone(&self.remembered),
                ..ProducerTracker::new(self.expiration)
            };
        }
        self.pass(reader, topic, index, now_ms);
        &self.states
    }

    /// The number of producers remembered, as of the last pass.
    pub(crate) fn remembered(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.remembered)
    }

    fn pass(&mut self, reader: &LogReader, topic: &str, index: u32, now_ms: i64) {
        self.read_committed(reader, topic, index, now_ms);
        self.remembered.store(self.states.len(), Ordering::Relaxed);
    }

    /// Forgets the producers due to expire, then records the committed batches not yet read.
    fn read_committed(&mut self, reader: &LogReader, topic: &str, index: u32, now_ms: i64) {
        let start = reader.log_start_offset();
        if start > self.next {
            // The log no longer holds what lies between the last pass and its start: a
            // follower's log restarted at a leader's snapshot, or retention passed batches no
            // pass had read. What was recorded before may be stale (a producer whose later
            // batches are gone would look further behind than it is), so start over from the
            // log start, as a full read would.
            self.states = ProducerStates::default();
        }
        self.states.expire_due(now_ms, self.expiration);
        let end = reader.high_watermark();
        let from = self.next.max(start);
        if from >= end {
            return;
        }
        match record_batches(
            &mut self.states,
            reader,
            from,
            Some(end),
            now_ms,
            &mut self.read,
        ) {
            Ok(damaged) => {
                for d in &damaged {
                    tracing::error!(topic, partition = index, segment = %d.path.display(), position = d.position.0, reason = %d.reason, "damaged batch while reading producer state");
                }
                self.damaged |= !damaged.is_empty();
                self.next = end;
            }
            // Only if retention moved the log start past `from` meanwhile: the next pass
            // starts over from the new log start.
            Err(err) => {
                tracing::debug!(topic, partition = index, %err, "producer state pass skipped");
            }
        }
    }
}

/// Records the committed batches of `reader`'s log into `tracker` every [`TRACK_EVERY`] until
/// the task is aborted (when the copy closes).
pub(super) fn spawn_producer_tracking(
    tracker: SharedTracker,
    clock: Arc<dyn Clock>,
    reader: LogReader,
    topic: Arc<str>,
    index: u32,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(TRACK_EVERY).await;
            let (tracker, reader, topic, clock) = (
                Arc::clone(&tracker),
                reader.clone(),
                Arc::clone(&topic),
                Arc::clone(&clock),
            );
            let pass = tokio::task::spawn_blocking(move || {
                tracker.lock().unwrap_or_else(|e| e.into_inner()).catch_up(
                    &reader,
                    &topic,
                    index,
                    clock.now_ms(),
                );
            });
            if pass.await.is_err() {
                return;
            }
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use cairn_log::{Log, LogConfig};

    use super::*;
    use crate::producer_filter::tests::idempotent_batch;
    use crate::producer_state::{ProducerBatch, SequenceCheck};

    /// Producer `producer_id`'s two-record batch at `base_sequence`, as a retry would show it.
    fn batch_of(producer_id: i64, base_sequence: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id,
            producer_epoch: 0,
            base_sequence,
            record_count: 2,
        }
    }

    fn is_duplicate(states: &ProducerStates, producer_id: i64, base_sequence: i32) -> bool {
        matches!(
            states.check(&batch_of(producer_id, base_sequence)),
            SequenceCheck::Duplicate { .. }
        )
    }

    /// A replica's log holding producer 1's first batch (offsets 0 and 1), committed, and a
    /// tracker whose first pass has read it.
    fn tracked_log() -> (tempfile::TempDir, Log, LogReader, ProducerTracker) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open_replica(dir.path(), LogConfig::default(), 0).unwrap();
        let reader = log.reader();
        log.append(&[idempotent_batch(1, 0)], None, 0).unwrap();
        log.set_high_watermark(Offset(2)).unwrap();
        let mut tracker = ProducerTracker::default();
        tracker.catch_up(&reader, "t", 0, 0);
        (dir, log, reader, tracker)
    }

    #[test]
    fn only_committed_batches_are_recorded_and_each_pass_reads_on_from_the_last() {
        let (_dir, mut log, reader, mut tracker) = tracked_log();
        assert!(is_duplicate(&tracker.states, 1, 0));
        assert!(matches!(
            tracker.states.check(&batch_of(1, 2)),
            SequenceCheck::Append
        ));
        // Producer 2's batch is written but not committed. Recorded, a retry of it would be
        // answered as a duplicate of records a new leader may have truncated.
        log.append(&[idempotent_batch(2, 0)], None, 0).unwrap();
        tracker.catch_up(&reader, "t", 0, 0);
        assert!(!is_duplicate(&tracker.states, 2, 0));
        assert_eq!((tracker.next, tracker.read), (Offset(2), 1));

        log.set_high_watermark(Offset(4)).unwrap();
        let states = tracker.for_leadership(&reader, "t", 0, 0);
        assert!(is_duplicate(states, 2, 0) && is_duplicate(states, 1, 0));
        assert_eq!(
            (tracker.next, tracker.read),
            (Offset(4), 2),
            "the pass read only the newly committed batch"
        );
        tracker.catch_up(&reader, "t", 0, 0);
        assert_eq!(tracker.read, 2, "nothing new, nothing read");
    }

    #[test]
    fn after_damage_the_background_waits_and_the_next_leadership_reads_the_whole_log() {
        let (_dir, mut log, reader, mut tracker) = tracked_log();
        // As if that pass had stepped over a damaged batch (a heal rewrites it later).
        tracker.damaged = true;
        log.append(&[idempotent_batch(1, 2)], None, 0).unwrap();
        log.set_high_watermark(Offset(4)).unwrap();
        tracker.catch_up(&reader, "t", 0, 0);
        assert_eq!(
            tracker.read, 1,
            "no background pass over a copy with damage"
        );
        let states = tracker.for_leadership(&reader, "t", 0, 0);
        assert!(is_duplicate(states, 1, 2));
        assert_eq!(
            (tracker.read, tracker.damaged),
            (3, false),
            "the whole log read again, and no damage found"
        );
    }

    #[test]
    fn a_pass_forgets_producers_silent_past_the_expiration() {
        let (_dir, mut log, reader, _) = tracked_log();
        let mut tracker = ProducerTracker::new(ProducerExpiration::after(
            std::time::Duration::from_secs(100),
        ));
        tracker.catch_up(&reader, "t", 0, 0);
        log.append(&[idempotent_batch(2, 0)], None, 0).unwrap();
        log.set_high_watermark(Offset(4)).unwrap();
        tracker.catch_up(&reader, "t", 0, 50_000);
        assert!(is_duplicate(&tracker.states, 1, 0) && is_duplicate(&tracker.states, 2, 0));
        // 100 s after producer 1's batch was recorded, 50 s after producer 2's.
        let states = tracker.for_leadership(&reader, "t", 0, 100_000);
        assert!(
            matches!(
                states.check(&batch_of(1, 2)),
                SequenceCheck::UnknownProducer
            ),
            "producer 1 is forgotten"
        );
        assert!(is_duplicate(states, 2, 0), "producer 2 is not");
    }

    #[test]
    fn a_log_restarted_past_the_last_pass_starts_the_states_over() {
        let (_dir, mut log, reader, mut tracker) = tracked_log();
        // A follower far behind installs its leader's snapshot: its log starts over at 10, and
        // whatever producer 1 wrote at offsets 2 to 9 this copy never saw.
        log.reset(cairn_log::EntryIndex(5), Offset(10), 0).unwrap();
        log.append(&[idempotent_batch(2, 0)], None, 0).unwrap();
        log.set_high_watermark(Offset(12)).unwrap();
        let states = tracker.for_leadership(&reader, "t", 0, 0);
        assert!(
            matches!(
                states.check(&batch_of(1, 4)),
                SequenceCheck::UnknownProducer
            ),
            "producer 1's next batch is not judged against a state that misses its last ones"
        );
        assert!(is_duplicate(states, 2, 0));
    }
}

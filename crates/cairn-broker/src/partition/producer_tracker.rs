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
//! Only committed batches are recorded: the reader sees the log up to its high watermark, and
//! Raft never truncates a committed entry, so nothing recorded here can later vanish from the
//! log. (A follower's uncommitted tail can be truncated; a sequence recorded from it would make
//! the producer's retry of that batch look like a duplicate of records that are gone.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_log::{LogReader, Offset};

use crate::producer_filter::record_batches;
use crate::producer_state::ProducerStates;

/// How often each replica records the batches committed since its last pass; a new leader
/// reads at most about this much of its log's writes.
pub(super) const TRACK_EVERY: Duration = Duration::from_millis(500);

/// The producer states of the committed log up to [`ProducerTracker::next`].
#[derive(Debug, Default)]
pub(crate) struct ProducerTracker {
    states: ProducerStates,
    /// Every committed batch below this offset is recorded in `states`.
    next: Offset,
    /// Batches read from the log so far, over every pass.
    read: u64,
}

/// A tracker shared by a copy's background pass and its leadership's start.
pub(crate) type SharedTracker = Arc<Mutex<ProducerTracker>>;

impl ProducerTracker {
    /// Records the committed batches from where the last pass stopped up to `reader`'s high
    /// watermark now (from the log start the first time, or after retention passed `next`),
    /// and returns the states. A damaged batch is stepped over and logged: its producer may be
    /// missing, which a retry answers as an unknown producer, never as a duplicate.
    pub(crate) fn catch_up(
        &mut self,
        reader: &LogReader,
        topic: &str,
        index: u32,
    ) -> &ProducerStates {
        let end = reader.high_watermark();
        let from = self.next.max(reader.log_start_offset());
        if from >= end {
            return &self.states;
        }
        match record_batches(&mut self.states, reader, from, Some(end), &mut self.read) {
            Ok(damaged) => {
                for d in &damaged {
                    tracing::error!(topic, partition = index, segment = %d.path.display(), position = d.position.0, reason = %d.reason, "damaged batch while reading producer state");
                }
                self.next = end;
            }
            // Only if retention moved the log start past `from` meanwhile: the next pass
            // starts from the new log start.
            Err(err) => {
                tracing::debug!(topic, partition = index, %err, "producer state pass skipped");
            }
        }
        &self.states
    }
}

/// Records the committed batches of `reader`'s log into `tracker` every [`TRACK_EVERY`] until
/// the task is aborted (when the copy closes).
pub(super) fn spawn_producer_tracking(
    tracker: SharedTracker,
    reader: LogReader,
    topic: Arc<str>,
    index: u32,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(TRACK_EVERY).await;
            let (tracker, reader, topic) =
                (Arc::clone(&tracker), reader.clone(), Arc::clone(&topic));
            let pass = tokio::task::spawn_blocking(move || {
                tracker
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .catch_up(&reader, &topic, index);
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

    #[test]
    fn only_committed_batches_are_recorded_and_each_pass_reads_on_from_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open_replica(dir.path(), LogConfig::default(), 0).unwrap();
        let reader = log.reader();
        log.append(&[idempotent_batch(1, 0)], None, 0).unwrap();
        log.append(&[idempotent_batch(2, 0)], None, 0).unwrap();
        // Producer 1's batch (offsets 0 and 1) is committed; producer 2's is not yet.
        log.set_high_watermark(Offset(2)).unwrap();

        let mut tracker = ProducerTracker::default();
        let states = tracker.catch_up(&reader, "t", 0);
        assert!(matches!(
            states.check(&batch_of(1, 0)),
            SequenceCheck::Duplicate { .. }
        ));
        assert!(matches!(
            states.check(&batch_of(1, 2)),
            SequenceCheck::Append
        ));
        // Recorded, a retry of an uncommitted batch would be answered as a duplicate of
        // records a new leader may have truncated.
        assert!(matches!(
            states.check(&batch_of(2, 0)),
            SequenceCheck::Append
        ));
        assert_eq!((tracker.next, tracker.read), (Offset(2), 1));

        log.set_high_watermark(Offset(4)).unwrap();
        let states = tracker.catch_up(&reader, "t", 0);
        assert!(matches!(
            states.check(&batch_of(2, 0)),
            SequenceCheck::Duplicate { .. }
        ));
        assert!(matches!(
            states.check(&batch_of(1, 0)),
            SequenceCheck::Duplicate { .. }
        ));
        assert_eq!(
            (tracker.next, tracker.read),
            (Offset(4), 2),
            "the second pass read only the newly committed batch"
        );
        tracker.catch_up(&reader, "t", 0);
        assert_eq!(tracker.read, 2, "nothing new, nothing read");
    }
}

//! Hands an idempotent producer's batches for one partition to the log writer in sequence
//! order, even when the requests carrying them are served out of order.
//!
//! Kafka serves a connection's requests one at a time, so a producer's pipelined batches reach
//! the log in the order they were sent. gRPC runs each request of an HTTP/2 connection as its
//! own task, and two tasks started microseconds apart can reach the writer's queue in either
//! order; the sequence check (KIP-98) would then refuse the later batch as a gap and the client
//! would have to drain and resend. So before a batch of producer P is queued, it waits (briefly,
//! [`MAX_ORDERING_WAIT`]) for P's batch with the preceding sequence to be queued first.
//!
//! A replicated partition's lanes belong to one leadership term: a node that leads again
//! after another node led in between holds lanes the producer has long moved past (its batches
//! went to the other leader), and a batch measured against such a lane would wait the whole
//! [`MAX_ORDERING_WAIT`] for a predecessor that was never coming here. Measured on leadership
//! moves at 20,000 records/s: the producer's records held about 0.5 s, as long as the wait. A
//! lane of an older term counts as no lane. (A single node's partition has one term, 0.)
//!
//! This only orders; it never decides. The writer's admission filter still checks every
//! sequence, so a wait that times out (the earlier batch is lost, or was refused before it got
//! here) just lets the batch through to be refused as a gap, as it would have been anyway.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

/// Longest a batch waits for its predecessor. Predecessors in flight arrive within
/// microseconds; one that takes longer is lost or refused, and the client recovers either way.
pub const MAX_ORDERING_WAIT: Duration = Duration::from_millis(500);

/// Longest a batch of a producer this partition has not queued anything for yet (in this
/// term) waits, when its sequence is not 0: the producer's first batch is probably a request
/// away. Shorter than [`MAX_ORDERING_WAIT`] because after a broker restart a producer resumes
/// mid-sequence, and its first batch here then waits for nothing.
pub const NEW_PRODUCER_WAIT: Duration = Duration::from_millis(20);

/// Producers remembered per partition; past this the table is cleared (ordering is an
/// optimisation, so forgetting costs at most a client retry, never correctness).
const MAX_PRODUCERS: usize = 4096;

/// Sequences wrap at `i32::MAX`, so "ahead" means within half the sequence space.
const SEQUENCE_SPACE: i64 = i32::MAX as i64 + 1;

/// The next sequence queued for one producer, in one leadership term.
#[derive(Clone, Copy, Debug)]
struct Lane {
    epoch: i16,
    next: i32,
    term: u64,
}

/// Per-partition ordering of idempotent producers' batches.
#[derive(Debug, Default)]
pub(crate) struct Sequencer {
    lanes: Mutex<HashMap<i64, Lane>>,
    queued: Notify,
}

/// How far `sequence` is ahead of `next` in the wrapping sequence space (0 = it is next).
fn distance(next: i32, sequence: i32) -> i64 {
    (i64::from(sequence) - i64::from(next)).rem_euclid(SEQUENCE_SPACE)
}

/// Whether `sequence` is ahead of `next` (a gap), as opposed to next or behind (a retry).
fn is_ahead(next: i32, sequence: i32) -> bool {
    let d = distance(next, sequence);
    d != 0 && d < SEQUENCE_SPACE / 2
}

impl Sequencer {
    /// Waits until the batch of `producer_id`/`epoch` starting at `base_sequence` is next in
    /// line, or [`MAX_ORDERING_WAIT`] has passed. Returns at once for a new epoch and for a
    /// retry of an earlier sequence; a producer not seen yet in `term` waits
    /// [`NEW_PRODUCER_WAIT`] at most, and only when its sequence is not 0.
    pub(crate) async fn wait_turn(
        &self,
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
        term: u64,
    ) {
        let started = tokio::time::Instant::now();
        let deadline = started + MAX_ORDERING_WAIT;
        let new_producer_deadline = started + NEW_PRODUCER_WAIT;
        loop {
            let queued = self.queued.notified();
            tokio::pin!(queued);
            // Registered before the check, so a notification between check and wait is kept.
            queued.as_mut().enable();
            let wait_until = match self.lanes.lock() {
                Ok(lanes) => match lanes.get(&producer_id) {
                    Some(lane) if lane.term == term => (lane.epoch == epoch
                        && is_ahead(lane.next, base_sequence))
                    .then_some(deadline),
                    // This batch's term is over: whoever leads now orders it.
                    Some(lane) if lane.term > term => None,
                    // An older term's lane that says this batch is next (no other leader took
                    // any of the producer's batches in between) lets it go at once.
                    Some(lane) if lane.epoch == epoch && lane.next == base_sequence => None,
                    Some(_) | None => (base_sequence != 0).then_some(new_producer_deadline),
                },
                Err(_) => None,
            };
            let Some(deadline) = wait_until else {
                return;
            };
            if tokio::time::timeout_at(deadline, queued).await.is_err() {
                return;
            }
        }
    }

    /// Records that the batch was queued for the writer in `term`, releasing its successor.
    pub(crate) fn queued(
        &self,
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
        records: i32,
        term: u64,
    ) {
        let after = ((i64::from(base_sequence) + i64::from(records)) % SEQUENCE_SPACE) as i32;
        if let Ok(mut lanes) = self.lanes.lock() {
            if lanes.len() >= MAX_PRODUCERS && !lanes.contains_key(&producer_id) {
                lanes.clear();
            }
            let fresh = Lane {
                epoch,
                next: after,
                term,
            };
            let lane = lanes.entry(producer_id).or_insert(fresh);
            if lane.term > term {
                // Queued in a term that is over; the lane already belongs to a newer one.
            } else if lane.epoch != epoch || lane.term < term {
                *lane = fresh;
            } else if !is_ahead(after, lane.next) {
                // Only forward: a retry of an old batch must not pull `next` back.
                lane.next = after;
            }
        }
        self.queued.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn ahead_and_behind_wrap_around() {
        assert!(!is_ahead(5, 5));
        assert!(is_ahead(5, 6));
        assert!(!is_ahead(5, 4));
        assert!(is_ahead(i32::MAX, 3), "3 follows MAX after the wrap");
        assert!(!is_ahead(3, i32::MAX));
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_ahead_waits_for_its_predecessor_to_be_queued() {
        let sequencer = Arc::new(Sequencer::default());
        sequencer.queued(1, 0, 0, 10, 0); // next is 10
        let waiter = {
            let sequencer = Arc::clone(&sequencer);
            tokio::spawn(async move { sequencer.wait_turn(1, 0, 20, 0).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "20 waits while 10 is missing");
        sequencer.queued(1, 0, 10, 10, 0);
        tokio::time::timeout(Duration::from_millis(1), waiter)
            .await
            .expect("released once 10..20 is queued")
            .expect("no panic");
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_is_bounded_and_unknown_or_retried_batches_go_at_once() {
        let sequencer = Sequencer::default();
        sequencer.wait_turn(9, 0, 0, 0).await; // an unknown producer's first batch
        let started = tokio::time::Instant::now();
        sequencer.wait_turn(9, 0, 500, 0).await; // an unknown producer mid-sequence
        assert_eq!(started.elapsed(), NEW_PRODUCER_WAIT);
        sequencer.queued(1, 0, 0, 10, 0);
        sequencer.wait_turn(1, 0, 0, 0).await; // a retry of an older batch
        sequencer.wait_turn(1, 1, 77, 0).await; // a new epoch
        let started = tokio::time::Instant::now();
        sequencer.wait_turn(1, 0, 30, 0).await; // a predecessor that never comes
        assert_eq!(started.elapsed(), MAX_ORDERING_WAIT);
    }

    #[test]
    fn a_retry_does_not_move_the_next_sequence_back() {
        let sequencer = Sequencer::default();
        sequencer.queued(1, 0, 0, 10, 0);
        sequencer.queued(1, 0, 10, 10, 0);
        sequencer.queued(1, 0, 0, 10, 0);
        let lanes = sequencer.lanes.lock().expect("not poisoned");
        assert_eq!(lanes[&1].next, 20);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lane_of_an_older_term_is_no_lane() {
        let sequencer = Sequencer::default();
        // Led in term 3 up to sequence 100; another node led in term 4, took sequences 100 to
        // 900, and this node leads again in term 5.
        sequencer.queued(1, 0, 0, 100, 3);
        let started = tokio::time::Instant::now();
        sequencer.wait_turn(1, 0, 900, 5).await;
        assert_eq!(
            started.elapsed(),
            NEW_PRODUCER_WAIT,
            "waits as for a producer not seen in this term, not for sequence 100"
        );
        // Led again in term 6 with no other leader in between: the lane says 950 is next.
        sequencer.queued(1, 0, 900, 50, 5);
        let started = tokio::time::Instant::now();
        sequencer.wait_turn(1, 0, 950, 6).await;
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "next in line, whatever the term"
        );
        sequencer.queued(1, 0, 100, 50, 3); // a slow request of the old term
        {
            let lanes = sequencer.lanes.lock().expect("not poisoned");
            assert_eq!((lanes[&1].next, lanes[&1].term), (950, 5));
        }
        let started = tokio::time::Instant::now();
        sequencer.wait_turn(1, 0, 2000, 3).await;
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "a batch of a term that is over waits for nothing"
        );
    }
}

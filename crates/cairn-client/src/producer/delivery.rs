//! The result of [`Producer::send`](super::Producer::send): one [`BatchOutcome`] per batch,
//! shared by every record in it, and a [`DeliveryFuture`] per record that reads its own
//! placement from it (the batch's base offset plus the record's index).
//!
//! Why not a channel per record: a oneshot channel is an allocation, a send and a wake-up for
//! every record, and on the produce hot path those cost more than encoding a 1 KiB record.
//! A batch is answered as a whole anyway (the broker acknowledges or refuses whole batches), so
//! one shared slot per batch carries the same information at a 64th of the cost, as Kafka's
//! producer does with one `ProduceRequestResult` per batch. A caller that awaits its records
//! in order registers one waker per batch: the first record's; the rest are ready when polled.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use super::Placement;
use crate::error::ClientError;

/// What a batch's records are waiting for.
enum OutcomeState {
    /// No answer yet; the wakers of the records polled so far.
    Waiting(Vec<Waker>),
    /// The broker's answer: the base offset (-1 when it gave none), or the error, and when
    /// the producer had it.
    Done(Result<i64, ClientError>, Instant),
}

/// The answer shared by one batch's records.
pub(crate) struct BatchOutcome {
    partition: i32,
    state: Mutex<OutcomeState>,
}

impl BatchOutcome {
    fn lock(&self) -> MutexGuard<'_, OutcomeState> {
        // A panic while holding this lock leaves a consistent state (every write is one
        // assignment), so a poisoned lock is still safe to use.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The producer's side of a [`BatchOutcome`]: it answers the batch exactly once, and a batch
/// dropped unanswered (the producer shut down under it) answers [`ClientError::Closed`].
pub(crate) struct BatchCompleter {
    outcome: Arc<BatchOutcome>,
    done: bool,
}

impl BatchCompleter {
    /// A batch of `partition` with nobody waiting yet.
    pub fn new(partition: i32) -> BatchCompleter {
        BatchCompleter {
            outcome: Arc::new(BatchOutcome {
                partition,
                state: Mutex::new(OutcomeState::Waiting(Vec::new())),
            }),
            done: false,
        }
    }

    /// The future of the batch's record number `index`.
    pub fn delivery(&self, index: u32) -> DeliveryFuture {
        DeliveryFuture(Delivery::InBatch {
            outcome: Arc::clone(&self.outcome),
            index,
            waker_slot: None,
        })
    }

    /// Answers every record of the batch: acknowledged at `base_offset` (-1 when the broker
    /// gave none), or failed with the error.
    pub fn complete(mut self, result: Result<i64, ClientError>) {
        self.finish(result);
    }

    fn finish(&mut self, result: Result<i64, ClientError>) {
        if self.done {
            return;
        }
        self.done = true;
        let answered = OutcomeState::Done(result, Instant::now());
        let previous = std::mem::replace(&mut *self.outcome.lock(), answered);
        // Wake outside the lock: a woken task on another thread polls at once.
        if let OutcomeState::Waiting(wakers) = previous {
            wakers.into_iter().for_each(Waker::wake);
        }
    }
}

impl Drop for BatchCompleter {
    fn drop(&mut self) {
        self.finish(Err(ClientError::Closed));
    }
}

enum Delivery {
    /// A record in a batch.
    InBatch {
        outcome: Arc<BatchOutcome>,
        index: u32,
        /// Where this future's waker sits in the batch's list, once it has been polled.
        waker_slot: Option<usize>,
    },
    /// Answered before it joined a batch (it could not be encoded), and when; `None` once
    /// taken.
    Ready(Option<Result<Placement, ClientError>>, Instant),
}

/// The result of one [`Producer::send`](super::Producer::send): resolves when the record is
/// acknowledged (its placement) or has failed for good (retries and the delivery timeout
/// exhausted). Dropping it does not cancel the record.
pub struct DeliveryFuture(Delivery);

impl DeliveryFuture {
    /// A future already answered with `result`.
    pub(crate) fn ready(result: Result<Placement, ClientError>) -> DeliveryFuture {
        DeliveryFuture(Delivery::Ready(Some(result), Instant::now()))
    }

    /// When the producer had this record's answer (the broker's acknowledgement, the final
    /// failure, or the refusal of a record that never joined a batch), or `None` before that.
    /// Once it is `Some`, the future is ready.
    ///
    /// This is the instant Kafka's producer calls a record's callback on its I/O thread, and
    /// what a latency measurement should read: awaiting the future adds the wake-up of the
    /// awaiting task, which depends on where the caller's runtime runs it, and a caller that
    /// awaits records in batches would otherwise count its own batching as the broker's.
    pub fn answered_at(&self) -> Option<Instant> {
        match &self.0 {
            Delivery::InBatch { outcome, .. } => match &*outcome.lock() {
                OutcomeState::Done(_, at) => Some(*at),
                OutcomeState::Waiting(_) => None,
            },
            Delivery::Ready(_, at) => Some(*at),
        }
    }
}

impl std::fmt::Debug for DeliveryFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Delivery::InBatch { outcome, index, .. } => f
                .debug_struct("DeliveryFuture")
                .field("partition", &outcome.partition)
                .field("index_in_batch", index)
                .finish(),
            Delivery::Ready(result, _) => f
                .debug_struct("DeliveryFuture")
                .field("ready", result)
                .finish(),
        }
    }
}

impl Future for DeliveryFuture {
    type Output = Result<Placement, ClientError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            Delivery::Ready(result, _) => {
                Poll::Ready(result.take().unwrap_or(Err(ClientError::Closed)))
            }
            Delivery::InBatch {
                outcome,
                index,
                waker_slot,
            } => {
                let partition = outcome.partition;
                let mut state = outcome.lock();
                match &mut *state {
                    OutcomeState::Done(Ok(base_offset), _) => {
                        let offset = if *base_offset < 0 {
                            -1
                        } else {
                            *base_offset + i64::from(*index)
                        };
                        Poll::Ready(Ok(Placement { partition, offset }))
                    }
                    OutcomeState::Done(Err(error), _) => Poll::Ready(Err(error.clone())),
                    OutcomeState::Waiting(wakers) => {
                        match waker_slot.and_then(|slot| wakers.get_mut(slot)) {
                            Some(waker) => waker.clone_from(cx.waker()),
                            None => {
                                *waker_slot = Some(wakers.len());
                                wakers.push(cx.waker().clone());
                            }
                        }
                        Poll::Pending
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_record_of_a_batch_gets_its_own_offset() {
        let batch = BatchCompleter::new(3);
        let first = batch.delivery(0);
        let third = batch.delivery(2);
        batch.complete(Ok(100));
        assert_eq!(
            first.await.ok(),
            Some(Placement {
                partition: 3,
                offset: 100
            })
        );
        assert_eq!(third.await.ok().map(|p| p.offset), Some(102));
    }

    #[tokio::test]
    async fn an_unknown_offset_stays_unknown_for_every_record() {
        let batch = BatchCompleter::new(0);
        let second = batch.delivery(1);
        batch.complete(Ok(-1));
        assert_eq!(second.await.ok().map(|p| p.offset), Some(-1));
    }

    #[tokio::test]
    async fn a_waiting_record_is_woken_by_the_answer() {
        let batch = BatchCompleter::new(0);
        let record = batch.delivery(0);
        let waiter = tokio::spawn(record);
        tokio::task::yield_now().await;
        batch.complete(Err(ClientError::Closed));
        let result = waiter.await.expect("the waiting task finishes");
        assert!(matches!(result, Err(ClientError::Closed)));
    }

    #[tokio::test]
    async fn a_record_knows_when_it_was_answered_once_it_was() {
        let batch = BatchCompleter::new(0);
        let record = batch.delivery(0);
        assert_eq!(record.answered_at(), None);
        let before = Instant::now();
        batch.complete(Ok(7));
        let answered = record.answered_at().expect("answered after complete");
        assert!(answered >= before && answered <= Instant::now());
        assert_eq!(record.await.ok().map(|p| p.offset), Some(7));
        let refused = DeliveryFuture::ready(Err(ClientError::Closed));
        assert!(refused.answered_at().is_some());
    }

    #[tokio::test]
    async fn a_batch_dropped_unanswered_fails_its_records() {
        let batch = BatchCompleter::new(0);
        let record = batch.delivery(0);
        drop(batch);
        assert!(matches!(record.await, Err(ClientError::Closed)));
    }

    #[tokio::test]
    async fn a_record_answered_before_batching_resolves_at_once() {
        let record = DeliveryFuture::ready(Err(ClientError::Closed));
        assert!(matches!(record.await, Err(ClientError::Closed)));
    }
}

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
//!
//! The answer is written once and then only read, so it sits in a `OnceLock`: reading an
//! answered record is one load, with no lock taken. Only the wakers of records polled before
//! the answer are behind a mutex. A caller that reads every record's answer (a benchmark's
//! collector, a callback loop) took that mutex twice per record before, which was a tenth of
//! the client's instructions per 1 KiB record.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use super::Placement;
use crate::error::ClientError;

/// The broker's answer to a batch: the base offset (-1 when it gave none), or the error, and
/// when the producer had it.
type Answer = (Result<i64, ClientError>, Instant);

/// The answer shared by one batch's records.
pub(crate) struct BatchOutcome {
    partition: i32,
    answer: OnceLock<Answer>,
    /// The wakers of the records polled before the answer; taken when it is set.
    wakers: Mutex<Vec<Waker>>,
}

impl BatchOutcome {
    fn wakers(&self) -> MutexGuard<'_, Vec<Waker>> {
        // A panic while holding this lock leaves a consistent list (every write is one push
        // or one take), so a poisoned lock is still safe to use.
        self.wakers
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
                answer: OnceLock::new(),
                wakers: Mutex::new(Vec::new()),
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
        // Set before the wakers are taken: a record polled after the take finds the answer
        // (it checks again under the wakers' lock), so none is left waiting.
        let _ = self.outcome.answer.set((result, Instant::now()));
        let wakers = std::mem::take(&mut *self.outcome.wakers());
        // Wake outside the lock: a woken task on another thread polls at once.
        wakers.into_iter().for_each(Waker::wake);
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
    /// taken. Boxed: it is rare, and an error is several times the size of the common
    /// variant, which every record's future would otherwise carry and every caller move.
    Ready(Box<(Option<Result<Placement, ClientError>>, Instant)>),
}

/// The result of one [`Producer::send`](super::Producer::send): resolves when the record is
/// acknowledged (its placement) or has failed for good (retries and the delivery timeout
/// exhausted). Dropping it does not cancel the record.
pub struct DeliveryFuture(Delivery);

impl DeliveryFuture {
    /// A future already answered with `result`.
    pub(crate) fn ready(result: Result<Placement, ClientError>) -> DeliveryFuture {
        DeliveryFuture(Delivery::Ready(Box::new((Some(result), Instant::now()))))
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
            Delivery::InBatch { outcome, .. } => outcome.answer.get().map(|(_, at)| *at),
            Delivery::Ready(ready) => Some(ready.1),
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
            Delivery::Ready(ready) => f
                .debug_struct("DeliveryFuture")
                .field("ready", &ready.0)
                .finish(),
        }
    }
}

impl Future for DeliveryFuture {
    type Output = Result<Placement, ClientError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            Delivery::Ready(ready) => {
                Poll::Ready(ready.0.take().unwrap_or(Err(ClientError::Closed)))
            }
            Delivery::InBatch {
                outcome,
                index,
                waker_slot,
            } => {
                if let Some((result, _)) = outcome.answer.get() {
                    return Poll::Ready(placement(outcome.partition, result, *index));
                }
                let mut wakers = outcome.wakers();
                // Checked again under the lock: the answer may have been set, and its wakers
                // taken, between the look above and this lock.
                if let Some((result, _)) = outcome.answer.get() {
                    return Poll::Ready(placement(outcome.partition, result, *index));
                }
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

/// Record `index`'s placement in a batch of `partition` answered with `result`.
fn placement(
    partition: i32,
    result: &Result<i64, ClientError>,
    index: u32,
) -> Result<Placement, ClientError> {
    match result {
        Ok(base_offset) => {
            let offset = if *base_offset < 0 {
                -1
            } else {
                *base_offset + i64::from(index)
            };
            Ok(Placement { partition, offset })
        }
        Err(error) => Err(error.clone()),
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

    #[test]
    fn a_records_future_stays_small() {
        // Every record's future is moved into the caller's lists; the rare early answer is
        // boxed so that an error's size does not ride along with each of them.
        let size = std::mem::size_of::<DeliveryFuture>();
        assert!(size <= 32, "{size} bytes");
    }

    #[tokio::test]
    async fn a_record_answered_before_batching_resolves_at_once() {
        let record = DeliveryFuture::ready(Err(ClientError::Closed));
        assert!(matches!(record.await, Err(ClientError::Closed)));
    }
}

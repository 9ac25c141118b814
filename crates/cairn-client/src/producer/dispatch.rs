//! The produce hot path's dispatcher: the record accumulator behind its lock, and the requests
//! that carry its batches.
//!
//! Whoever changes a partition's queue sends what that queue releases, from its own task: the
//! caller of `send` when its record sealed or opened a batch, a request's task when its answer
//! frees a slot. Waking a background task for each of those was two thread hand-offs per
//! request, which at low load cost more than the broker's fsync. The background task
//! (`sender`) is left what has no caller: lingers, retries and expiries coming due, a fresh
//! producer id, flush and close; a queue change that needs it sooner than it planned to wake
//! notifies it.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Instant;

use cairn_proto::v1::{ErrorCode, ProduceRequest};
use tokio::sync::{Notify, Semaphore};

use super::ProducerIdentity;
use super::accumulator::{Accumulator, Outgoing};
use super::config::ProducerConfig;
use super::stats::RequestStats;
use crate::error::ClientError;
use crate::routing::Router;

/// Largest produce answer decoded: far above any real one (a partition result per partition).
const MAX_PRODUCE_RESPONSE_BYTES: usize = 64 << 20;

/// What producer handles, request tasks and the background task share.
pub(crate) struct Dispatcher {
    router: Router,
    config: Arc<ProducerConfig>,
    accumulator: Mutex<Accumulator>,
    /// Every produce request's round trip.
    pub stats: RequestStats,
    /// Wakes the background task: something is due sooner than it planned to wake, a queue
    /// needs a fresh producer id, or a flush may be answered.
    pub wake: Notify,
}

impl Dispatcher {
    /// The queues of a producer with `config` sending through `router`; `identity` is `Some`
    /// when idempotent; `buffer` is the producer's buffer.
    pub fn new(
        router: Router,
        config: Arc<ProducerConfig>,
        identity: Option<ProducerIdentity>,
        buffer: Arc<Semaphore>,
    ) -> Dispatcher {
        Dispatcher {
            router,
            accumulator: Mutex::new(Accumulator::new(Arc::clone(&config), identity, buffer)),
            config,
            stats: RequestStats::new(),
            wake: Notify::new(),
        }
    }

    /// The queues. Every change to them completes before the lock is released, so a panic
    /// elsewhere cannot leave them half-changed, and a poisoned lock is still safe to use.
    pub fn lock(&self) -> MutexGuard<'_, Accumulator> {
        self.accumulator
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The router the producer's requests go through.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Sends what the queues of `topic`'s `partitions` release now, from the calling task,
    /// and wakes the background task if one of them needs it.
    pub fn dispatch(
        self: &Arc<Self>,
        mut accumulator: MutexGuard<'_, Accumulator>,
        topic: &str,
        partitions: &[i32],
    ) {
        let now = Instant::now();
        let mut outgoing = Vec::new();
        let mut attention = false;
        for &partition in partitions {
            attention |= accumulator.poll_partition(topic, partition, now, &mut outgoing);
        }
        drop(accumulator);
        for batch in outgoing {
            self.spawn_request(batch);
        }
        if attention {
            self.wake.notify_one();
        }
    }

    /// Sends one batch on its own task; the answer goes back into its queue, and what that
    /// releases is sent from the same task.
    pub fn spawn_request(self: &Arc<Self>, batch: Outgoing) {
        let dispatcher = Arc::clone(self);
        tokio::spawn(async move {
            let Outgoing {
                topic,
                partition,
                ticket,
            } = batch;
            let batch_id = ticket.batch_id;
            let result = unwound_as_error(dispatcher.request(&topic, partition, ticket)).await;
            let mut accumulator = dispatcher.lock();
            accumulator.on_produced(&topic, partition, batch_id, result, Instant::now());
            dispatcher.dispatch(accumulator, &topic, &[partition]);
        });
    }

    async fn request(
        &self,
        topic: &Arc<str>,
        partition: i32,
        ticket: super::partition_queue::SendTicket,
    ) -> Result<i64, ClientError> {
        let router = &self.router;
        let acks = self.config.acks;
        // Routing may read metadata first: the ticket's deadline covers it too.
        let started = tokio::time::Instant::now();
        let route = tokio::time::timeout(ticket.timeout, router.route(topic, partition)).await;
        let timeout = ticket.timeout.saturating_sub(started.elapsed());
        let request = ProduceRequest {
            topic: topic.to_string(),
            partition: Some(partition),
            acks: acks as i32,
            payload: None,
            producer: None,
            compression: String::new(),
        };
        let timed_out = || ClientError::Broker {
            code: ErrorCode::RequestTimedOut,
            status: tonic::Code::DeadlineExceeded,
            message: format!("no answer within {:?}", ticket.timeout),
            leader: None,
        };
        match route {
            Ok(route) if !timeout.is_zero() => {
                // The grpc-timeout header makes the broker give up; the channel's own deadline
                // bounds a broker that never answers at all.
                let sent = Instant::now();
                let result = match router.produce_channel(&route) {
                    Ok(channel) => channel
                        .produce(&request, ticket.bytes, timeout, MAX_PRODUCE_RESPONSE_BYTES)
                        .await
                        .map_err(ClientError::from)
                        .and_then(first_partition_result),
                    Err(error) => Err(error),
                };
                let round_trip = sent.elapsed();
                self.stats.record(round_trip, result.is_err());
                if let Err(error) = &result {
                    self.stats.record_failure(&route.address, error);
                    // Tells the router where the retry should go; the queue decides whether
                    // there is one.
                    router.on_error(topic, partition, &route.address, error);
                }
                result
            }
            Ok(_) | Err(_) => Err(timed_out()),
        }
    }
}

/// `request`'s result or, if polling it panicked, an error whose outcome is unknown.
///
/// A panic must not end the request's task without an answer: its batch would stay in flight
/// for good, its records unanswered, `flush` and `close` waiting on them, its share of the
/// buffer held, and an idempotent partition's recovery waiting for it. tonic panics, for one,
/// on a `grpc-status-details-bin` header that is not base64, which a proxy or a server that is
/// not a broker can send. The batch may have been written, so it is answered as a broken
/// connection's would be: retried under the same sequence numbers until its delivery timeout.
async fn unwound_as_error<F>(request: F) -> Result<i64, ClientError>
where
    F: Future<Output = Result<i64, ClientError>>,
{
    let mut request = std::pin::pin!(request);
    std::future::poll_fn(|cx| {
        // Unwind safety: after a panic the future is only dropped, never polled again, and
        // the queues' lock recovers from poisoning (`Dispatcher::lock`).
        match std::panic::catch_unwind(AssertUnwindSafe(|| request.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => Poll::Ready(Err(ClientError::Broker {
                code: ErrorCode::BrokerNotAvailable,
                status: tonic::Code::Internal,
                message: format!(
                    "the produce call failed in the client: {}",
                    panic_message(panic.as_ref())
                ),
                leader: None,
            })),
        }
    })
    .await
}

/// The text a panic was raised with, when it was raised with text.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

/// The one partition result of a single-partition produce answer, as an offset or an error.
fn first_partition_result(response: cairn_proto::v1::ProduceResponse) -> Result<i64, ClientError> {
    let Some(result) = response.results.first() else {
        return Err(ClientError::local(
            ErrorCode::Internal,
            "the broker answered a produce request without a partition result",
        ));
    };
    if result.error_code != ErrorCode::None as i32 {
        return Err(ClientError::Broker {
            code: ErrorCode::try_from(result.error_code).unwrap_or(ErrorCode::Internal),
            status: tonic::Code::Ok,
            message: result.error_message.clone(),
            leader: None,
        });
    }
    Ok(result.base_offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_that_panics_is_answered_as_a_broken_connection() {
        let answer = unwound_as_error(async {
            tokio::task::yield_now().await;
            panic!("Invalid status header, expected base64 encoded value");
        })
        .await;
        let error = answer.expect_err("a panic is an error");
        assert!(error.outcome_unknown(), "{error:?}");
        assert!(error.is_retriable(), "{error:?}");
        assert!(
            error.to_string().contains("Invalid status header"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_request_that_returns_is_passed_through() {
        assert_eq!(unwound_as_error(async { Ok(41) }).await.ok(), Some(41));
        let refused = ClientError::local(ErrorCode::InvalidRequest, "no");
        let answer = unwound_as_error(async move { Err(refused) }).await;
        assert!(matches!(
            answer,
            Err(ClientError::Broker {
                code: ErrorCode::InvalidRequest,
                ..
            })
        ));
    }
}

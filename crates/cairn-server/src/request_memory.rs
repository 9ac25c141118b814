//! The broker-wide budget of memory for the request bodies it reads itself ([`RequestMemory`]):
//! Kafka's `queued.max.request.bytes`, on by default.
//!
//! Why: a `Produce` body may be up to `MAX_REQUEST_BYTES` (16 MiB), HTTP/2 allows 200 streams
//! per connection, and the broker reads each body as it arrives (its flow-control window is
//! given back as it reads). Without a budget one client holding 200 streams open one byte short
//! of their end made the broker hold 3.2 GiB, and a few connections more would have had it
//! killed for memory. With it, a request whose 5-byte prefix is in waits for its declared size
//! before its body is read further; while it waits, HTTP/2 flow control holds its sender to
//! the stream's window. The bytes are given back when the request is done with: a `Produce`
//! once its answer is built (its records are appended from the received frames, so they are
//! held until then), a `Fetch` or `Subscribe` once decoded.
//!
//! The whole size is taken at once, in arrival order (a fair semaphore), so requests never
//! hold part of the budget while waiting for the rest, and no set of them can wait on each
//! other. A request declaring more than the whole budget takes all of it (it waits until
//! nothing else is held) rather than waiting forever. A message must then arrive whole within
//! [`RequestMemory::body_timeout`] (30 s), or its call fails and the share is given back:
//! declared sizes are taken before the bytes come, so a client could otherwise hold the
//! budget with prefixes alone. Before that, a unary call's message must start (its prefix be
//! whole) within the same limit of the call's start: a call with nothing sent holds no share,
//! but it counts as in flight on its connection, and a connection with a call in flight is
//! neither closed as idle nor evicted, so a few such calls could otherwise hold every
//! connection the broker allows.
//!
//! A request waiting for its share is read on, its bytes counted in a waiting room apart from
//! the budget and capped at a quarter of it (`WaitingRoom`; past the cap a request is
//! refused at once with THROTTLED, retriable, unless no other request waits). Left unread, a
//! waiting body would sit in the connection's shared HTTP/2 window (up to its 8 MiB stream
//! window, in a 32 MiB connection window), and a few of them kept the same connection's
//! requests that held shares from receiving the rest of their bodies until the time limit
//! failed them. The calls tonic decodes (small in practice) take their share before tonic
//! reads on, so there a client with over 32 MiB of such calls waiting on one connection can
//! still stall it until the time limit.//!
//! The calls tonic decodes itself (`Admin`, `Groups`, `Metadata`, `InitProducerId`, health
//! and reflection) take their share through [`RequestMemoryLayer`], each message from its
//! prefix until tonic has it whole.
//!
//! What it does not bound: bytes the HTTP/2 layer buffers before a request is read (at most
//! the connection window, `HTTP2_CONNECTION_WINDOW_BYTES`, per connection; the connection
//! limits bound the connections) and node-to-node traffic.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

mod budgeted_body;

pub use budgeted_body::{BudgetedBody, RequestMemoryLayer, RequestMemoryService};
pub(crate) use budgeted_body::{body_too_slow, budget_full, message_too_slow_to_start};

/// The budget when none is configured: 512 MiB, 32 of the largest requests at once. Kafka's
/// own default is no byte limit at all (500 queued requests of up to 100 MB each).
pub const DEFAULT_QUEUED_MAX_REQUEST_BYTES: u64 = 512 << 20;
/// The smallest budget a broker should be given: the largest request, framed, so that one
/// always fits without waiting for every other request to finish.
pub const MIN_QUEUED_MAX_REQUEST_BYTES: u64 =
    crate::MAX_REQUEST_BYTES as u64 + cairn_codec::grpc_frame::PREFIX_BYTES as u64;
/// The largest budget: what one semaphore acquisition can count, 4 GiB less one byte.
pub const MAX_QUEUED_MAX_REQUEST_BYTES: u64 = u32::MAX as u64;
/// How long a request's message may take to arrive whole once its share of the budget is
/// set aside: the clients' own default request timeout (30 s), past which a well-behaved
/// client has given up on the call anyway. Without it, prefixes declaring 16 MiB and nothing
/// after them (160 bytes for 32 of them) would hold the default budget for good.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The budget of request bytes the broker holds at once; see the module docs.
#[derive(Debug)]
pub struct RequestMemory {
    permits: Arc<Semaphore>,
    limit: u32,
    waits: AtomicU64,
    /// Bytes received by requests that wait for their share (see [`RequestMemory::hold_with`]).
    waiting_bytes: AtomicU64,
    refused: AtomicU64,
    body_timeout: Duration,
}

/// The budget is full and requests waiting for it already hold as much as they may: retry
/// later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the broker's request memory (--queued-max-request-bytes) is full and enough requests are \
     already waiting for it; retry later"
)]
pub struct BudgetFull;

/// The bytes one request has received while it waits for its share: outside the budget, so
/// counted apart, with every waiting request's, and capped at a quarter of the budget. Past
/// the cap a request is refused rather than kept waiting, unless no other request is waiting
/// (so a small budget still queues a frame larger than its quarter). Given back when dropped.
#[derive(Debug)]
pub(crate) struct WaitingRoom<'a> {
    memory: &'a RequestMemory,
    bytes: u64,
}

impl WaitingRoom<'_> {
    /// Counts `bytes` more.
    ///
    /// # Errors
    /// [`BudgetFull`] when other requests wait too and the count passes the cap; what was
    /// counted stays counted until the room is dropped.
    pub(crate) fn add(&mut self, bytes: usize) -> Result<(), BudgetFull> {
        let bytes = bytes as u64;
        let before = self.memory.waiting_bytes.fetch_add(bytes, Ordering::AcqRel);
        let others = before.saturating_sub(self.bytes);
        self.bytes += bytes;
        if others > 0 && before.saturating_add(bytes) > self.memory.max_waiting_bytes() {
            self.memory.refused.fetch_add(1, Ordering::Relaxed);
            return Err(BudgetFull);
        }
        Ok(())
    }
}

impl Drop for WaitingRoom<'_> {
    fn drop(&mut self) {
        self.memory
            .waiting_bytes
            .fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Bytes of the budget one request holds; given back when dropped.
#[derive(Debug)]
pub struct HeldRequestBytes {
    _permit: Option<OwnedSemaphorePermit>,
}

impl HeldRequestBytes {
    /// Holds nothing.
    pub(crate) fn none() -> Self {
        HeldRequestBytes { _permit: None }
    }
}

impl RequestMemory {
    /// A budget of `limit_bytes`, capped at [`MAX_QUEUED_MAX_REQUEST_BYTES`]. A budget below
    /// [`MIN_QUEUED_MAX_REQUEST_BYTES`] is taken as given (tests use small ones): the largest
    /// requests then each wait for the whole of it.
    pub fn new(limit_bytes: u64) -> Self {
        let limit = u32::try_from(limit_bytes.min(MAX_QUEUED_MAX_REQUEST_BYTES))
            .unwrap_or(u32::MAX)
            .max(1);
        RequestMemory {
            permits: Arc::new(Semaphore::new(limit as usize)),
            limit,
            waits: AtomicU64::new(0),
            waiting_bytes: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            body_timeout: DEFAULT_BODY_TIMEOUT,
        }
    }

    /// The same budget with another time limit for a message to arrive (tests use short ones).
    pub fn with_body_timeout(mut self, body_timeout: Duration) -> Self {
        self.body_timeout = body_timeout;
        self
    }

    /// How long a message may take to arrive whole once its share is set aside; a body that
    /// is slower fails with DEADLINE_EXCEEDED and gives its share back.
    pub fn body_timeout(&self) -> Duration {
        self.body_timeout
    }

    /// Waits until `bytes` of the budget (all of it, if `bytes` is more) are free, and holds
    /// them. Waiters are served in arrival order.
    pub async fn hold(&self, bytes: usize) -> HeldRequestBytes {
        if let Some(share) = self.try_hold(bytes) {
            return share;
        }
        self.waits.fetch_add(1, Ordering::Relaxed);
        // The semaphore is never closed, so acquiring cannot fail; were it closed, the request
        // would go on unbudgeted rather than fail.
        let permit = Arc::clone(&self.permits)
            .acquire_many_owned(self.wanted(bytes))
            .await;
        HeldRequestBytes {
            _permit: permit.ok(),
        }
    }

    /// As [`RequestMemory::hold`], for a request that holds `in_hand` bytes already received
    /// (the frame that carried its prefix) while it waits; see `WaitingRoom`.
    ///
    /// # Errors
    /// [`BudgetFull`] when the share is not free and the bytes held by waiting requests would
    /// pass their cap.
    pub async fn hold_with(
        &self,
        bytes: usize,
        in_hand: usize,
    ) -> Result<HeldRequestBytes, BudgetFull> {
        if let Some(share) = self.try_hold(bytes) {
            return Ok(share);
        }
        // Given back however the wait ends, the caller's future dropped included.
        let mut room = self.waiting_room();
        room.add(in_hand)?;
        Ok(self.hold(bytes).await)
    }

    /// `bytes` of the budget if they are free now (and no one waits before), without waiting.
    pub(crate) fn try_hold(&self, bytes: usize) -> Option<HeldRequestBytes> {
        let wanted = self.wanted(bytes);
        if wanted == 0 {
            return Some(HeldRequestBytes::none());
        }
        Arc::clone(&self.permits)
            .try_acquire_many_owned(wanted)
            .ok()
            .map(|permit| HeldRequestBytes {
                _permit: Some(permit),
            })
    }

    /// The permits `bytes` take: all of the budget at most.
    fn wanted(&self, bytes: usize) -> u32 {
        u32::try_from(bytes).unwrap_or(u32::MAX).min(self.limit)
    }

    /// A place for a request to count the bytes it has received while it waits for its share.
    pub(crate) fn waiting_room(&self) -> WaitingRoom<'_> {
        WaitingRoom {
            memory: self,
            bytes: 0,
        }
    }

    /// The most bytes requests waiting for their share may hold: a quarter of the budget.
    fn max_waiting_bytes(&self) -> u64 {
        u64::from(self.limit) / 4
    }

    /// Bytes held by requests now.
    pub fn used_bytes(&self) -> u64 {
        u64::from(self.limit).saturating_sub(self.permits.available_permits() as u64)
    }

    /// Appends the budget's series to a `/metrics` page.
    pub fn render(&self, out: &mut String) {
        use crate::metrics::write_single_sample as sample;
        sample(
            out,
            "cairn_request_memory_limit_bytes",
            "gauge",
            "Most bytes of request bodies the broker holds at once (queued.max.request.bytes).",
            self.limit,
        );
        sample(
            out,
            "cairn_request_memory_used_bytes",
            "gauge",
            "Bytes of request bodies being read or served now.",
            self.used_bytes(),
        );
        sample(
            out,
            "cairn_request_memory_waits_total",
            "counter",
            "Requests that waited for request memory before their body was read.",
            self.waits.load(Ordering::Relaxed),
        );
        sample(
            out,
            "cairn_request_memory_refused_total",
            "counter",
            "Requests refused (THROTTLED) because the budget was full and the requests waiting for it already held a quarter of it.",
            self.refused.load(Ordering::Relaxed),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settles() -> tokio::task::JoinHandle<()> {
        tokio::spawn(async {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        })
    }

    #[tokio::test]
    async fn a_request_waits_until_the_bytes_it_needs_are_given_back() {
        let memory = Arc::new(RequestMemory::new(100));
        let first = memory.hold(70).await;
        assert_eq!(memory.used_bytes(), 70);
        let waiting = tokio::spawn({
            let memory = Arc::clone(&memory);
            async move { memory.hold(40).await }
        });
        settles().await.unwrap();
        assert!(
            !waiting.is_finished(),
            "40 more bytes do not fit in 100 with 70 held"
        );
        drop(first);
        let second = waiting.await.unwrap();
        assert_eq!(memory.used_bytes(), 40);
        drop(second);
        assert_eq!(memory.used_bytes(), 0);
        let mut page = String::new();
        memory.render(&mut page);
        assert!(
            page.contains("cairn_request_memory_waits_total 1\n"),
            "{page}"
        );
        assert!(
            page.contains("cairn_request_memory_limit_bytes 100\n"),
            "{page}"
        );
    }

    #[tokio::test]
    async fn a_request_larger_than_the_budget_takes_all_of_it() {
        let memory = Arc::new(RequestMemory::new(100));
        let small = memory.hold(10).await;
        let large = tokio::spawn({
            let memory = Arc::clone(&memory);
            async move { memory.hold(1_000).await }
        });
        settles().await.unwrap();
        assert!(!large.is_finished(), "it waits for the whole budget");
        drop(small);
        let large = large.await.unwrap();
        assert_eq!(memory.used_bytes(), 100);
        drop(large);
        assert_eq!(memory.used_bytes(), 0);
    }

    #[tokio::test]
    async fn a_request_is_refused_once_the_waiting_ones_hold_a_quarter_of_the_budget() {
        let memory = Arc::new(RequestMemory::new(100));
        let all = memory.hold(100).await;
        let waiting = tokio::spawn({
            let memory = Arc::clone(&memory);
            async move { memory.hold_with(10, 20).await }
        });
        settles().await.unwrap();
        assert!(
            !waiting.is_finished(),
            "20 bytes in hand fit the waiting room of 25"
        );
        assert_eq!(memory.hold_with(10, 10).await.unwrap_err(), BudgetFull);
        drop(all);
        let share = waiting.await.unwrap().unwrap();
        assert_eq!(memory.used_bytes(), 10);
        drop(share);
        // The waiting room was given back with the wait.
        let _all = memory.hold(100).await;
        let again = tokio::spawn({
            let memory = Arc::clone(&memory);
            async move { memory.hold_with(10, 25).await }
        });
        settles().await.unwrap();
        assert!(!again.is_finished());
        let mut page = String::new();
        memory.render(&mut page);
        assert!(
            page.contains("cairn_request_memory_refused_total 1\n"),
            "{page}"
        );
        again.abort();
    }

    #[tokio::test]
    async fn an_empty_request_holds_nothing() {
        let memory = RequestMemory::new(1);
        let _all = memory.hold(1).await;
        let _empty = memory.hold(0).await;
        assert_eq!(memory.used_bytes(), 1);
    }
}

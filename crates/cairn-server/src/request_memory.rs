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
//! nothing else is held) rather than waiting forever.
//!
//! The calls tonic decodes itself (`Admin`, `Groups`, `Metadata`, `InitProducerId`, health
//! and reflection) take their share through [`RequestMemoryLayer`], each message from its
//! prefix until tonic has it whole.
//!
//! What it does not bound: bytes the HTTP/2 layer buffers before a request is read (at most
//! the connection window, `HTTP2_CONNECTION_WINDOW_BYTES`, per connection; the connection
//! limits bound the connections), the DATA frame that carried a waiting request's prefix (at
//! most one frame per stream), and node-to-node traffic.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

mod budgeted_body;

pub use budgeted_body::{BudgetedBody, RequestMemoryLayer, RequestMemoryService};

/// The budget when none is configured: 512 MiB, 32 of the largest requests at once. Kafka's
/// own default is no byte limit at all (500 queued requests of up to 100 MB each).
pub const DEFAULT_QUEUED_MAX_REQUEST_BYTES: u64 = 512 << 20;
/// The smallest budget a broker should be given: the largest request, framed, so that one
/// always fits without waiting for every other request to finish.
pub const MIN_QUEUED_MAX_REQUEST_BYTES: u64 =
    crate::MAX_REQUEST_BYTES as u64 + cairn_codec::grpc_frame::PREFIX_BYTES as u64;
/// The largest budget: what one semaphore acquisition can count, 4 GiB less one byte.
pub const MAX_QUEUED_MAX_REQUEST_BYTES: u64 = u32::MAX as u64;

/// The budget of request bytes the broker holds at once; see the module docs.
#[derive(Debug)]
pub struct RequestMemory {
    permits: Arc<Semaphore>,
    limit: u32,
    waits: AtomicU64,
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
        }
    }

    /// Waits until `bytes` of the budget (all of it, if `bytes` is more) are free, and holds
    /// them. Waiters are served in arrival order.
    pub async fn hold(&self, bytes: usize) -> HeldRequestBytes {
        let wanted = u32::try_from(bytes).unwrap_or(u32::MAX).min(self.limit);
        if wanted == 0 {
            return HeldRequestBytes::none();
        }
        let permits = Arc::clone(&self.permits);
        let permit = match Arc::clone(&permits).try_acquire_many_owned(wanted) {
            Ok(permit) => Ok(permit),
            Err(_) => {
                self.waits.fetch_add(1, Ordering::Relaxed);
                permits.acquire_many_owned(wanted).await
            }
        };
        // The semaphore is never closed, so acquiring cannot fail; were it closed, the request
        // would go on unbudgeted rather than fail.
        HeldRequestBytes {
            _permit: permit.ok(),
        }
    }

    /// Bytes held by requests now.
    pub fn used_bytes(&self) -> u64 {
        u64::from(self.limit).saturating_sub(self.permits.available_permits() as u64)
    }

    /// Appends the budget's series to a `/metrics` page.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP cairn_request_memory_limit_bytes Most bytes of request bodies the broker holds at once (queued.max.request.bytes)."
        );
        let _ = writeln!(out, "# TYPE cairn_request_memory_limit_bytes gauge");
        let _ = writeln!(out, "cairn_request_memory_limit_bytes {}", self.limit);
        let _ = writeln!(
            out,
            "# HELP cairn_request_memory_used_bytes Bytes of request bodies being read or served now."
        );
        let _ = writeln!(out, "# TYPE cairn_request_memory_used_bytes gauge");
        let _ = writeln!(out, "cairn_request_memory_used_bytes {}", self.used_bytes());
        let _ = writeln!(
            out,
            "# HELP cairn_request_memory_waits_total Requests that waited for request memory before their body was read."
        );
        let _ = writeln!(out, "# TYPE cairn_request_memory_waits_total counter");
        let _ = writeln!(
            out,
            "cairn_request_memory_waits_total {}",
            self.waits.load(Ordering::Relaxed)
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
    async fn an_empty_request_holds_nothing() {
        let memory = RequestMemory::new(1);
        let _all = memory.hold(1).await;
        let _empty = memory.hold(0).await;
        assert_eq!(memory.used_bytes(), 1);
    }
}

//! Subscribe streams for `/metrics`: how many are open now and how many were ever opened. A
//! stream is open from the moment its reading task starts until that task ends (the consumer
//! went away, or an error answer closed the stream), which an [`OpenStream`] guard held by
//! the task marks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Metrics;

/// The open-stream gauge and the opened-stream counter.
#[derive(Debug, Default)]
pub struct SubscribeStreams {
    open_count: AtomicU64,
    opened_count: AtomicU64,
}

impl SubscribeStreams {
    /// Streams open now.
    pub fn open_count(&self) -> u64 {
        self.open_count.load(Ordering::Relaxed)
    }

    /// Streams opened since the server started.
    pub fn opened_count(&self) -> u64 {
        self.opened_count.load(Ordering::Relaxed)
    }
}

/// One open Subscribe stream: counted open while this lives.
#[derive(Debug)]
pub struct OpenStream {
    metrics: Arc<Metrics>,
}

impl OpenStream {
    /// Counts a stream opened in `metrics`; it stays open until the guard is dropped.
    pub fn open(metrics: Arc<Metrics>) -> OpenStream {
        let streams = &metrics.subscribe_streams;
        streams.opened_count.fetch_add(1, Ordering::Relaxed);
        streams.open_count.fetch_add(1, Ordering::Relaxed);
        OpenStream { metrics }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.metrics
            .subscribe_streams
            .open_count
            .fetch_sub(1, Ordering::Relaxed);
    }
}

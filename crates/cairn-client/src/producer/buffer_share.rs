//! [`BufferShare`]: the bytes of the producer's buffer (`buffer_memory`) that one batch's
//! records hold, given back in one call when the batch is answered, fails for good, or is
//! dropped with the producer.
//!
//! `send` takes each record's bytes from the buffer's semaphore and forgets the permit; the
//! batch's share counts them and returns them all at once. A tokio `OwnedSemaphorePermit` per
//! record, merged into the batch's, cloned and dropped the semaphore's `Arc` for every record,
//! and that reference count shares a cache line with the permit count that the tasks answering
//! batches write from other threads: profiled at 1 KiB records, the count's cache misses were
//! about a tenth of the producer's CPU.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// Bytes taken from the producer's buffer and owed back to it (see the module docs).
pub(crate) struct BufferShare {
    buffer: Arc<Semaphore>,
    bytes: usize,
}

impl BufferShare {
    /// A share of nothing yet in `buffer`.
    pub fn new(buffer: &Arc<Semaphore>) -> BufferShare {
        BufferShare {
            buffer: Arc::clone(buffer),
            bytes: 0,
        }
    }

    /// Adds `bytes` that the caller took from the buffer and forgot.
    pub fn add(&mut self, bytes: usize) {
        self.bytes += bytes;
    }
}

impl Drop for BufferShare {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.buffer.add_permits(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_gives_back_what_was_taken_for_it_when_dropped() {
        let buffer = Arc::new(Semaphore::new(100));
        let mut share = BufferShare::new(&buffer);
        for size in [10, 20, 30] {
            buffer
                .try_acquire_many(size)
                .expect("room in the buffer")
                .forget();
            share.add(size as usize);
        }
        assert_eq!(buffer.available_permits(), 40);
        drop(share);
        assert_eq!(buffer.available_permits(), 100);
        // An empty share gives back nothing.
        drop(BufferShare::new(&buffer));
        assert_eq!(buffer.available_permits(), 100);
    }
}

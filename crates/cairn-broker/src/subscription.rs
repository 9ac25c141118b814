//! [`Subscription`]: a partition read from an offset onwards, one read after another, as a
//! Subscribe stream carries it. Each read is a fetch's long poll (`fetch.rs`) that waits for at
//! least one batch; the position moves past what each read returned, so every batch is handed
//! out once and in order.
//!
//! It holds no partition between reads: each read looks the topic up again, so a deleted topic
//! or a broker shutting down ends the subscription with that error at the next poll.

use std::sync::Arc;
use std::time::Duration;

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::fetch::check_max_bytes;
use crate::partition::FetchedBatches;

/// How long each wait of a [`Subscription`] lasts before it looks the partition up and reads
/// again: the longest a deleted topic's subscription goes on before it ends with
/// `UnknownTopic`.
pub const SUBSCRIBE_POLL: Duration = Duration::from_secs(5);

/// A subscription to start: a partition read from `offset` onwards, one answer per read.
#[derive(Clone, Debug)]
pub struct SubscribeRequest {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i64,
    /// The first offset wanted.
    pub offset: i64,
    /// Bound on the bytes of each answer (0: default; at least one batch is returned).
    pub max_bytes: i64,
}

/// A partition read from an offset onwards, one read after another: what a Subscribe stream
/// carries. Holds no partition between reads, so a deleted topic or a broker shutting down
/// ends it with that error at the next poll.
#[derive(Debug)]
pub struct Subscription {
    broker: Arc<Broker>,
    topic: String,
    partition: i64,
    offset: i64,
    max_bytes: i64,
}

impl Subscription {
    /// The offset the next read starts at.
    pub fn position(&self) -> i64 {
        self.offset
    }

    /// Waits for batches at the subscription's position and returns them, moving the position
    /// past them. Waits as long as it takes (re-reading every [`SUBSCRIBE_POLL`]); a caller
    /// that must stop earlier drops the future, which cancels the wait and leaves the position
    /// where it was.
    ///
    /// # Errors
    /// As [`Broker::fetch`]: the stream should end with the error.
    pub async fn next(&mut self) -> Result<FetchedBatches, BrokerError> {
        loop {
            let read = self
                .broker
                .read_waiting(
                    &self.topic,
                    self.partition,
                    self.offset,
                    self.max_bytes,
                    SUBSCRIBE_POLL,
                    1,
                )
                .await?;
            if !read.is_empty() {
                self.offset = read.next_offset().as_i64();
                return Ok(read);
            }
        }
    }
}

impl Broker {
    /// Checks a subscription and returns it, positioned at `request.offset`.
    ///
    /// # Errors
    /// [`BrokerError::InvalidRequest`] for a negative `max_bytes`; [`BrokerError::UnknownTopic`],
    /// [`BrokerError::UnknownPartition`], [`BrokerError::PartitionStopped`].
    pub fn subscribe(
        self: &Arc<Self>,
        request: SubscribeRequest,
    ) -> Result<Subscription, BrokerError> {
        check_max_bytes(request.max_bytes)?;
        // The partition must exist (and serve) before a stream is started for it.
        self.topic(&request.topic)?
            .partition(request.partition)?
            .offsets()?;
        Ok(Subscription {
            broker: Arc::clone(self),
            topic: request.topic,
            partition: request.partition,
            offset: request.offset,
            max_bytes: request.max_bytes,
        })
    }
}

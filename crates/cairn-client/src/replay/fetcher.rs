//! One partition's fetch task: a `Subscribe` stream from the partition's start, each answer
//! checked and trimmed into a [`Chunk`] and queued for the caller, until the captured end (or
//! forever, in follow mode).
//!
//! Why a server stream rather than repeated `Fetch` calls: the broker reads the next chunk
//! while the previous one is on the wire or being decoded here, and HTTP/2 flow control (not a
//! request round trip) paces it, so the broker is never idle waiting for the next request.
//! The bounded queue to the caller is the backpressure: when the caller is slow this task stops
//! reading the stream, the stream's window fills, and the broker stops reading the log.
//!
//! A retriable failure (a broker restart, a reset connection, a leader that moved or died)
//! re-subscribes from the offset after the last chunk queued, with backoff, so nothing is
//! skipped or read twice; any other failure is queued as the partition's last item. Each
//! subscription goes to the partition's leader as the router knows it, and each failure is
//! reported to the router first, so a re-subscription goes to the new leader.

use std::sync::Arc;
use std::time::Duration;

use cairn_proto::v1::{FetchFormat, FetchResponse, SubscribeRequest};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::chunk::{Chunk, DecodedChunk};
use super::config::ReplayFormat;
use crate::batches::{CrcCheck, FetchedBatches};
use crate::consumer::MAX_RESPONSE_BYTES;
use crate::error::ClientError;
use crate::grpc_stream::{ServerStream, server_streaming};
use crate::routing::Router;

/// Consecutive retriable failures after which a partition's error is handed to the caller.
pub const RETRY_ATTEMPTS: u32 = 8;
/// The first wait before re-subscribing; it doubles per consecutive failure.
pub const RETRY_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// The longest wait before re-subscribing.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The gRPC method a replay streams from.
const SUBSCRIBE_PATH: &str = "/cairn.v1.Consumer/Subscribe";

/// What a fetch task queues for the caller.
pub(crate) type ChunkResult = Result<Chunk, ClientError>;

/// Everything one partition's fetch task needs.
#[derive(Debug)]
pub(crate) struct PartitionFetch {
    pub(crate) router: Router,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) follow: bool,
    pub(crate) format: ReplayFormat,
    pub(crate) max_bytes: i32,
}

impl PartitionFetch {
    /// Runs until the partition reaches its end (not in follow mode), the caller goes away, or
    /// a failure that is not retried. Holds a turn of `turns` until caught up.
    pub(crate) async fn run(mut self, turns: Arc<Semaphore>, queue: mpsc::Sender<ChunkResult>) {
        let Ok(turn) = turns.acquire_owned().await else {
            return;
        };
        // Held (not read) until caught up: the permit is the turn.
        let mut turn: Option<OwnedSemaphorePermit> = Some(turn);
        let mut position = self.start;
        let mut stream: Option<ServerStream<FetchResponse>> = None;
        // The node the current subscription went to, to report its failures against.
        let mut leader: Arc<str> = Arc::from("");
        let mut failures = 0_u32;
        loop {
            if position >= self.end {
                // Caught up: let another partition's catch-up run.
                drop(turn.take());
                if !self.follow {
                    return;
                }
            }
            let next = match stream.as_mut() {
                Some(stream) => stream.message().await.map_err(ClientError::from),
                None => match self.subscribe(position, &mut leader).await {
                    Ok(opened) => {
                        stream = Some(opened);
                        continue;
                    }
                    Err(err) => Err(err),
                },
            };
            let failure = match next {
                Ok(Some(response)) => match self.chunk(position, response) {
                    Ok(chunk) => {
                        failures = 0;
                        position = position.max(chunk.next_offset());
                        if queue.send(Ok(chunk)).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Err(err) => err,
                },
                // The broker ended the stream (it is shutting down): as retriable as a reset.
                Ok(None) => ClientError::Broker {
                    code: cairn_proto::v1::ErrorCode::BrokerNotAvailable,
                    status: tonic::Code::Unavailable,
                    message: format!(
                        "the subscription to {}/{} ended",
                        self.topic, self.partition
                    ),
                    leader: None,
                },
                Err(err) => err,
            };
            stream = None;
            failures += 1;
            let moved = self
                .router
                .on_error(&self.topic, self.partition, &leader, &failure);
            if !(failure.is_retriable() || moved) || failures > RETRY_ATTEMPTS {
                let _ = queue.send(Err(failure)).await;
                return;
            }
            tokio::time::sleep(backoff(failures)).await;
        }
    }

    /// Subscribes at `offset` on the partition's leader, whose address goes to `leader`.
    async fn subscribe(
        &mut self,
        offset: i64,
        leader: &mut Arc<str>,
    ) -> Result<ServerStream<FetchResponse>, ClientError> {
        let route = self.router.route(&self.topic, self.partition).await;
        *leader = Arc::clone(&route.address);
        let channel = self.router.stream_channel(&route)?;
        let format = match self.format {
            ReplayFormat::RawBatches => FetchFormat::RecordBatches,
            ReplayFormat::Decoded => FetchFormat::Records,
        };
        let request = SubscribeRequest {
            topic: self.topic.clone(),
            partition: self.partition,
            offset,
            max_bytes: self.max_bytes,
            format: format as i32,
        };
        Ok(server_streaming(&channel, SUBSCRIBE_PATH, &request, MAX_RESPONSE_BYTES).await?)
    }

    /// Checks and trims one answer that continued from `position`.
    fn chunk(&self, position: i64, response: FetchResponse) -> Result<Chunk, ClientError> {
        let until = (!self.follow).then_some(self.end);
        Ok(match self.format {
            ReplayFormat::RawBatches => Chunk::Raw(FetchedBatches::decode(
                &self.topic,
                self.partition,
                position,
                until,
                response,
                // The replay stops at a damaged batch, so it can check each as it reads it.
                CrcCheck::BeforeReading,
            )?),
            ReplayFormat::Decoded => {
                Chunk::Decoded(DecodedChunk::new(self.partition, until, response))
            }
        })
    }
}

/// The wait before the `failures`-th consecutive retry.
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    RETRY_BACKOFF_INITIAL
        .saturating_mul(1 << doublings)
        .min(RETRY_BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(1), RETRY_BACKOFF_INITIAL);
        assert_eq!(backoff(2), RETRY_BACKOFF_INITIAL * 2);
        assert_eq!(backoff(40), RETRY_BACKOFF_MAX);
    }
}

//! `Producer`: appends records the way Kafka's producer does. `send` encodes a record into its
//! partition's open RecordBatch v2 and returns at once with a [`DeliveryFuture`]; a batch goes
//! when full (`batch_size`), at once when its partition has nothing in flight, else after
//! `linger`, as a pre-encoded batch the broker stores without re-encoding; up to
//! `max_in_flight` requests per partition, retried with backoff until the delivery timeout.
//!
//! Records with a key go to Kafka's murmur2 partition of the key, computed here with the same
//! code the broker uses (`cairn-codec`); keyless records stick to one partition until it has
//! taken a batch's worth of bytes (KIP-794), then move to another. By default the producer is
//! idempotent: it takes a producer id from the broker and numbers its batches per partition, so
//! a retry is never written twice and never out of order.
//!
//! In a cluster each batch goes to its partition's leader (the `routing` module). `NOT_LEADER`
//! and a dead leader are retried like any retriable failure, within the delivery timeout and
//! with the same producer id, epoch and sequence, so the new leader answers a retry of a batch
//! it already holds with the batch's original offset.
//!
//! Code map: `config` (the knobs), `accumulator` (the queues `send` appends to),
//! `partition_queue` (one partition's batches and the retry and sequence rules), `delivery`
//! (the per-batch result each record's future reads), `buffer_share` (a batch's bytes of
//! `buffer_memory`), `dispatch` (who sends what a queue
//! releases, and the requests), `produce_call` (the Produce call without copying the batch),
//! `stats` (request round trips), `sender` (the background task: timers, producer ids, flush
//! and close), this file (the handle and topic metadata).

mod accumulator;
mod buffer_share;
mod config;
mod delivery;
mod dispatch;
mod partition_queue;
pub(crate) mod produce_call;
mod sender;
mod stats;

use std::sync::Arc;

use bytes::Bytes;
use cairn_proto::v1::producer_client::ProducerClient;
use cairn_proto::v1::{ErrorCode, InitProducerIdRequest};
use tokio::sync::{Semaphore, mpsc, oneshot};

pub use delivery::DeliveryFuture;
pub use stats::{ProducerStats, RequestFailure};

pub use crate::routing::METADATA_MAX_AGE;
pub use config::{DEFAULT_DELIVERY_TIMEOUT, MAX_IN_FLIGHT_IDEMPOTENT, ProducerConfig};

use crate::connection::Timeouts;
use crate::error::ClientError;
use crate::routing::Router;
use accumulator::{KnownAppend, wall_clock_ms};
use dispatch::Dispatcher;
use sender::{Command, Sender};

/// Bytes a record costs beyond its key, value and headers in the producer's buffer accounting:
/// the varint framing and deltas of one record, rounded up.
const RECORD_OVERHEAD_BYTES: usize = 24;

/// A record to send.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutgoingRecord {
    /// The partition; `None` lets the producer choose (murmur2 of the key, or sticky).
    pub partition: Option<i32>,
    /// The key (`None`: null).
    pub key: Option<Bytes>,
    /// The value (`None`: a tombstone).
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Create time in milliseconds since the epoch; 0 means now, -1 none, and below -1 is
    /// refused ([`ErrorCode::InvalidTimestamp`]).
    pub timestamp_ms: i64,
}

impl OutgoingRecord {
    /// A record with this key and value and nothing else set.
    pub fn keyed(key: impl Into<Bytes>, value: impl Into<Bytes>) -> OutgoingRecord {
        OutgoingRecord {
            key: Some(key.into()),
            value: Some(value.into()),
            ..OutgoingRecord::default()
        }
    }

    /// Whether the record names a partition that a topic of `partition_count` partitions
    /// does not have (a negative one included).
    pub(crate) fn names_partition_beyond(&self, partition_count: u32) -> bool {
        self.partition.is_some_and(|partition| {
            u32::try_from(partition).map_or(true, |p| p >= partition_count)
        })
    }

    /// What the record occupies in the producer's buffer, and counts for toward `batch_size`:
    /// a batch holds `batch_size / buffered_size()` records of this shape.
    pub fn buffered_size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len) + 4)
            .sum();
        self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + headers
            + RECORD_OVERHEAD_BYTES
    }
}

/// Where a record landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The partition.
    pub partition: i32,
    /// The offset (-1 with `Acks::None`, where the broker does not answer with one).
    pub offset: i64,
}

/// An idempotent producer's id and epoch, as the broker handed them out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProducerIdentity {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    dispatcher: Arc<Dispatcher>,
    buffer: Arc<Semaphore>,
    router: Router,
    config: Arc<ProducerConfig>,
}

/// A batching, retrying, by default idempotent producer. Cheap to clone: clones share one
/// background task, buffer and connection. The task finishes what it holds and stops when the
/// last clone is dropped or [`Producer::close`]d.
///
/// ```no_run
/// use cairn_client::{OutgoingRecord, Producer, ProducerConfig};
///
/// # async fn example() -> Result<(), cairn_client::ClientError> {
/// let producer = Producer::connect("127.0.0.1:7070", ProducerConfig::default()).await?;
/// let delivery = producer.send("orders", OutgoingRecord::keyed("customer-1", "order-1 created")).await?;
/// let placed = delivery.await?; // acknowledged: partition and offset
/// println!("partition {} offset {}", placed.partition, placed.offset);
/// producer.flush().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// Connects to the first reachable broker of `brokers` and, when idempotent, takes a
    /// producer id. Must be called inside a Tokio runtime (the background task is spawned).
    ///
    /// # Errors
    /// [`ClientError::InvalidArgument`] for a bad setting or address, [`ClientError::Connect`],
    /// or the broker's refusal of a producer id.
    pub async fn connect(brokers: &str, config: ProducerConfig) -> Result<Producer, ClientError> {
        config.validate()?;
        // Produce requests carry their own deadline (`request_timeout`, bounded by what is
        // left of the delivery timeout); the channel's bounds the producer id and metadata
        // calls too, so a broker that accepts and never answers fails `connect` and `send`.
        let timeouts = Timeouts {
            connect: config.connect_timeout,
            request: Some(config.request_timeout),
            credentials: config.credentials.clone(),
            tls: config.tls.clone(),
        };
        let router = Router::connect(brokers, timeouts).await?;
        let identity = if config.is_idempotent() {
            Some(init_producer_id(&router).await?)
        } else {
            None
        };
        let config = Arc::new(config);
        let (commands, receiver) = mpsc::unbounded_channel();
        let buffer = Arc::new(Semaphore::new(config.buffer_memory));
        let dispatcher = Arc::new(Dispatcher::new(
            router.clone(),
            Arc::clone(&config),
            identity,
            Arc::clone(&buffer),
        ));
        let sender = Sender::new(Arc::clone(&config), Arc::clone(&dispatcher));
        tokio::spawn(sender.run(receiver));
        Ok(Producer {
            inner: Arc::new(Inner {
                commands,
                dispatcher,
                buffer,
                router,
                config,
            }),
        })
    }

    /// Queues `record` for `topic` and returns once it is accepted into the buffer (waiting
    /// while the buffer is full). The returned future gives the record's placement.
    ///
    /// # Errors
    /// Unknown topic or partition (checked against the broker's metadata), a timestamp below
    /// -1, a record larger than the whole buffer, or a closed producer.
    pub async fn send(
        &self,
        topic: &str,
        record: OutgoingRecord,
    ) -> Result<DeliveryFuture, ClientError> {
        let now_ms = wall_clock_ms();
        let size = self.check_record_alone(&record)?;
        // The common case in one lock and no await: room in the buffer and the topic's
        // partition count at hand. The general path below reads the count, takes the lock
        // twice and builds a semaphore future, which together cost about as much per 1 KiB
        // record as encoding it.
        if let Ok(permits) = self.inner.buffer.try_acquire_many(size) {
            // The record's batch gives these bytes back (see `buffer_share`).
            permits.forget();
            let mut accumulator = self.inner.dispatcher.lock();
            match accumulator.append_known(topic, &record, size as usize, now_ms) {
                KnownAppend::Appended(delivery, changed) => {
                    self.dispatch_changed(accumulator, topic, changed);
                    return Ok(delivery);
                }
                KnownAppend::NoSuchPartition(count) => {
                    drop(accumulator);
                    self.inner.buffer.add_permits(size as usize);
                    return Err(no_such_partition(topic, count, record.partition));
                }
                KnownAppend::CountUnknown => {
                    drop(accumulator);
                    self.inner.buffer.add_permits(size as usize);
                }
            }
        }
        let partition_count = self.partition_count(topic, now_ms).await?;
        check_partition(topic, partition_count, &record)?;
        // The record's batch gives these bytes back (see `buffer_share`). Nothing between
        // here and `append` can stop this call, so none are lost.
        self.inner
            .buffer
            .acquire_many(size)
            .await
            .map_err(|_| ClientError::Closed)?
            .forget();
        let mut accumulator = self.inner.dispatcher.lock();
        let (delivery, changed) =
            accumulator.append(topic, partition_count, &record, size as usize, now_ms);
        self.dispatch_changed(accumulator, topic, changed);
        Ok(delivery)
    }

    /// Sends what `changed` (the partition whose batch an append sealed or opened, if any)
    /// releases now, else just lets go of the lock.
    fn dispatch_changed(
        &self,
        accumulator: std::sync::MutexGuard<'_, accumulator::Accumulator>,
        topic: &str,
        changed: Option<i32>,
    ) {
        match changed {
            Some(partition) => self
                .inner
                .dispatcher
                .dispatch(accumulator, topic, &[partition]),
            None => drop(accumulator),
        }
    }

    /// Queues many records for `topic` at once: for callers that already hold them, it takes
    /// the buffer and the producer's lock once per buffer-full instead of once per record.
    /// Every record is checked before any is queued, so a bad one refuses the whole call.
    /// Returns each record's future, in order.
    ///
    /// # Errors
    /// As [`Producer::send`], for any of the records.
    pub async fn send_all(
        &self,
        topic: &str,
        records: Vec<OutgoingRecord>,
    ) -> Result<Vec<DeliveryFuture>, ClientError> {
        let now_ms = wall_clock_ms();
        let partition_count = self.partition_count(topic, now_ms).await?;
        let sizes = records
            .iter()
            .map(|record| self.check_record(topic, partition_count, record))
            .collect::<Result<Vec<u32>, ClientError>>()?;
        // The semaphore takes at most u32::MAX permits at once; each record fits by itself.
        let limit = self.inner.config.buffer_memory.min(u32::MAX as usize);
        let mut deliveries = Vec::with_capacity(records.len());
        let mut start = 0;
        while start < records.len() {
            // As many records as the whole buffer can hold at once (at least one: each fits).
            let mut end = start;
            let mut total = 0_usize;
            while end < records.len() && (end == start || total + sizes[end] as usize <= limit) {
                total += sizes[end] as usize;
                end += 1;
            }
            // Each record's batch gives its bytes back (see `buffer_share`); nothing between
            // here and the appends can stop this call, so none are lost.
            self.inner
                .buffer
                .acquire_many(u32::try_from(total).unwrap_or(u32::MAX))
                .await
                .map_err(|_| ClientError::Closed)?
                .forget();
            let mut changed = Vec::new();
            let mut accumulator = self.inner.dispatcher.lock();
            for (record, &size) in records[start..end].iter().zip(&sizes[start..end]) {
                let (delivery, partition) =
                    accumulator.append(topic, partition_count, record, size as usize, now_ms);
                deliveries.push(delivery);
                if let Some(partition) = partition
                    && !changed.contains(&partition)
                {
                    changed.push(partition);
                }
            }
            self.inner.dispatcher.dispatch(accumulator, topic, &changed);
            start = end;
        }
        Ok(deliveries)
    }

    /// Checks `record` against the topic and the buffer; returns what it takes of the buffer.
    fn check_record(
        &self,
        topic: &str,
        partition_count: u32,
        record: &OutgoingRecord,
    ) -> Result<u32, ClientError> {
        check_partition(topic, partition_count, record)?;
        self.check_record_alone(record)
    }

    /// Checks what of `record` needs no metadata: its timestamp, and its size against the
    /// buffer. Returns what it takes of the buffer.
    fn check_record_alone(&self, record: &OutgoingRecord) -> Result<u32, ClientError> {
        if record.timestamp_ms < -1 {
            // As the broker refuses it in plain records (and Kafka's client any negative
            // one): a create time before the epoch is a caller's bug, not a time.
            return Err(ClientError::local(
                ErrorCode::InvalidTimestamp,
                format!(
                    "timestamp_ms {} is before the epoch: use 0 for now, or -1 for none",
                    record.timestamp_ms
                ),
            ));
        }
        let size = record.buffered_size();
        u32::try_from(size)
            .ok()
            .filter(|&p| p as usize <= self.inner.config.buffer_memory)
            .ok_or_else(|| {
                ClientError::local(
                    ErrorCode::RecordTooLarge,
                    format!(
                        "the record takes {size} bytes, more than the producer's whole buffer_memory ({})",
                        self.inner.config.buffer_memory
                    ),
                )
            })
    }

    /// Sends every record queued so far at once (ignoring linger) and waits until each has
    /// its result.
    ///
    /// # Errors
    /// [`ClientError::Closed`] if the background task is gone.
    pub async fn flush(&self) -> Result<(), ClientError> {
        let (done, wait) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Flush(done))
            .map_err(|_| ClientError::Closed)?;
        wait.await.map_err(|_| ClientError::Closed)
    }

    /// Flushes, then lets go of this handle (the task stops once no clone is left).
    ///
    /// # Errors
    /// As [`Producer::flush`].
    pub async fn close(self) -> Result<(), ClientError> {
        self.flush().await
    }

    /// Figures about the produce requests sent so far: how many, how many failed, and their
    /// round trips (the service time, apart from the time records waited in the buffer).
    pub fn stats(&self) -> ProducerStats {
        self.inner.dispatcher.stats.snapshot()
    }

    /// The settings in use.
    pub fn config(&self) -> &ProducerConfig {
        &self.inner.config
    }

    /// `topic`'s partition count: the accumulator's copy, or the router's metadata when that
    /// copy is missing or older than [`METADATA_MAX_AGE`] at `now_ms`.
    async fn partition_count(&self, topic: &str, now_ms: i64) -> Result<u32, ClientError> {
        if let Some(count) = self.inner.dispatcher.lock().partition_count(topic, now_ms) {
            return Ok(count);
        }
        let count = self.read_partition_count(topic).await?;
        self.inner
            .dispatcher
            .lock()
            .set_partition_count(topic, count, now_ms);
        Ok(count)
    }

    async fn read_partition_count(&self, topic: &str) -> Result<u32, ClientError> {
        self.inner
            .router
            .partition_count(topic, METADATA_MAX_AGE)
            .await?
            .and_then(|count| u32::try_from(count).ok())
            .filter(|&count| count > 0)
            .ok_or_else(|| {
                ClientError::local(
                    ErrorCode::UnknownTopicOrPartition,
                    format!("topic {topic:?} does not exist"),
                )
            })
    }
}

/// Checks that `record` names no partition beyond `topic`'s `partition_count`.
fn check_partition(
    topic: &str,
    partition_count: u32,
    record: &OutgoingRecord,
) -> Result<(), ClientError> {
    if record.names_partition_beyond(partition_count) {
        return Err(no_such_partition(topic, partition_count, record.partition));
    }
    Ok(())
}

/// The refusal of a record for `partition` (`None` reads as -1), which `topic`, with
/// `partition_count` partitions, does not have.
fn no_such_partition(topic: &str, partition_count: u32, partition: Option<i32>) -> ClientError {
    let partition = partition.unwrap_or(-1);
    ClientError::local(
        ErrorCode::UnknownTopicOrPartition,
        format!(
            "topic {topic:?} has {partition_count} partition{} (0 to {}); partition {partition} does not exist",
            if partition_count == 1 { "" } else { "s" },
            partition_count.saturating_sub(1)
        ),
    )
}

/// Asks any node for a producer id and epoch (Kafka's InitProducerId).
pub(crate) async fn init_producer_id(router: &Router) -> Result<ProducerIdentity, ClientError> {
    let response = router
        .on_any_node(|channel| async move {
            let answer = ProducerClient::new(channel)
                .init_producer_id(InitProducerIdRequest {})
                .await?;
            Ok(answer.into_inner())
        })
        .await?;
    let producer_epoch = i16::try_from(response.producer_epoch).map_err(|_| {
        ClientError::local(
            ErrorCode::Internal,
            format!(
                "the broker sent producer epoch {}, outside int16",
                response.producer_epoch
            ),
        )
    })?;
    Ok(ProducerIdentity {
        producer_id: response.producer_id,
        producer_epoch,
    })
}

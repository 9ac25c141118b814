//! `Consumer`: reads assigned partitions over `cairn.v1.Consumer`: assign, seek (earliest,
//! latest, an offset, a timestamp), and poll, which long-polls each assigned partition in turn
//! from its position and advances it past what it returns.
//!
//! Two ways to poll: [`Consumer::poll`] has the broker decode records (any gRPC client can do
//! that), [`Consumer::poll_batches`] fetches the stored batches untouched and decodes them here
//! ([`FetchedBatches`]), which costs the broker less and allocates nothing per record.
//!
//! As soon as an answer arrives, the fetch the next round will start with is sent ahead
//! ([`FetchAhead`]), so the broker reads and sends the next chunk while this one is decoded and
//! handled.
//!
//! In a cluster each fetch goes to its partition's leader (the `routing` module). A fetch that
//! meets `NOT_LEADER` or a dead leader leaves the partition's position where it was and skips
//! it for this round; the next round asks the new leader from the same offset, so nothing is
//! skipped or handed out twice.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::routing::AuthChannel;
use bytes::Bytes;
use cairn_proto::v1::consumer_client::ConsumerClient;
use cairn_proto::v1::{FetchFormat, FetchRequest, FetchResponse, OffsetSpec};

use crate::batches::{CrcCheck, FetchedBatches};
use crate::connection::Timeouts;
use crate::error::ClientError;
use crate::fetch_ahead::{FetchAhead, likely_next};
use crate::routing::Router;

/// Pause at the end of a poll round in which a partition's leader moved and nothing was
/// found, so a consumer polling in a loop during an election does not spin on it.
pub(crate) const REROUTE_PAUSE: Duration = Duration::from_millis(100);

/// Upper bound on the bytes of one poll's fetch answer.
pub const POLL_MAX_BYTES: i32 = 1 << 20;
/// Largest answer the client decodes: the broker's 64 MiB fetch limit plus framing.
pub const MAX_RESPONSE_BYTES: usize = 80 << 20;

/// Where to start reading a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seek {
    /// The log start offset.
    Earliest,
    /// The high watermark (only records appended from now on).
    Latest,
    /// This offset.
    Offset(i64),
    /// The first offset whose record timestamp is at or after this (ms since the epoch).
    Timestamp(i64),
}

/// A record as consumed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// Create (or append) time in milliseconds.
    pub timestamp_ms: i64,
    /// The key.
    pub key: Option<Bytes>,
    /// The value.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// A consumer of explicitly assigned partitions of one topic.
#[derive(Debug)]
pub struct Consumer {
    router: Router,
    topic: String,
    positions: BTreeMap<i32, i64>,
    next_partition: usize,
    ahead: FetchAhead,
}

impl Consumer {
    /// Connects and assigns `partitions` of `topic` (empty: every partition), starting at `from`.
    ///
    /// # Errors
    /// [`ClientError`] for an unreachable broker or an unknown topic or partition.
    pub async fn assign(
        brokers: &str,
        topic: &str,
        partitions: &[i32],
        from: Seek,
    ) -> Result<Consumer, ClientError> {
        Consumer::assign_with(brokers, topic, partitions, from, Timeouts::default()).await
    }

    /// As [`Consumer::assign`], with these deadlines on connecting and on every call; a
    /// request deadline must exceed the `max_wait` of every poll.
    ///
    /// # Errors
    /// As [`Consumer::assign`].
    pub async fn assign_with(
        brokers: &str,
        topic: &str,
        partitions: &[i32],
        from: Seek,
        timeouts: Timeouts,
    ) -> Result<Consumer, ClientError> {
        let router = Router::connect(brokers, timeouts).await?;
        let mut consumer = Consumer {
            router,
            topic: topic.to_string(),
            positions: BTreeMap::new(),
            next_partition: 0,
            ahead: FetchAhead::default(),
        };
        let offsets = consumer.list_offsets(partitions, from).await?;
        consumer.positions = offsets;
        Ok(consumer)
    }

    /// The offsets `seek` resolves to, per partition (empty `partitions`: all).
    ///
    /// # Errors
    /// [`ClientError`] for an unknown topic or partition.
    pub async fn list_offsets(
        &self,
        partitions: &[i32],
        seek: Seek,
    ) -> Result<BTreeMap<i32, i64>, ClientError> {
        let (spec, timestamp_ms) = match seek {
            Seek::Earliest => (OffsetSpec::Earliest, 0),
            Seek::Latest | Seek::Offset(_) => (OffsetSpec::Latest, 0),
            Seek::Timestamp(ts) => (OffsetSpec::Timestamp, ts),
        };
        let offsets =
            list_offsets(&self.router, &self.topic, partitions, spec, timestamp_ms).await?;
        Ok(match seek {
            Seek::Offset(offset) => offsets.into_keys().map(|p| (p, offset)).collect(),
            _ => offsets,
        })
    }

    /// The next offset to read, per assigned partition.
    pub fn positions(&self) -> &BTreeMap<i32, i64> {
        &self.positions
    }

    /// Moves an assigned partition's position: the next poll reads it from `offset` (a fetch
    /// outside the partition's offsets fails with `OffsetOutOfRange`).
    ///
    /// # Errors
    /// [`ClientError::InvalidArgument`] when the partition is not assigned or `offset` is
    /// negative.
    pub fn seek(&mut self, partition: i32, offset: i64) -> Result<(), ClientError> {
        if offset < 0 {
            return Err(ClientError::InvalidArgument(format!(
                "cannot seek partition {partition} to negative offset {offset}"
            )));
        }
        match self.positions.get_mut(&partition) {
            Some(position) => {
                *position = offset;
                Ok(())
            }
            None => Err(ClientError::InvalidArgument(format!(
                "partition {partition} of {} is not assigned",
                self.topic
            ))),
        }
    }

    /// Reads what is available: tries each assigned partition in turn, waiting up to
    /// `max_wait` on one with nothing new, and returns the first records found (possibly none).
    /// The broker decodes the records.
    ///
    /// # Errors
    /// [`ClientError`] from the fetch (e.g. `OffsetOutOfRange` after retention).
    pub async fn poll(&mut self, max_wait: Duration) -> Result<Vec<ConsumedRecord>, ClientError> {
        let topic = self.topic.clone();
        let found = self
            .poll_round(max_wait, FetchFormat::Records, |partition, _, response| {
                let records: Vec<ConsumedRecord> = response
                    .records
                    .into_iter()
                    .map(|r| ConsumedRecord {
                        topic: topic.clone(),
                        partition,
                        offset: r.offset,
                        timestamp_ms: r.timestamp_ms,
                        key: r.key,
                        value: r.value,
                        headers: r.headers.into_iter().map(|h| (h.key, h.value)).collect(),
                    })
                    .collect();
                Ok((
                    response.next_offset,
                    (!records.is_empty()).then_some(records),
                ))
            })
            .await?;
        Ok(found.unwrap_or_default())
    }

    /// As [`Consumer::poll`], but fetches whole stored batches and decodes them here (the
    /// fast path): returns the first partition's batches that hold records, or `None` when no
    /// partition had any within `max_wait`. Positions advance past everything fetched,
    /// including control batches and gaps left by compaction.
    ///
    /// # Errors
    /// [`ClientError`] from the fetch, or [`ClientError::CorruptBatch`] when a batch fails
    /// the client's checks (that partition's position then stays where it was).
    pub async fn poll_batches(
        &mut self,
        max_wait: Duration,
    ) -> Result<Option<FetchedBatches>, ClientError> {
        let topic = self.topic.clone();
        self.poll_round(
            max_wait,
            FetchFormat::RecordBatches,
            |partition, offset, response| {
                let batches = FetchedBatches::decode(
                    &topic,
                    partition,
                    offset,
                    None,
                    response,
                    CrcCheck::OnArrival,
                )?;
                Ok((
                    batches.next_offset(),
                    (!batches.is_empty()).then_some(batches),
                ))
            },
        )
        .await
    }

    /// Fetches each assigned partition in turn from its position, the last one waiting up to
    /// `max_wait`. `accept(partition, offset, answer)` turns an answer into the partition's
    /// new position and, if it holds records, the item to return; the round stops there, and
    /// the next round starts at the partition after it, so no partition starves.
    async fn poll_round<T>(
        &mut self,
        max_wait: Duration,
        format: FetchFormat,
        mut accept: impl FnMut(i32, i64, FetchResponse) -> Result<(i64, Option<T>), ClientError>,
    ) -> Result<Option<T>, ClientError> {
        let partitions: Vec<i32> = self.positions.keys().copied().collect();
        let started = Instant::now();
        let mut rerouted = false;
        for step in 0..partitions.len() {
            let idx = (self.next_partition + step) % partitions.len();
            let Some(&partition) = partitions.get(idx) else {
                break;
            };
            let last = step + 1 == partitions.len();
            let offset = self.positions.get(&partition).copied().unwrap_or(0);
            let max_wait_ms = if last {
                u32::try_from(max_wait.as_millis()).unwrap_or(u32::MAX)
            } else {
                0
            };
            let request = self.request(partition, offset, format, max_wait_ms);
            let route = self.router.route(&self.topic, partition).await;
            let response = match self.ahead.take(&request).await {
                Some(response) => response,
                None => match consumer_client(route.channel.clone()).fetch(request).await {
                    Ok(response) => response.into_inner(),
                    Err(status) => {
                        let err = ClientError::from(status);
                        if self
                            .router
                            .on_error(&self.topic, partition, &route.address, &err)
                        {
                            // The position stays: the next round asks the new leader.
                            tracing::debug!(topic = %self.topic, partition, %err, "leader moved");
                            rerouted = true;
                            continue;
                        }
                        return Err(err.in_partition(&self.topic, partition));
                    }
                },
            };
            if let Some((partition, offset)) =
                likely_next(&partitions, idx, &self.positions, &response)
            {
                let request = self.request(partition, offset, format, 0);
                let ahead = self.router.route(&self.topic, partition).await;
                self.ahead.send(&consumer_client(ahead.channel), request);
            }
            let (next, item) = accept(partition, offset, response)?;
            self.positions.insert(partition, next);
            if item.is_some() {
                self.next_partition = (idx + 1) % partitions.len();
                return Ok(item);
            }
        }
        if rerouted {
            let left = max_wait.saturating_sub(started.elapsed());
            tokio::time::sleep(left.min(REROUTE_PAUSE)).await;
        }
        Ok(None)
    }

    /// A fetch of `partition` from `offset` in `format`.
    fn request(
        &self,
        partition: i32,
        offset: i64,
        format: FetchFormat,
        max_wait_ms: u32,
    ) -> FetchRequest {
        FetchRequest {
            topic: self.topic.clone(),
            partition,
            offset,
            max_bytes: POLL_MAX_BYTES,
            max_wait_ms,
            format: format as i32,
            ..Default::default()
        }
    }
}

/// A consumer API client on `channel`, taking answers up to [`MAX_RESPONSE_BYTES`].
pub(crate) fn consumer_client(channel: AuthChannel) -> ConsumerClient<AuthChannel> {
    ConsumerClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES)
}

/// The offsets `spec` finds in `partitions` of `topic` (empty: all), each asked of its
/// partition's leader.
///
/// # Errors
/// [`ClientError::Broker`] with `UnknownTopicOrPartition` for an unknown topic or partition
/// (the first partition no node could answer for), or the call's own failure.
pub(crate) async fn list_offsets(
    router: &Router,
    topic: &str,
    partitions: &[i32],
    spec: OffsetSpec,
    timestamp_ms: i64,
) -> Result<BTreeMap<i32, i64>, ClientError> {
    let answers =
        crate::routing::list_offsets(router, topic, partitions, spec, timestamp_ms).await?;
    let mut offsets = BTreeMap::new();
    for (partition, answer) in answers {
        offsets.insert(partition, answer?);
    }
    Ok(offsets)
}

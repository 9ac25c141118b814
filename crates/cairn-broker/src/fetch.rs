//! Reading, and the fetch rules: a group member's fetch is fenced first (it must own the
//! partition at its current member epoch), then a long-poll read waits on the partition's high
//! watermark for `min_bytes` up to `max_wait` (`subscription.rs` repeats that read forever from
//! where the last one ended). Also decoding batches into records for clients that
//! want them (by the consumer's rule of `cairn_codec::batch::ConsumerBatch`, the one the
//! server's encoder and the client use too; zero-copy slices of the segment for uncompressed
//! batches), and offset lookups.
//!
//! These rules live here, not in the server, so every listener (gRPC today, the Kafka protocol
//! later) applies the same ones and a handler only decodes, calls and encodes.

use std::time::Duration;

use bytes::Bytes;
use cairn_codec::Offset;
use cairn_codec::batch::ConsumerBatch;

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::group::TopicPartition;
use crate::partition::FetchedBatches;

/// Default `max_bytes` when a request gives 0.
pub const DEFAULT_FETCH_MAX_BYTES: i64 = 1 << 20;
/// Most bytes a fetch may ask for.
pub const MAX_FETCH_MAX_BYTES: i64 = 64 << 20;
/// Longest a fetch may wait for data.
pub const MAX_FETCH_WAIT: Duration = Duration::from_secs(30);

/// A fetch request.
#[derive(Clone, Debug)]
pub struct FetchRequest {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i64,
    /// The first offset wanted.
    pub offset: i64,
    /// Bound on the bytes returned (0: default; at least one batch is returned).
    pub max_bytes: i64,
    /// How long to wait for `min_bytes` (capped at [`MAX_FETCH_WAIT`]).
    pub max_wait: Duration,
    /// Bytes to wait for (at least 1).
    pub min_bytes: usize,
    /// The consumer group member fetching, if any: it is fenced before anything is read.
    pub group: Option<GroupFetch>,
}

/// Who fetches on behalf of a consumer group, for the fencing check (KIP-848): the member must
/// own the partition at its current member epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupFetch {
    /// The group.
    pub group_id: String,
    /// The member.
    pub member_id: String,
    /// The member's epoch.
    pub member_epoch: i32,
}

/// A record as fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedRecord {
    /// Its offset.
    pub offset: Offset,
    /// Its timestamp in milliseconds.
    pub timestamp_ms: i64,
    /// The key, or `None`.
    pub key: Option<Bytes>,
    /// The value, or `None`.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<(Bytes, Option<Bytes>)>,
}

/// Which offset to look up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetQuery {
    /// The log start offset.
    Earliest,
    /// The high watermark.
    Latest,
    /// The first offset whose record timestamp is at or after this, else the high watermark.
    Timestamp(i64),
}

/// One partition's answer to [`Broker::list_offsets`]: the partition and its offset, or why
/// it has none.
pub type PartitionOffsetLookup = (i64, Result<Offset, BrokerError>);

impl Broker {
    /// Reads whole batches from a partition, waiting up to `max_wait` for `min_bytes`. A group
    /// member's fetch is fenced first.
    ///
    /// # Errors
    /// For a group fetch: [`BrokerError::InvalidRequest`] for a negative partition, and the
    /// group's refusals ([`BrokerError::UnknownMember`], [`BrokerError::FencedMemberEpoch`],
    /// [`BrokerError::StaleMemberEpoch`], [`BrokerError::PartitionNotAssigned`]). Then
    /// [`BrokerError::UnknownTopic`], [`BrokerError::UnknownPartition`],
    /// [`BrokerError::InvalidRequest`] for a negative `max_bytes`,
    /// [`BrokerError::PartitionStopped`], [`BrokerError::NotLeader`], and the log's
    /// `OffsetOutOfRange` and `CorruptBatch`.
    pub async fn fetch(&self, request: &FetchRequest) -> Result<FetchedBatches, BrokerError> {
        if let Some(member) = &request.group {
            self.check_member_fetch(member, &request.topic, request.partition)?;
        }
        self.read_waiting(
            &request.topic,
            request.partition,
            request.offset,
            request.max_bytes,
            request.max_wait,
            request.min_bytes,
        )
        .await
    }

    /// The long poll: reads, and while fewer than `min_bytes` came back and `max_wait` has not
    /// passed, waits for the high watermark to move past what the read saw and reads again.
    pub(crate) async fn read_waiting(
        &self,
        topic: &str,
        partition: i64,
        offset: i64,
        max_bytes: i64,
        max_wait: Duration,
        min_bytes: usize,
    ) -> Result<FetchedBatches, BrokerError> {
        self.check_open()?;
        let max_bytes = check_max_bytes(max_bytes)?;
        let partition = self.topic(topic)?.partition(partition)?;
        let deadline = tokio::time::Instant::now() + max_wait.min(MAX_FETCH_WAIT);
        loop {
            let read = partition.read(offset, max_bytes)?;
            if read.data().len() >= min_bytes.max(1) || tokio::time::Instant::now() >= deadline {
                return Ok(read);
            }
            // Wake when the high watermark moves past what this read saw (or the partition
            // stops moving), or at the deadline.
            if partition
                .wait_for_high_watermark(read.high_watermark(), deadline)
                .await
                .is_none()
            {
                return partition.read(offset, max_bytes);
            }
        }
    }

    /// The fencing check before a group member's fetch.
    fn check_member_fetch(
        &self,
        member: &GroupFetch,
        topic: &str,
        partition: i64,
    ) -> Result<(), BrokerError> {
        let partition = TopicPartition {
            topic: topic.to_string(),
            partition: u32::try_from(partition).map_err(|_| {
                BrokerError::InvalidRequest(format!("negative partition {partition}"))
            })?,
        };
        self.check_group_fetch(
            &member.group_id,
            &member.member_id,
            member.member_epoch,
            &partition,
        )
    }

    /// Looks up an offset of one partition.
    ///
    /// # Errors
    /// [`BrokerError::UnknownTopic`], [`BrokerError::UnknownPartition`],
    /// [`BrokerError::PartitionStopped`], `CorruptBatch`.
    pub fn list_offset(
        &self,
        topic: &str,
        partition: i64,
        query: OffsetQuery,
    ) -> Result<Offset, BrokerError> {
        let partition = self.topic(topic)?.partition(partition)?;
        partition.check_serves_offsets()?;
        let offsets = partition.offsets()?;
        Ok(match query {
            OffsetQuery::Earliest => offsets.log_start_offset,
            OffsetQuery::Latest => offsets.high_watermark,
            OffsetQuery::Timestamp(ts) => partition
                .offset_for_timestamp(ts)?
                .unwrap_or(offsets.high_watermark),
        })
    }

    /// Looks up an offset of each of `partitions` of a topic (every partition when it is
    /// empty), in ascending order; each partition answers on its own, so one unknown or
    /// stopped partition does not fail the others.
    ///
    /// # Errors
    /// [`BrokerError::UnknownTopic`]; [`BrokerError::DuplicatePartition`] for a partition
    /// asked for twice; per partition, as [`Broker::list_offset`].
    pub fn list_offsets(
        &self,
        topic: &str,
        partitions: &[i64],
        query: OffsetQuery,
    ) -> Result<Vec<PartitionOffsetLookup>, BrokerError> {
        let count = self.partition_count(topic)?;
        let mut partitions: Vec<i64> = if partitions.is_empty() {
            (0..i64::from(count)).collect()
        } else {
            partitions.to_vec()
        };
        partitions.sort_unstable();
        // Refused rather than answered once: a caller that pairs answers with the partitions
        // it asked for would be one short. Kafka answers each repeat with INVALID_REQUEST in
        // its place, as its ListOffsets response has no error but per partition; a gRPC call
        // has its status for a malformed request.
        let repeated = partitions.windows(2).find_map(|pair| match pair {
            [a, b] if a == b => Some(*a),
            _ => None,
        });
        if let Some(partition) = repeated {
            return Err(BrokerError::DuplicatePartition {
                topic: topic.to_string(),
                partition,
            });
        }
        Ok(partitions
            .into_iter()
            .map(|partition| (partition, self.list_offset(topic, partition, query)))
            .collect())
    }

    /// Number of partitions of a topic.
    ///
    /// # Errors
    /// [`BrokerError::UnknownTopic`].
    pub fn partition_count(&self, topic: &str) -> Result<u32, BrokerError> {
        Ok(self.topic(topic)?.partition_count().get())
    }
}

/// A request's `max_bytes`: 0 is the default, a negative one is refused, a large one capped.
pub(crate) fn check_max_bytes(max_bytes: i64) -> Result<i64, BrokerError> {
    match max_bytes {
        0 => Ok(DEFAULT_FETCH_MAX_BYTES),
        n if n < 0 => Err(BrokerError::InvalidRequest(format!(
            "max_bytes must not be negative, got {n}"
        ))),
        n => Ok(n.min(MAX_FETCH_MAX_BYTES)),
    }
}

/// Decodes the records of `read` at or after `from` as a consumer sees them (the rule of
/// `cairn_codec::batch::ConsumerBatch`: control batches skipped, offset = base + delta).
/// Uncompressed keys, values and headers are zero-copy slices of the segment.
///
/// # Errors
/// [`BrokerError::CorruptRecords`] for a batch whose records cannot be decompressed or read,
/// or whose offset deltas leave it.
pub fn decode_records(
    read: &FetchedBatches,
    from: Offset,
    decompress_limit: usize,
) -> Result<Vec<FetchedRecord>, BrokerError> {
    let mut out = Vec::new();
    for batch in read.batches() {
        let base_offset = batch.base_offset();
        let corrupt = |reason| BrokerError::CorruptRecords {
            base_offset,
            reason,
        };
        let Some(batch) = ConsumerBatch::new(batch, from, decompress_limit).map_err(corrupt)?
        else {
            continue;
        };
        let data = batch.records_bytes();
        for record in batch.records() {
            let record = record.map_err(corrupt)?;
            out.push(FetchedRecord {
                offset: record.offset,
                timestamp_ms: record.timestamp_ms,
                key: record.key.map(|k| data.slice_ref(k)),
                value: record.value.map(|v| data.slice_ref(v)),
                headers: record
                    .headers
                    .iter()
                    .map(|(k, v)| (data.slice_ref(k), v.map(|v| data.slice_ref(v))))
                    .collect(),
            });
        }
    }
    Ok(out)
}

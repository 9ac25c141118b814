//! Reading: a long-poll fetch that waits on the partition's high watermark, decoding batches
//! into records for clients that want them (by the consumer's rule of
//! `cairn_codec::batch::ConsumerBatch`, the one the server's encoder and the client use too;
//! zero-copy slices of the segment for uncompressed batches), and offset lookups.

use std::time::Duration;

use bytes::Bytes;
use cairn_log::batch::ConsumerBatch;
use cairn_log::{Offset, ReadResult};

use crate::broker::Broker;
use crate::error::BrokerError;

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

impl Broker {
    /// Reads whole batches from a partition, waiting up to `max_wait` for `min_bytes`.
    ///
    /// # Errors
    /// [`BrokerError::UnknownTopic`], [`BrokerError::UnknownPartition`],
    /// [`BrokerError::InvalidRequest`] for a negative or oversized `max_bytes`, and the log's
    /// `OffsetOutOfRange` and `CorruptBatch`.
    pub async fn fetch(&self, request: &FetchRequest) -> Result<ReadResult, BrokerError> {
        self.check_open()?;
        let max_bytes = match request.max_bytes {
            0 => DEFAULT_FETCH_MAX_BYTES,
            n if n < 0 => {
                return Err(BrokerError::InvalidRequest(format!(
                    "max_bytes must not be negative, got {n}"
                )));
            }
            n => n.min(MAX_FETCH_MAX_BYTES),
        };
        let partition = self.topic(&request.topic)?.partition(request.partition)?;
        let reader = partition.reader()?;
        let read_at = |offset, max_bytes| {
            reader.read(offset, max_bytes).map_err(|err| {
                partition.note_read_error(&err);
                BrokerError::from(err)
            })
        };
        let mut watermark = reader.subscribe_high_watermark();
        let deadline = tokio::time::Instant::now() + request.max_wait.min(MAX_FETCH_WAIT);
        loop {
            let read = read_at(request.offset, max_bytes)?;
            if read.data.len() >= request.min_bytes.max(1)
                || tokio::time::Instant::now() >= deadline
            {
                return Ok(read);
            }
            // Wake when the high watermark moves (or the writer goes away), or at the deadline.
            match tokio::time::timeout_at(deadline, watermark.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return read_at(request.offset, max_bytes),
            }
        }
    }

    /// Looks up an offset of one partition.
    ///
    /// # Errors
    /// [`BrokerError::UnknownTopic`], [`BrokerError::UnknownPartition`], `CorruptBatch`.
    pub fn list_offset(
        &self,
        topic: &str,
        partition: i64,
        query: OffsetQuery,
    ) -> Result<Offset, BrokerError> {
        let partition = self.topic(topic)?.partition(partition)?;
        let reader = partition.reader()?;
        Ok(match query {
            OffsetQuery::Earliest => reader.log_start_offset(),
            OffsetQuery::Latest => reader.high_watermark(),
            OffsetQuery::Timestamp(ts) => reader
                .offset_for_timestamp(ts)
                .inspect_err(|err| partition.note_read_error(err))?
                .unwrap_or_else(|| reader.high_watermark()),
        })
    }

    /// Number of partitions of a topic.
    ///
    /// # Errors
    /// [`BrokerError::UnknownTopic`].
    pub fn partition_count(&self, topic: &str) -> Result<u32, BrokerError> {
        Ok(self.topic(topic)?.partition_count().get())
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
    read: &ReadResult,
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

//! `Consumer`: reads assigned partitions over `cairn.v1.Consumer`: assign, seek (earliest,
//! latest, an offset, a timestamp), and poll, which long-polls each assigned partition in turn
//! from its position and advances it past what it returns.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use cairn_proto::v1::consumer_client::ConsumerClient;
use cairn_proto::v1::{FetchRequest, ListOffsetsRequest, OffsetSpec};
use tonic::transport::Channel;

use crate::connection::connect;
use crate::error::ClientError;

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
    client: ConsumerClient<Channel>,
    topic: String,
    positions: BTreeMap<i32, i64>,
    next_partition: usize,
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
        let client =
            ConsumerClient::new(connect(brokers).await?).max_decoding_message_size(80 << 20);
        let mut consumer = Consumer {
            client,
            topic: topic.to_string(),
            positions: BTreeMap::new(),
            next_partition: 0,
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
        let request = ListOffsetsRequest {
            topic: self.topic.clone(),
            partitions: partitions.to_vec(),
            spec: spec as i32,
            timestamp_ms,
        };
        let response = self
            .client
            .clone()
            .list_offsets(request)
            .await?
            .into_inner();
        let mut offsets = BTreeMap::new();
        for answer in response.offsets {
            if answer.error_code != 0 {
                return Err(ClientError::Broker {
                    code: cairn_proto::v1::ErrorCode::try_from(answer.error_code)
                        .unwrap_or(cairn_proto::v1::ErrorCode::Internal),
                    status: tonic::Code::NotFound,
                    message: answer.error_message,
                    leader: None,
                });
            }
            let offset = if let Seek::Offset(offset) = seek {
                offset
            } else {
                answer.offset
            };
            offsets.insert(answer.partition, offset);
        }
        Ok(offsets)
    }

    /// The next offset to read, per assigned partition.
    pub fn positions(&self) -> &BTreeMap<i32, i64> {
        &self.positions
    }

    /// Reads what is available: tries each assigned partition in turn, waiting up to
    /// `max_wait` on one with nothing new, and returns the first records found (possibly none).
    ///
    /// # Errors
    /// [`ClientError`] from the fetch (e.g. `OffsetOutOfRange` after retention).
    pub async fn poll(&mut self, max_wait: Duration) -> Result<Vec<ConsumedRecord>, ClientError> {
        let partitions: Vec<i32> = self.positions.keys().copied().collect();
        for step in 0..partitions.len() {
            let partition = partitions[(self.next_partition + step) % partitions.len()];
            let last = step + 1 == partitions.len();
            let offset = self.positions[&partition];
            let request = FetchRequest {
                topic: self.topic.clone(),
                partition,
                offset,
                max_bytes: 1 << 20,
                max_wait_ms: if last {
                    u32::try_from(max_wait.as_millis()).unwrap_or(u32::MAX)
                } else {
                    0
                },
                ..Default::default()
            };
            let response = self.client.fetch(request).await?.into_inner();
            self.positions.insert(partition, response.next_offset);
            if !response.records.is_empty() {
                self.next_partition = (self.next_partition + step + 1) % partitions.len();
                let topic = self.topic.clone();
                return Ok(response
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
                    .collect());
            }
        }
        Ok(Vec::new())
    }
}

//! `Producer`: appends records over `cairn.v1.Producer`. This first version sends one request
//! per call, letting the broker route each record (Kafka's partitioner) and answering where each
//! record landed; batching by linger and size, and idempotent retries, build on it.

use bytes::Bytes;
use cairn_proto::v1::producer_client::ProducerClient;
use cairn_proto::v1::{Acks, Header, ProduceRequest, Record, RecordList, produce_request::Payload};
use tonic::transport::Channel;

use crate::connection::connect;
use crate::error::ClientError;

/// A record to send.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutgoingRecord {
    /// The key (`None`: null).
    pub key: Option<Bytes>,
    /// The value (`None`: a tombstone).
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Create time in milliseconds since the epoch; 0 lets the broker stamp it.
    pub timestamp_ms: i64,
}

/// Where a record landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The partition.
    pub partition: i32,
    /// The offset (-1 with `Acks::None`).
    pub offset: i64,
}

/// A producer.
#[derive(Debug, Clone)]
pub struct Producer {
    client: ProducerClient<Channel>,
}

impl Producer {
    /// Connects to the first reachable broker of `brokers`.
    ///
    /// # Errors
    /// [`ClientError::Connect`] or [`ClientError::InvalidArgument`].
    pub async fn connect(brokers: &str) -> Result<Producer, ClientError> {
        Ok(Producer {
            client: ProducerClient::new(connect(brokers).await?)
                .max_decoding_message_size(64 << 20),
        })
    }

    /// Sends `records` to `topic` in one request and waits for `acks`. With `partition` unset
    /// the broker routes each record as Kafka's default partitioner would.
    ///
    /// # Errors
    /// [`ClientError::Broker`] when any partition refused its records (nothing is retried here).
    pub async fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        records: Vec<OutgoingRecord>,
        acks: Acks,
    ) -> Result<Vec<Placement>, ClientError> {
        let records = records
            .into_iter()
            .map(|r| Record {
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .into_iter()
                    .map(|(key, value)| Header { key, value })
                    .collect(),
                timestamp_ms: r.timestamp_ms,
                offset: 0,
            })
            .collect();
        let request = ProduceRequest {
            topic: topic.to_string(),
            partition,
            acks: acks as i32,
            payload: Some(Payload::Records(RecordList { records })),
            ..Default::default()
        };
        let response = self.client.clone().produce(request).await?.into_inner();
        if let Some(failed) = response.results.iter().find(|r| r.error_code != 0) {
            return Err(ClientError::Broker {
                code: cairn_proto::v1::ErrorCode::try_from(failed.error_code)
                    .unwrap_or(cairn_proto::v1::ErrorCode::Internal),
                status: tonic::Code::Unknown,
                message: format!("partition {}: {}", failed.partition, failed.error_message),
                leader: None,
            });
        }
        Ok(response
            .placements
            .iter()
            .map(|p| Placement {
                partition: p.partition,
                offset: p.offset,
            })
            .collect())
    }
}

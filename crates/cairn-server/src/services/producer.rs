//! `cairn.v1.Producer`: decodes a produce request, hands it to the broker, maps the result.

use std::sync::Arc;

use bytes::Bytes;
use cairn_broker::{AckLevel, Broker, ProducePayload, ProduceRecord, ProduceRequest};
use cairn_log::batch::{Compression, ProducerFields};
use cairn_proto::v1::producer_server::Producer;
use cairn_proto::v1::{
    self as api, Acks, ErrorCode, InitProducerIdRequest, InitProducerIdResponse, PartitionResult,
    ProduceResponse, RecordPlacement, produce_request::Payload,
};
use tonic::{Request, Response, Status};

use crate::status::{classify, invalid_request, to_status};

/// The Producer service.
#[derive(Debug, Clone)]
pub struct ProducerService {
    broker: Arc<Broker>,
}

impl ProducerService {
    /// A service over `broker`.
    pub fn new(broker: Arc<Broker>) -> Self {
        ProducerService { broker }
    }
}

#[tonic::async_trait]
impl Producer for ProducerService {
    async fn produce(
        &self,
        request: Request<api::ProduceRequest>,
    ) -> Result<Response<ProduceResponse>, Status> {
        let request = request.into_inner();
        let producer = request.producer.map(|p| ProducerFields {
            producer_id: p.producer_id,
            producer_epoch: i16::try_from(p.producer_epoch).unwrap_or(i16::MIN),
            base_sequence: p.base_sequence,
        });
        if producer
            .is_some_and(|p| p.producer_id < 0 || p.producer_epoch < 0 || p.base_sequence < 0)
        {
            return Err(invalid_request(
                "producer id, epoch and base sequence must not be negative",
            ));
        }
        let acks = match Acks::try_from(request.acks) {
            Ok(Acks::All) => AckLevel::All,
            Ok(Acks::Leader) => AckLevel::Leader,
            Ok(Acks::None) => AckLevel::None,
            Err(_) => {
                return Err(invalid_request(format!(
                    "unknown acks value {}",
                    request.acks
                )));
            }
        };
        let payload = match request.payload {
            Some(Payload::RecordBatch(bytes)) => ProducePayload::Batch(bytes),
            Some(Payload::Records(list)) => {
                let compression = match request.compression.as_str() {
                    "" => Compression::None,
                    name => Compression::from_name(name).ok_or_else(|| {
                        invalid_request(format!(
                            "unknown compression {name:?}: use none, gzip, snappy, lz4 or zstd"
                        ))
                    })?,
                };
                ProducePayload::Records {
                    records: list.records.into_iter().map(record).collect(),
                    compression,
                }
            }
            None => {
                return Err(invalid_request(
                    "a produce request needs records or a record_batch",
                ));
            }
        };
        let broker_request = ProduceRequest {
            topic: request.topic,
            partition: request.partition.map(i64::from),
            acks,
            payload,
            producer,
        };
        let result = self
            .broker
            .produce(broker_request)
            .await
            .map_err(|e| to_status(&e))?;
        if let Some(err) = result
            .partitions
            .iter()
            .all(|p| p.error.is_some())
            .then(|| result.partitions.first())
            .flatten()
            .and_then(|p| p.error.as_ref())
        {
            return Err(to_status(err));
        }
        let results = result
            .partitions
            .iter()
            .map(|p| {
                let (code, message) = p
                    .error
                    .as_ref()
                    .map_or((ErrorCode::None, String::new()), |e| {
                        (classify(e).0, e.to_string())
                    });
                PartitionResult {
                    partition: p.partition as i32,
                    base_offset: p.base_offset.map_or(-1, |o| o.as_i64()),
                    record_count: p.record_count as i32,
                    error_code: code as i32,
                    error_message: message,
                    log_start_offset: p.log_start_offset.as_i64(),
                }
            })
            .collect();
        let placements = result
            .placements
            .iter()
            .map(|(partition, offset)| RecordPlacement {
                partition: *partition as i32,
                offset: offset.map_or(-1, |o| o.as_i64()),
            })
            .collect();
        Ok(Response::new(ProduceResponse {
            results,
            placements,
        }))
    }

    async fn init_producer_id(
        &self,
        _request: Request<InitProducerIdRequest>,
    ) -> Result<Response<InitProducerIdResponse>, Status> {
        let (producer_id, producer_epoch) = self
            .broker
            .init_producer_id()
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(InitProducerIdResponse {
            producer_id,
            producer_epoch: i32::from(producer_epoch),
        }))
    }
}

fn record(record: api::Record) -> ProduceRecord {
    ProduceRecord {
        key: record.key,
        value: record.value,
        headers: record
            .headers
            .into_iter()
            .map(|h| (Bytes::from(h.key), h.value))
            .collect(),
        timestamp_ms: record.timestamp_ms,
    }
}

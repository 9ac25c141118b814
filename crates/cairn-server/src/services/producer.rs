//! `cairn.v1.Producer`: decodes a produce request, hands it to the broker, maps the result, and
//! counts the request, what it appended and how long it took in [`Metrics`].

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use cairn_broker::{
    AckLevel, Broker, ProducePayload, ProduceRecord, ProduceRequest, ProduceResult,
};
use cairn_codec::batch::{Compression, ProducerFields};
use cairn_proto::v1::producer_server::Producer;
use cairn_proto::v1::{
    self as api, Acks, ErrorCode, InitProducerIdRequest, InitProducerIdResponse, PartitionResult,
    ProduceResponse, RecordPlacement, produce_request::Payload,
};
use tonic::{Request, Response, Status};

use crate::auth::{CallerContext, authorize_caller};
use crate::metrics::{AcksLabel, Metrics, Outcome, Transfer};
use crate::quota::{Metered, Usage, UsedBytes};
use crate::status::{classify, invalid_request, message, to_status, to_status_in};
use cairn_controller::security::acl::AclOperation::Write;
use cairn_controller::security::acl::ResourceType::Topic;

/// The Producer service.
#[derive(Debug, Clone)]
pub struct ProducerService {
    broker: Arc<Broker>,
    metrics: Arc<Metrics>,
}

impl ProducerService {
    /// A service over `broker` that counts its requests in `metrics`.
    pub fn new(broker: Arc<Broker>, metrics: Arc<Metrics>) -> Self {
        ProducerService { broker, metrics }
    }

    /// Serves one produce call from `caller` (`None`: not through the auth layer): checks its
    /// Write permission on the topic, appends, counts it in the metrics, and reports the bytes
    /// the producer quota charges (measured only when `metered`: it walks a record list).
    ///
    /// # Errors
    /// The status the call is answered with.
    pub(crate) async fn serve_produce(
        &self,
        caller: Option<&CallerContext>,
        metered: bool,
        request: api::ProduceRequest,
    ) -> Result<(ProduceResponse, UsedBytes), Status> {
        let started = Instant::now();
        authorize_caller(caller, Write, Topic, &request.topic)?;
        let produced_bytes = if metered {
            prost::Message::encoded_len(&request) as u64
        } else {
            0
        };
        let topic = request.topic.clone();
        let acks = match Acks::try_from(request.acks) {
            Ok(acks) => AcksLabel::Level(ack_level(acks)),
            Err(_) => AcksLabel::Invalid,
        };
        let answered = self.append(request).await;
        let (outcome, transfer) = match &answered {
            Ok((_, outcome, transfer)) => (*outcome, *transfer),
            Err(_) => (Outcome::Error, Transfer::default()),
        };
        // Label by topic only once the broker knows it, so made-up names add no series.
        let known = answered.is_ok() || self.broker.partition_count(&topic).is_ok();
        self.metrics.record_produce(
            known.then_some(topic.as_str()),
            acks,
            outcome,
            transfer,
            started.elapsed(),
        );
        answered.map(|(response, _, _)| {
            let usage = UsedBytes(Usage {
                produced_bytes,
                fetched_bytes: 0,
            });
            (response, usage)
        })
    }

    /// Decodes, appends and maps one request; the [`Transfer`] is what was appended and the
    /// [`Outcome`] is `Error` when some partition refused its records.
    async fn append(
        &self,
        request: api::ProduceRequest,
    ) -> Result<(ProduceResponse, Outcome, Transfer), Status> {
        let (broker_request, payload_bytes) = decode(request)?;
        let topic = broker_request.topic.clone();
        let result = self
            .broker
            .produce(broker_request)
            .await
            .map_err(|e| to_status(&e))?;
        if let Some((partition, err)) = result
            .partitions
            .iter()
            .all(|p| p.error.is_some())
            .then(|| result.partitions.first())
            .flatten()
            .and_then(|p| Some((p.partition, p.error.as_ref()?)))
        {
            return Err(to_status_in(err, &topic, i64::from(partition)));
        }
        let outcome = if result.partitions.iter().any(|p| p.error.is_some()) {
            Outcome::Error
        } else {
            Outcome::Ok
        };
        Ok((answer(&result), outcome, appended(&result, &payload_bytes)))
    }
}

#[tonic::async_trait]
impl Producer for ProducerService {
    async fn produce(
        &self,
        request: Request<api::ProduceRequest>,
    ) -> Result<Response<ProduceResponse>, Status> {
        // Served by `ProducerRoutes` in a running broker, which reads the request and frames
        // the answer itself around the same `serve_produce`.
        let caller = request.extensions().get::<CallerContext>().cloned();
        let metered = request.extensions().get::<Metered>().is_some();
        let (response, usage) = self
            .serve_produce(caller.as_ref(), metered, request.into_inner())
            .await?;
        let mut response = Response::new(response);
        response.extensions_mut().insert(usage);
        Ok(response)
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

/// The size of a produce payload as received, to count appended bytes once the broker has
/// answered which partitions took their records.
enum PayloadBytes {
    /// A pre-encoded record batch of this many bytes.
    Batch(u64),
    /// Plain records: key, value and header bytes of each, in request order (the batches the
    /// broker encodes from them are not reported back, so their size is not known here).
    Records(Vec<u64>),
}

/// The broker's request for a wire request, and the size of its payload.
fn decode(request: api::ProduceRequest) -> Result<(ProduceRequest, PayloadBytes), Status> {
    let producer = request.producer.map(|p| ProducerFields {
        producer_id: p.producer_id,
        producer_epoch: i16::try_from(p.producer_epoch).unwrap_or(i16::MIN),
        base_sequence: p.base_sequence,
    });
    if producer.is_some_and(|p| p.producer_id < 0 || p.producer_epoch < 0 || p.base_sequence < 0) {
        return Err(invalid_request(
            "producer id, epoch and base sequence must not be negative",
        ));
    }
    let acks = Acks::try_from(request.acks)
        .map(ack_level)
        .map_err(|_| invalid_request(format!("unknown acks value {}", request.acks)))?;
    let (payload, payload_bytes) = match request.payload {
        Some(Payload::RecordBatch(bytes)) => {
            let len = bytes.len() as u64;
            (ProducePayload::Batch(bytes), PayloadBytes::Batch(len))
        }
        Some(Payload::Records(list)) => {
            let compression = match request.compression.as_str() {
                "" => Compression::None,
                name => Compression::from_name(name).ok_or_else(|| {
                    invalid_request(format!(
                        "unknown compression {name:?}: use none, gzip, snappy, lz4 or zstd"
                    ))
                })?,
            };
            let sizes = list.records.iter().map(record_bytes).collect();
            let records = list.records.into_iter().map(record).collect();
            (
                ProducePayload::Records {
                    records,
                    compression,
                },
                PayloadBytes::Records(sizes),
            )
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
    Ok((broker_request, payload_bytes))
}

fn ack_level(acks: Acks) -> AckLevel {
    match acks {
        Acks::All => AckLevel::All,
        Acks::Leader => AckLevel::Leader,
        Acks::None => AckLevel::None,
    }
}

/// The wire answer: one result per partition and, for plain records, each record's placement.
fn answer(result: &ProduceResult) -> ProduceResponse {
    let results = result
        .partitions
        .iter()
        .map(|p| {
            let (code, message) = p
                .error
                .as_ref()
                .map_or((ErrorCode::None, String::new()), |e| {
                    (classify(e).0, message(e))
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
    ProduceResponse {
        results,
        placements,
    }
}

/// Records and bytes taken by the partitions that reported no error.
fn appended(result: &ProduceResult, payload_bytes: &PayloadBytes) -> Transfer {
    let record_count = result
        .partitions
        .iter()
        .filter(|p| p.error.is_none())
        .map(|p| u64::from(p.record_count))
        .sum();
    let refused: Vec<u32> = result
        .partitions
        .iter()
        .filter(|p| p.error.is_some())
        .map(|p| p.partition)
        .collect();
    let bytes = match payload_bytes {
        PayloadBytes::Batch(len) if refused.is_empty() => *len,
        PayloadBytes::Batch(_) => 0,
        PayloadBytes::Records(sizes) if refused.is_empty() => sizes.iter().sum(),
        // Placements list each record's partition in request order, as the sizes do.
        PayloadBytes::Records(sizes) => result
            .placements
            .iter()
            .zip(sizes)
            .filter(|((partition, _), _)| !refused.contains(partition))
            .map(|(_, size)| size)
            .sum(),
    };
    Transfer {
        record_count,
        bytes,
    }
}

/// Key, value and header bytes of one record.
fn record_bytes(record: &api::Record) -> u64 {
    let key = record.key.as_ref().map_or(0, |k| k.len());
    let value = record.value.as_ref().map_or(0, |v| v.len());
    let headers: usize = record
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()))
        .sum();
    (key + value + headers) as u64
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

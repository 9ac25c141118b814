//! `cairn.v1.Consumer`: long-poll fetch, server-streaming subscribe, offset lookups. Fetches
//! and subscribe messages are counted in [`Metrics`]; offset lookups are not. The fetch rules
//! (group fencing, waiting for data, the subscribe loop) are the broker's: each call here
//! decodes, calls the broker and encodes.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_broker::{
    Broker, FetchRequest, FetchedBatches, GroupFetch, OffsetQuery, SubscribeRequest as Subscribe,
    decode_records,
};
use cairn_codec::Offset;
use cairn_codec::batch::MAX_DECOMPRESSED_BATCH_BYTES;
use cairn_proto::v1::consumer_server::Consumer;
use cairn_proto::v1::{
    self as api, FetchFormat, FetchResponse, Header, ListOffsetsRequest, ListOffsetsResponse,
    OffsetSpec, PartitionOffset, SubscribeRequest,
};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::auth::authorize;
use crate::metrics::{Metrics, OpenStream, Outcome, Transfer};
use crate::status::{classify, invalid_request, to_status, to_status_in};
use cairn_controller::security::acl::AclOperation::Read;
use cairn_controller::security::acl::ResourceType::Topic;

/// The Consumer service.
#[derive(Debug, Clone)]
pub struct ConsumerService {
    broker: Arc<Broker>,
    metrics: Arc<Metrics>,
}

impl ConsumerService {
    /// A service over `broker` that counts its fetches in `metrics`.
    pub fn new(broker: Arc<Broker>, metrics: Arc<Metrics>) -> Self {
        ConsumerService { broker, metrics }
    }

    /// Reads and maps one unary fetch, waiting at most until shortly before `deadline`.
    /// The group and member ids are moved out of `request` (the caller keeps the rest), so a
    /// group fetch allocates nothing more than a plain one.
    async fn read<T>(
        &self,
        request: &mut api::FetchRequest,
        deadline: Option<Duration>,
        shape: AnswerShaper<T>,
    ) -> Result<(T, Transfer), Status> {
        let format = FetchFormat::try_from(request.format)
            .map_err(|_| invalid_request("unknown fetch format"))?;
        let mut max_wait = Duration::from_millis(u64::from(request.max_wait_ms));
        if let Some(deadline) = deadline {
            // Answer a little before the client gives up, so it gets the (possibly empty) data.
            max_wait = max_wait.min(deadline.saturating_sub(Duration::from_millis(20)));
        }
        let group = group_fetch(request)?;
        let fetch = FetchRequest {
            topic: request.topic.clone(),
            partition: i64::from(request.partition),
            offset: request.offset,
            max_bytes: i64::from(request.max_bytes),
            max_wait,
            min_bytes: usize::try_from(request.min_bytes).unwrap_or(1).max(1),
            group,
        };
        let read = self
            .broker
            .fetch(&fetch)
            .await
            .map_err(|e| to_status_in(&e, &fetch.topic, fetch.partition))?;
        shape(&read, request.offset, request.partition, format)
    }

    /// Serves one `Fetch`, its answer shaped by `shape` (a `FetchResponse` for tonic's
    /// encoder, or gRPC message bytes for the route that frames them itself), and records its
    /// metrics.
    pub(crate) async fn serve_fetch<T>(
        &self,
        mut request: api::FetchRequest,
        deadline: Option<Duration>,
        shape: AnswerShaper<T>,
    ) -> Result<T, Status> {
        let started = Instant::now();
        let answered = self.read(&mut request, deadline, shape).await;
        let (outcome, returned) = match &answered {
            Ok((_, returned)) => (Outcome::Ok, *returned),
            Err(_) => (Outcome::Error, Transfer::default()),
        };
        // Label by topic only once the broker knows it, so made-up names add no series.
        let known = answered.is_ok() || self.broker.partition_count(&request.topic).is_ok();
        self.metrics.record_fetch(
            known.then_some(request.topic.as_str()),
            outcome,
            returned,
            started.elapsed(),
        );
        answered.map(|(answer, _)| answer)
    }
}

impl ConsumerService {
    /// Checks a subscription and starts reading for it: each read, made into an answer by
    /// `shape`, arrives on the returned queue, which holds one, so the next read waits until the stream has taken the last
    /// (HTTP/2 flow control then paces the log reads). The queue ends after an error answer,
    /// or when its receiver is dropped.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for an unknown format or negative `max_bytes`; the broker's error for
    /// an unknown topic or partition.
    pub(crate) fn start_subscription<T: Send + 'static>(
        &self,
        request: SubscribeRequest,
        shape: AnswerShaper<T>,
    ) -> Result<mpsc::Receiver<Result<T, Status>>, Status> {
        let format = FetchFormat::try_from(request.format)
            .map_err(|_| invalid_request("unknown fetch format"))?;
        // Checks max_bytes and that the partition exists before the stream starts.
        let mut subscription = self
            .broker
            .subscribe(Subscribe {
                topic: request.topic.clone(),
                partition: i64::from(request.partition),
                offset: request.offset,
                max_bytes: i64::from(request.max_bytes),
            })
            .map_err(|e| to_status_in(&e, &request.topic, i64::from(request.partition)))?;
        let (tx, rx) = mpsc::channel(1);
        // The topic exists (checked above), so it may label series; look it up once per stream.
        let counters = self.metrics.topic(&request.topic);
        let stream = OpenStream::open(Arc::clone(&self.metrics));
        tokio::spawn(async move {
            let _stream = stream;
            loop {
                let from = subscription.position();
                // A consumer that left ends the wait for data at once.
                let read = tokio::select! {
                    read = subscription.next() => read,
                    () = tx.closed() => return,
                };
                let (message, delivered) = match read {
                    Ok(read) => match shape(&read, from, request.partition, format) {
                        Ok((message, delivered)) => (Ok(message), delivered),
                        Err(status) => (Err(status), Transfer::default()),
                    },
                    Err(err) => (
                        Err(to_status_in(
                            &err,
                            &request.topic,
                            i64::from(request.partition),
                        )),
                        Transfer::default(),
                    ),
                };
                let failed = message.is_err();
                if tx.send(message).await.is_err() {
                    return;
                }
                // Counted once handed to the stream, so a consumer that left counts nothing.
                counters.count_delivery(delivered);
                if failed {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

/// The group member a fetch is made for, moved out of `request`: `None` for a plain fetch.
///
/// # Errors
/// INVALID_REQUEST for a member id or member epoch without a group id: the caller meant a
/// member's fetch, and serving it unchecked would let a fenced member (a zombie) read a
/// partition the group moved away from it.
fn group_fetch(request: &mut api::FetchRequest) -> Result<Option<GroupFetch>, Status> {
    if request.group_id.is_empty() {
        if !request.member_id.is_empty() || request.member_epoch != 0 {
            return Err(invalid_request(
                "member_id and member_epoch are for a group member's fetch: set group_id too \
                 (or leave member_id and member_epoch unset for a plain fetch)",
            ));
        }
        return Ok(None);
    }
    Ok(Some(GroupFetch {
        group_id: std::mem::take(&mut request.group_id),
        member_id: std::mem::take(&mut request.member_id),
        member_epoch: request.member_epoch,
    }))
}

type FetchStream = Pin<Box<dyn Stream<Item = Result<FetchResponse, Status>> + Send>>;

/// Makes one read of a subscription (from the offset it started at, for a partition, in a
/// format) into an answer, with what it delivers for the metrics.
pub(crate) type AnswerShaper<T> =
    fn(&FetchedBatches, i64, i32, FetchFormat) -> Result<(T, Transfer), Status>;

/// A subscription's answer as a `FetchResponse`, for tonic's encoder.
fn tonic_answer(
    read: &FetchedBatches,
    from: i64,
    partition: i32,
    format: FetchFormat,
) -> Result<(FetchResponse, Transfer), Status> {
    let response = response(read, from, partition, format)?;
    let delivered = returned(read, &response, format);
    Ok((response, delivered))
}

#[tonic::async_trait]
impl Consumer for ConsumerService {
    async fn fetch(
        &self,
        request: Request<api::FetchRequest>,
    ) -> Result<Response<FetchResponse>, Status> {
        // Served by `ConsumerRoutes` in a running broker, which frames the same answer without
        // a copy of its batches; this is the same answer through tonic's encoder.
        let deadline = grpc_timeout(request.metadata().as_ref());
        authorize(&request, Read, Topic, &request.get_ref().topic)?;
        self.serve_fetch(request.into_inner(), deadline, tonic_answer)
            .await
            .map(Response::new)
    }

    type SubscribeStream = FetchStream;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        // Served by `ConsumerRoutes` in a running broker, which frames the same answers
        // without copying their batches; this is the same stream through tonic's encoder.
        authorize(&request, Read, Topic, &request.get_ref().topic)?;
        let answers = self.start_subscription(request.into_inner(), tonic_answer)?;
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(answers),
        )))
    }

    async fn list_offsets(
        &self,
        request: Request<ListOffsetsRequest>,
    ) -> Result<Response<ListOffsetsResponse>, Status> {
        authorize(&request, Read, Topic, &request.get_ref().topic)?;
        let request = request.into_inner();
        let query = match OffsetSpec::try_from(request.spec) {
            Ok(OffsetSpec::Earliest) => OffsetQuery::Earliest,
            Ok(OffsetSpec::Latest) => OffsetQuery::Latest,
            Ok(OffsetSpec::Timestamp) => OffsetQuery::Timestamp(request.timestamp_ms),
            Err(_) => return Err(invalid_request("unknown offset spec")),
        };
        let partitions: Vec<i64> = request.partitions.iter().map(|&p| i64::from(p)).collect();
        let offsets = self
            .broker
            .list_offsets(&request.topic, &partitions, query)
            .map_err(|e| to_status(&e))?
            .into_iter()
            .map(|(partition, found)| match found {
                Ok(offset) => PartitionOffset {
                    partition: partition as i32,
                    offset: offset.as_i64(),
                    ..Default::default()
                },
                Err(err) => PartitionOffset {
                    partition: partition as i32,
                    offset: -1,
                    error_code: classify(&err).0 as i32,
                    error_message: crate::status::message(&err),
                },
            })
            .collect();
        Ok(Response::new(ListOffsetsResponse { offsets }))
    }
}

fn response(
    read: &FetchedBatches,
    from: i64,
    partition: i32,
    format: FetchFormat,
) -> Result<FetchResponse, Status> {
    let mut response = FetchResponse {
        high_watermark: read.high_watermark().as_i64(),
        log_start_offset: read.log_start_offset().as_i64(),
        next_offset: read.next_offset().as_i64(),
        partition,
        ..Default::default()
    };
    match format {
        FetchFormat::RecordBatches => response.record_batches = read.data().clone(),
        FetchFormat::Records => {
            let from = Offset::from_i64(from).unwrap_or_default();
            let records = decode_records(read, from, MAX_DECOMPRESSED_BATCH_BYTES)
                .map_err(|e| to_status(&e))?;
            response.records = records
                .into_iter()
                .map(|r| api::Record {
                    key: r.key,
                    value: r.value,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|(k, v)| Header {
                            key: String::from_utf8_lossy(&k).into_owned(),
                            value: v,
                        })
                        .collect(),
                    timestamp_ms: r.timestamp_ms,
                    offset: r.offset.as_i64(),
                })
                .collect();
        }
    }
    Ok(response)
}

/// Records and bytes a fetch answer carries: decoded records as sent, or for raw batches the
/// record counts of their headers (meta entries count none). Bytes are the batches read.
fn returned(read: &FetchedBatches, response: &FetchResponse, format: FetchFormat) -> Transfer {
    let record_count = match format {
        FetchFormat::Records => response.records.len() as u64,
        FetchFormat::RecordBatches => batch_record_count(read),
    };
    Transfer {
        record_count,
        bytes: read.data().len() as u64,
    }
}

/// The records in a read's batches, from their headers (meta entries count none).
pub(crate) fn batch_record_count(read: &FetchedBatches) -> u64 {
    // The log verified these CRCs on the read, so this walks headers only.
    read.batches().map(|b| u64::from(b.record_count())).sum()
}

/// The client's deadline from the `grpc-timeout` header ("<digits><unit>", unit H M S m u n).
pub(crate) fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

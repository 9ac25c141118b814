//! [`ConsumerRoutes`]: the `cairn.v1.Consumer` service as mounted in the broker. It serves
//! `Subscribe` and `Fetch` itself and hands every other method to tonic's generated server.
//!
//! Why: tonic encodes each message into a buffer of its own, so a raw-batch answer
//! (up to `max_bytes` of stored batches, read from the segment's memory map without a copy)
//! would be copied once more before the socket write, on the core that also sends. Here each
//! answer leaves as two chunks: the message's small fields with the gRPC prefix and the key
//! and length of `record_batches`, then the batches themselves, a slice of the segment map,
//! which HTTP/2 writes to the socket as it is. Protobuf lets fields come in any order, so a
//! stock client decodes the same `FetchResponse`; readers that keep a `bytes` field's
//! buffer (Cairn's replay does) get the batches without any copy on either side.
//!
//! The reads are the ones [`ConsumerService::start_subscription`] and
//! [`ConsumerService::serve_fetch`] make for tonic's path, so both framings carry the same
//! answers. Decoded-record answers are written straight from the
//! stored batches by `record_encoding` (the same bytes prost would write, without a
//! `cairn.v1.Record` value per record).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use cairn_broker::FetchedBatches;
use cairn_codec::batch::{Batch, MAX_DECOMPRESSED_BATCH_BYTES};
use cairn_codec::grpc_frame::{PREFIX_BYTES, put_prefix};
use cairn_proto::v1::ErrorCode;
use cairn_proto::v1::consumer_server::ConsumerServer;
use cairn_proto::v1::{FetchFormat, FetchRequest, FetchResponse, SubscribeRequest};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::Frame;
use prost::Message;
use tokio::sync::mpsc;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::{Code, Status};
use tower_service::Service;

use super::consumer::{ConsumerService, batch_record_count, grpc_timeout};
use super::record_encoding::encode_records;
use super::unary::{read_request, unframeable};
use crate::auth::{CallerContext, authorize_caller};
use crate::metrics::Transfer;
use crate::quota::{StreamQuota, Usage, UsedBytes};
use crate::request_memory::RequestMemory;
use crate::status::{status, to_status};
use cairn_controller::security::acl::{AclOperation, ResourceType};

/// The paths of the methods served here.
pub(crate) const SUBSCRIBE_PATH: &str = "/cairn.v1.Consumer/Subscribe";
pub(crate) const FETCH_PATH: &str = "/cairn.v1.Consumer/Fetch";
/// `FetchResponse.record_batches`.
const RECORD_BATCHES_FIELD: u32 = 5;

/// The Consumer service: `Subscribe` framed here, the rest by tonic.
#[derive(Clone, Debug)]
pub struct ConsumerRoutes {
    service: ConsumerService,
    generated: ConsumerServer<ConsumerService>,
    max_request_bytes: usize,
    max_response_bytes: usize,
    memory: Arc<RequestMemory>,
}

impl ConsumerRoutes {
    /// Mounts `service`; requests above `max_request_bytes` and answers above
    /// `max_response_bytes` are refused, as tonic's limits would. Request bodies are read
    /// within `memory`'s budget.
    pub fn new(
        service: ConsumerService,
        max_request_bytes: usize,
        max_response_bytes: usize,
        memory: Arc<RequestMemory>,
    ) -> Self {
        let generated = ConsumerServer::new(service.clone())
            .max_decoding_message_size(max_request_bytes)
            .max_encoding_message_size(max_response_bytes);
        ConsumerRoutes {
            service,
            generated,
            max_request_bytes,
            max_response_bytes,
            memory,
        }
    }
}

impl NamedService for ConsumerRoutes {
    const NAME: &'static str = <ConsumerServer<ConsumerService> as NamedService>::NAME;
}

impl Service<Request<Body>> for ConsumerRoutes {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<Request<Body>>::poll_ready(&mut self.generated, cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let fetch = match request.uri().path() {
            SUBSCRIBE_PATH => false,
            FETCH_PATH => true,
            _ => return Box::pin(self.generated.call(request)),
        };
        let service = self.service.clone();
        let (max_request, max_response) = (self.max_request_bytes, self.max_response_bytes);
        let memory = Arc::clone(&self.memory);
        let caller = request.extensions().get::<CallerContext>().cloned();
        // Subscribe answers are charged to the caller's consumer byte-rate quota one by one, and
        // each one over it is held back by its delay.
        let quota = (!fetch)
            .then(|| request.extensions().get::<StreamQuota>().cloned())
            .flatten();
        Box::pin(async move {
            let read_topic = |topic: &str| {
                authorize_caller(
                    caller.as_ref(),
                    AclOperation::Read,
                    ResourceType::Topic,
                    topic,
                )
            };
            // What the consumer byte-rate quota counts for a fetch: the answer's bytes.
            let mut fetched_bytes = 0u64;
            let answer = if fetch {
                let deadline = grpc_timeout(request.headers());
                let read = read_request::<FetchRequest>(request, max_request, &memory).await;
                // The budget is for the request's body, not for the long poll after it.
                let read = read.map(|(fetch, _held)| fetch);
                match read {
                    Ok(fetch) => {
                        match read_topic(&fetch.topic) {
                            Ok(()) => service.serve_fetch(fetch, deadline, wire_answer).await.map(
                                |answer| {
                                    fetched_bytes =
                                        wire_len(&answer.head, answer.batches.as_ref()) as u64;
                                    one_answer(answer)
                                },
                            ),
                            Err(status) => Err(status),
                        }
                    }
                    Err(status) => Err(status),
                }
            } else {
                let read = read_request::<SubscribeRequest>(request, max_request, &memory).await;
                match read.map(|(subscribe, _held)| subscribe) {
                    Ok(subscribe) => read_topic(&subscribe.topic)
                        .and_then(|()| service.start_subscription(subscribe, wire_answer)),
                    Err(status) => Err(status),
                }
            };
            Ok(match answer {
                Ok(answers) => {
                    let mut response = Response::new(Body::new(AnswerBody {
                        answers,
                        max_response_bytes: max_response,
                        queued: None,
                        done: false,
                        quota,
                        pause: None,
                        held: None,
                    }));
                    response
                        .headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
                    response.extensions_mut().insert(UsedBytes(Usage {
                        produced_bytes: 0,
                        fetched_bytes,
                    }));
                    response
                }
                Err(status) => status.into_http(),
            })
        })
    }
}

/// A unary call's answer as the one-item stream the response body sends: the message, then
/// an OK status when the stream ends.
fn one_answer(answer: WireAnswer) -> mpsc::Receiver<Result<WireAnswer, Status>> {
    let (sender, receiver) = mpsc::channel(1);
    // A fresh channel of one has room for one.
    let _ = sender.try_send(Ok(answer));
    receiver
}

/// The response body: each answer as gRPC messages, then the call's status as trailers.
struct AnswerBody {
    answers: mpsc::Receiver<Result<WireAnswer, Status>>,
    max_response_bytes: usize,
    /// The batches of the answer whose head was just sent.
    queued: Option<Bytes>,
    done: bool,
    /// The caller's consumer byte-rate quota, for a Subscribe stream.
    quota: Option<StreamQuota>,
    /// The throttle the held answer waits out (the stream is over its quota).
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The answer that waits for the pause to end.
    held: Option<WireAnswer>,
}

impl AnswerBody {
    /// Sends an answer's head now and queues its batches for the next frame.
    fn send(&mut self, answer: WireAnswer) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.queued = answer.batches;
        Poll::Ready(Some(Ok(Frame::data(answer.head))))
    }
}

impl http_body::Body for AnswerBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Some(batches) = self.queued.take() {
            return Poll::Ready(Some(Ok(Frame::data(batches))));
        }
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(pause) = self.pause.as_mut() {
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.pause = None;
            if let Some(answer) = self.held.take() {
                return self.send(answer);
            }
        }
        let answer = match self.answers.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(answer) => answer,
        };
        let outcome = match answer {
            Some(Ok(answer)) => {
                let answer_bytes = wire_len(&answer.head, answer.batches.as_ref());
                if answer_bytes > self.max_response_bytes {
                    // Fetch caps max_bytes well below the limit, so this is our own bug.
                    status(
                        ErrorCode::Internal,
                        Code::Internal,
                        format!(
                            "an answer of {answer_bytes} bytes exceeds the limit of {}",
                            self.max_response_bytes
                        ),
                    )
                } else {
                    let delay = self
                        .quota
                        .as_ref()
                        .map_or(Duration::ZERO, |q| q.charge(answer_bytes as u64));
                    if delay.is_zero() {
                        return self.send(answer);
                    }
                    // Over the quota: this answer waits out its delay before it is sent.
                    let mut pause = Box::pin(tokio::time::sleep(delay));
                    if pause.as_mut().poll(cx).is_ready() {
                        return self.send(answer);
                    }
                    self.pause = Some(pause);
                    self.held = Some(answer);
                    return Poll::Pending;
                }
            }
            Some(Err(status)) => status,
            // The subscription's reader stopped without an error (the broker is closing).
            None => Status::new(tonic::Code::Ok, ""),
        };
        self.done = true;
        let mut trailers = HeaderMap::new();
        if let Err(unencodable) = outcome.add_header(&mut trailers) {
            trailers.clear();
            let _ = status(ErrorCode::Internal, Code::Internal, unencodable.message())
                .add_header(&mut trailers);
        }
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.queued.is_none()
    }
}

/// One answer as gRPC message bytes: the prefix and everything but the batches, then the
/// batches (sent as they are) when there are any.
pub(crate) struct WireAnswer {
    head: Bytes,
    batches: Option<Bytes>,
}

fn wire_len(head: &Bytes, batches: Option<&Bytes>) -> usize {
    head.len() - PREFIX_BYTES + batches.map_or(0, Bytes::len)
}

/// A subscription's read as gRPC message bytes: stored batches untouched, or records encoded
/// straight from them (see `record_encoding`).
fn wire_answer(
    read: &FetchedBatches,
    from: i64,
    partition: i32,
    format: FetchFormat,
) -> Result<(WireAnswer, Transfer), Status> {
    let fields = FetchResponse {
        high_watermark: read.high_watermark().as_i64(),
        log_start_offset: read.log_start_offset().as_i64(),
        next_offset: read.next_offset().as_i64(),
        partition,
        ..Default::default()
    };
    let bytes = read.data().len() as u64;
    match format {
        FetchFormat::RecordBatches => {
            let record_count = batch_record_count(read);
            // A reference-counted clone of the segment slice: the batches are not copied.
            let answer = frame_batches(fields, read.data().clone())?;
            Ok((
                answer,
                Transfer {
                    record_count,
                    bytes,
                },
            ))
        }
        FetchFormat::Records => {
            let (answer, record_count) = frame_records(fields, read.batches(), from)?;
            Ok((
                answer,
                Transfer {
                    record_count,
                    bytes,
                },
            ))
        }
    }
}

/// `fields` with `batches` as `record_batches`, the batches kept apart.
fn frame_batches(fields: FetchResponse, batches: Bytes) -> Result<WireAnswer, Status> {
    let batch_field = if batches.is_empty() {
        0
    } else {
        prost::encoding::key_len(RECORD_BATCHES_FIELD)
            + prost::encoding::encoded_len_varint(batches.len() as u64)
            + batches.len()
    };
    let length = fields.encoded_len() + batch_field;
    let mut head = BytesMut::with_capacity(PREFIX_BYTES + length - batches.len());
    put_prefix(length, &mut head).map_err(unframeable)?;
    fields.encode(&mut head).map_err(|err| {
        status(
            ErrorCode::Internal,
            Code::Internal,
            format!("encoding an answer: {err}"),
        )
    })?;
    if batches.is_empty() {
        return Ok(WireAnswer {
            head: head.freeze(),
            batches: None,
        });
    }
    prost::encoding::encode_key(
        RECORD_BATCHES_FIELD,
        prost::encoding::WireType::LengthDelimited,
        &mut head,
    );
    prost::encoding::encode_varint(batches.len() as u64, &mut head);
    Ok(WireAnswer {
        head: head.freeze(),
        batches: Some(batches),
    })
}

/// `fields` with the records of `batches` at or after `from` as `records`, in one message;
/// also how many records it holds.
fn frame_records(
    fields: FetchResponse,
    batches: impl Iterator<Item = Batch>,
    from: i64,
) -> Result<(WireAnswer, u64), Status> {
    let mut head = BytesMut::with_capacity(PREFIX_BYTES + fields.encoded_len());
    // The length is known once the records are written; it is patched in below.
    head.put_bytes(0, PREFIX_BYTES);
    fields.encode(&mut head).map_err(|err| {
        status(
            ErrorCode::Internal,
            Code::Internal,
            format!("encoding an answer: {err}"),
        )
    })?;
    let count = encode_records(batches, from, MAX_DECOMPRESSED_BATCH_BYTES, &mut head)
        .map_err(|err| to_status(&err))?;
    let prefix = cairn_codec::grpc_frame::prefix(head.len() - PREFIX_BYTES).map_err(unframeable)?;
    head[..PREFIX_BYTES].copy_from_slice(&prefix);
    Ok((
        WireAnswer {
            head: head.freeze(),
            batches: None,
        },
        count,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_codec::grpc_frame::single_message;

    fn whole(answer: &WireAnswer) -> Vec<u8> {
        let mut wire = answer.head.to_vec();
        if let Some(batches) = &answer.batches {
            wire.extend_from_slice(batches);
        }
        let message = single_message(&wire, usize::MAX).unwrap();
        assert_eq!(
            message.len(),
            wire_len(&answer.head, answer.batches.as_ref())
        );
        wire
    }

    #[test]
    fn a_framed_answer_decodes_as_the_answer_and_keeps_the_batches_apart() {
        let batches = Bytes::from(vec![3_u8; 1000]);
        let answer = FetchResponse {
            high_watermark: 10,
            log_start_offset: 1,
            next_offset: 7,
            partition: 3,
            record_batches: batches.clone(),
            ..Default::default()
        };
        let fields = FetchResponse {
            record_batches: Bytes::new(),
            ..answer.clone()
        };
        let framed = frame_batches(fields, batches.clone()).unwrap();
        let sent = framed.batches.as_ref().unwrap();
        assert_eq!(
            sent.as_ptr(),
            batches.as_ptr(),
            "the batches are not copied"
        );
        let wire = whole(&framed);
        assert_eq!(
            FetchResponse::decode(&wire[PREFIX_BYTES..]).unwrap(),
            answer
        );
    }

    #[test]
    fn answers_without_batches_or_records_are_one_message() {
        let answer = FetchResponse {
            next_offset: 4,
            ..Default::default()
        };
        let framed = frame_batches(answer.clone(), Bytes::new()).unwrap();
        assert!(framed.batches.is_none());
        assert_eq!(
            FetchResponse::decode(&whole(&framed)[PREFIX_BYTES..]).unwrap(),
            answer
        );
        let (framed, count) = frame_records(answer.clone(), std::iter::empty(), 0).unwrap();
        assert_eq!(count, 0);
        assert_eq!(
            FetchResponse::decode(&whole(&framed)[PREFIX_BYTES..]).unwrap(),
            answer
        );
    }
}

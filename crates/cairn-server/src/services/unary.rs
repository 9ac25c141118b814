//! The wire work of a unary gRPC call served without tonic's codec: reading the one request
//! message off the HTTP/2 body, and answering with one message and an OK status.
//!
//! Why not tonic's `Grpc::unary`: on the produce path, the broker's own work (decode, append,
//! answer) is about an eighth of the instructions a request costs; tonic's streaming decoder
//! and encoder, and the boxed layers around them, are a good part of the rest (a callgrind
//! profile at 200 requests/s, `BENCHMARKS.md`). A unary call needs none of their generality:
//! the body is one length-prefixed message, the answer is one, then `grpc-status: 0`. What a
//! stock client sees is the same: tonic answers exactly these frames and headers.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use cairn_codec::grpc_frame::{FrameError, PREFIX_BYTES, open_single_message, put_prefix};
use cairn_proto::v1::ErrorCode;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use prost::Message;
use tonic::body::Body;
use tonic::{Code, Status};

use crate::status::{invalid_request, status};

/// Reads the one request message of a unary (or server-streaming) call. The message is
/// decoded from the received frames, so a `bytes` field that arrived in a frame of its own (a
/// produce request's record batch) keeps a slice of it rather than a copy.
///
/// # Errors
/// UNIMPLEMENTED for a compressed request; RESOURCE_EXHAUSTED for one over
/// `max_request_bytes`; INVALID_ARGUMENT for a body that is not exactly one message of `M`.
pub(crate) async fn read_request<M: Message + Default>(
    request: Request<Body>,
    max_request_bytes: usize,
) -> Result<M, Status> {
    if let Some(encoding) = request.headers().get("grpc-encoding")
        && encoding != "identity"
    {
        return Err(status(
            ErrorCode::UnsupportedOperation,
            Code::Unimplemented,
            format!("request compression {encoding:?} is not supported"),
        ));
    }
    let limit = max_request_bytes.saturating_add(PREFIX_BYTES);
    // The DATA frames as they arrived, not joined: a record batch sent in a frame of its own
    // (as Cairn's producer sends it) is decoded as a slice of that frame.
    let mut message = Limited::new(request.into_body(), limit)
        .collect()
        .await
        .map_err(|err| {
            if err.is::<LengthLimitError>() {
                status(
                    ErrorCode::RequestTooLarge,
                    Code::ResourceExhausted,
                    format!("the request is larger than the limit of {max_request_bytes} bytes"),
                )
            } else {
                invalid_request(format!("reading the request: {err}"))
            }
        })?
        .aggregate();
    open_single_message(&mut message, max_request_bytes).map_err(|err| match err {
        FrameError::Compressed { .. } => status(
            ErrorCode::UnsupportedOperation,
            Code::Unimplemented,
            format!("the request: {err}"),
        ),
        FrameError::TooLarge { .. } => status(
            ErrorCode::RequestTooLarge,
            Code::ResourceExhausted,
            format!("the request: {err}"),
        ),
        _ => invalid_request(format!("the request: {err}")),
    })?;
    M::decode(message).map_err(|err| {
        let name = std::any::type_name::<M>()
            .rsplit("::")
            .next()
            .unwrap_or("request");
        invalid_request(format!("malformed {name}: {err}"))
    })
}

/// The answer of a unary call: `message` in one DATA frame, then `grpc-status: 0`.
///
/// # Errors
/// INTERNAL if the message cannot be framed (over 4 GiB).
pub(crate) fn answer_unary<M: Message>(message: &M) -> Result<Response<Body>, Status> {
    let length = message.encoded_len();
    let mut wire = BytesMut::with_capacity(PREFIX_BYTES + length);
    put_prefix(length, &mut wire).map_err(|err| {
        status(
            ErrorCode::Internal,
            Code::Internal,
            format!("the answer: {err}"),
        )
    })?;
    // The buffer was sized from `encoded_len`, so encoding cannot run out of room.
    message.encode_raw(&mut wire);
    debug_assert_eq!(wire.len(), PREFIX_BYTES + length);
    let mut response = Response::new(Body::new(UnaryBody {
        message: Some(wire.freeze()),
        done: false,
    }));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    Ok(response)
}

/// A unary answer's body: the framed message, then the OK status as trailers.
struct UnaryBody {
    message: Option<Bytes>,
    done: bool,
}

impl http_body::Body for UnaryBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Some(message) = self.message.take() {
            return Poll::Ready(Some(Ok(Frame::data(message))));
        }
        if self.done {
            return Poll::Ready(None);
        }
        self.done = true;
        let mut trailers = HeaderMap::with_capacity(1);
        trailers.insert(Status::GRPC_STATUS, HeaderValue::from_static("0"));
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let length = self.message.as_ref().map_or(0, Bytes::len);
        http_body::SizeHint::with_exact(length as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_codec::grpc_frame::single_message;
    use cairn_proto::v1::{ProduceRequest, ProduceResponse, produce_request::Payload};
    use tonic_types::StatusExt;

    fn framed(message: &[u8], compressed: bool) -> Bytes {
        let mut wire = BytesMut::new();
        wire.extend_from_slice(&[u8::from(compressed)]);
        wire.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
        wire.extend_from_slice(message);
        wire.freeze()
    }

    fn request(body: Bytes) -> Request<Body> {
        Request::new(Body::new(http_body_util::Full::new(body)))
    }

    fn reason(status: &Status) -> String {
        status.get_details_error_info().unwrap().reason
    }

    fn produce(batch: &'static [u8]) -> ProduceRequest {
        ProduceRequest {
            topic: "orders".into(),
            payload: Some(Payload::RecordBatch(Bytes::from_static(batch))),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_request_is_decoded_from_the_received_bytes_without_a_copy() {
        let sent = produce(b"a stored batch");
        let body = framed(&sent.encode_to_vec(), false);
        let received: ProduceRequest = read_request(request(body.clone()), 1024).await.unwrap();
        assert_eq!(received, sent);
        let Some(Payload::RecordBatch(batch)) = &received.payload else {
            panic!("no batch");
        };
        let body_range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
        assert!(
            body_range.contains(&(batch.as_ptr() as usize)),
            "the batch is a slice of the body"
        );
    }

    #[tokio::test]
    async fn a_batch_in_a_frame_of_its_own_is_decoded_without_joining_the_frames() {
        let batch = Bytes::from(vec![7_u8; 4096]);
        let sent = ProduceRequest {
            topic: "orders".into(),
            payload: Some(Payload::RecordBatch(batch.clone())),
            ..Default::default()
        };
        // Everything but the batch, then the batch: the two chunks Cairn's producer sends.
        let wire = framed(&sent.encode_to_vec(), false);
        let head = wire.slice(..wire.len() - batch.len());
        let frames =
            [head, batch.clone()].map(|chunk| Ok::<_, Status>(http_body::Frame::data(chunk)));
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        let received: ProduceRequest = read_request(Request::new(Body::new(body)), 1 << 20)
            .await
            .unwrap();
        assert_eq!(received, sent);
        let Some(Payload::RecordBatch(got)) = &received.payload else {
            panic!("no batch");
        };
        assert_eq!(
            got.as_ptr(),
            batch.as_ptr(),
            "the batch frame is not copied"
        );
    }

    #[tokio::test]
    async fn bad_bodies_are_refused_with_their_reasons() {
        let message = produce(b"batch").encode_to_vec();
        let cases = [
            (
                framed(&message, true),
                Code::Unimplemented,
                "UNSUPPORTED_OPERATION",
            ),
            (
                framed(&[0; 600], false),
                Code::InvalidArgument,
                "INVALID_REQUEST",
            ),
            (
                framed(&message, false).slice(..8),
                Code::InvalidArgument,
                "INVALID_REQUEST",
            ),
            (Bytes::new(), Code::InvalidArgument, "INVALID_REQUEST"),
            (
                [framed(&message, false), Bytes::from_static(b"x")]
                    .concat()
                    .into(),
                Code::InvalidArgument,
                "INVALID_REQUEST",
            ),
            (
                framed(&[1; 2000], false),
                Code::ResourceExhausted,
                "REQUEST_TOO_LARGE",
            ),
        ];
        for (body, code, expected) in cases {
            let refused = read_request::<ProduceRequest>(request(body.clone()), 1024)
                .await
                .unwrap_err();
            assert_eq!(refused.code(), code, "{body:?}: {refused:?}");
            assert_eq!(reason(&refused), expected, "{body:?}");
        }
    }

    #[tokio::test]
    async fn a_compressed_request_is_refused_by_its_header() {
        let mut compressed = request(framed(&produce(b"batch").encode_to_vec(), false));
        compressed
            .headers_mut()
            .insert("grpc-encoding", HeaderValue::from_static("gzip"));
        let refused = read_request::<ProduceRequest>(compressed, 1024)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unimplemented);
        assert!(refused.message().contains("gzip"), "{refused:?}");
    }

    #[tokio::test]
    async fn an_answer_is_one_framed_message_then_an_ok_status() {
        let answer = ProduceResponse {
            results: vec![cairn_proto::v1::PartitionResult {
                partition: 2,
                base_offset: 41,
                record_count: 3,
                ..Default::default()
            }],
            placements: Vec::new(),
        };
        let response = answer_unary(&answer).unwrap();
        assert_eq!(response.headers()[CONTENT_TYPE], "application/grpc");
        let mut body = response.into_body();
        let data = body.frame().await.unwrap().unwrap().into_data().unwrap();
        let message = single_message(&data, usize::MAX).unwrap();
        assert_eq!(ProduceResponse::decode(message).unwrap(), answer);
        let trailers = body
            .frame()
            .await
            .unwrap()
            .unwrap()
            .into_trailers()
            .unwrap();
        assert_eq!(trailers[Status::GRPC_STATUS], "0");
        assert!(body.frame().await.is_none());
        assert!(http_body::Body::is_end_stream(&body));
    }
}

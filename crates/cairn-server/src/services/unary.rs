//! The wire work of a unary gRPC call served without tonic's codec: reading the one request
//! message off the HTTP/2 body, and answering with one message and an OK status.
//!
//! Why not tonic's `Grpc::unary`: on the produce path, the broker's own work (decode, append,
//! answer) is about an eighth of the instructions a request costs; tonic's streaming decoder
//! and encoder, and the boxed layers around them, are a good part of the rest (a callgrind
//! profile at 200 requests/s, `BENCHMARKS.md`). A unary call needs none of their generality:
//! the body is one length-prefixed message, the answer is one, then `grpc-status: 0`. A stock
//! client sees the same answer as from tonic: the same frames and headers. Refusals differ only
//! in carrying Cairn's ErrorInfo, which the status layer would have added to tonic's.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use cairn_codec::grpc_frame::{
    FrameError, FramedMessage, PREFIX_BYTES, open_single_message, put_prefix, read_prefix,
};
use cairn_proto::v1::ErrorCode;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use prost::Message;
use tonic::body::Body;
use tonic::{Code, Status};

use crate::request_memory::{
    HeldRequestBytes, RequestMemory, WaitingRoom, body_too_slow, budget_full,
    message_too_slow_to_start,
};
use crate::status::{invalid_request, status};

/// DATA frames smaller than this are copied together rather than kept apart: a body sent in
/// many tiny frames then costs its size in memory, not a `Bytes` (and the receive buffer each
/// one pins) per frame. Larger frames (a producer's record batch) are kept as they came.
const COALESCE_BELOW_BYTES: usize = 16 << 10;

/// A wait for a request's share of the budget.
type WaitForShare<'a> = Pin<Box<dyn std::future::Future<Output = HeldRequestBytes> + Send + 'a>>;

/// What came first while a request waited for its share.
enum Next {
    Share(HeldRequestBytes),
    Frame(Option<Result<Frame<Bytes>, Status>>),
}

/// Reads the one request message of a unary (or server-streaming) call. The message is
/// decoded from the received frames, so a `bytes` field that arrived in a frame of its own (a
/// produce request's record batch) keeps a slice of it rather than a copy. The declared
/// length is checked against `max_request_bytes` as soon as the prefix is in, and a byte past
/// the message refuses the call at once, so a body never holds more than the message.
///
/// Once the prefix is in, the declared size is taken from `memory` and returned held: the
/// caller gives it back by dropping it once the request's bytes are no longer needed. While
/// the share is not free the body is read on, its bytes counted in the budget's waiting room
/// (a request that would overfill it is refused). Once the share is held, the rest of the
/// body must arrive within the budget's time limit.
///
/// # Errors
/// RESOURCE_EXHAUSTED (THROTTLED) when the budget is full and enough requests wait for it;
/// DEADLINE_EXCEEDED for a body not whole within the budget's time limit; UNIMPLEMENTED for
/// a request compressed by its `grpc-encoding`; RESOURCE_EXHAUSTED for one
/// over `max_request_bytes`; INVALID_ARGUMENT for a body that is not exactly one uncompressed
/// message of `M`.
pub(crate) async fn read_request<M: Message + Default>(
    request: Request<Body>,
    max_request_bytes: usize,
    memory: &RequestMemory,
) -> Result<(M, HeldRequestBytes), Status> {
    if let Some(encoding) = request.headers().get("grpc-encoding")
        && encoding != "identity"
    {
        let mut refused = status(
            ErrorCode::UnsupportedOperation,
            Code::Unimplemented,
            format!("request compression {encoding:?} is not supported"),
        );
        // What the gRPC compression spec asks of a server refusing an encoding.
        refused.metadata_mut().insert(
            "grpc-accept-encoding",
            tonic::metadata::MetadataValue::from_static("identity"),
        );
        return Err(refused);
    }
    let mut body = request.into_body();
    let mut pieces = Vec::new();
    let mut small = BytesMut::new();
    let mut prefix = [0_u8; PREFIX_BYTES];
    let mut received = 0_usize;
    // The prefix and message together, once the prefix is in.
    let mut framed_bytes = None;
    let mut held = None;
    // Before its prefix is in, a request holds no share but does hold its connection: it
    // counts as in flight, which keeps the idle timeout and eviction off that connection. So
    // its message must start within the same time limit, counted from the call's start;
    // once its share is set aside, the limit starts again (see `RequestMemory::body_timeout`).
    let mut deadline = tokio::time::Instant::now() + memory.body_timeout();
    // While the share is waited for: the wait, and the count of what arrives meanwhile. The
    // body is read on while it waits, so that its unread bytes never sit in the connection's
    // shared flow-control window, where they could keep this connection's other requests,
    // holding shares, from receiving the rest of their bodies.
    let mut waiting: Option<(WaitForShare<'_>, WaitingRoom<'_>)> = None;
    loop {
        let next = match waiting.as_mut() {
            Some((share, _)) => tokio::select! {
                share = share => Next::Share(share),
                frame = body.frame() => Next::Frame(frame),
            },
            None => match tokio::time::timeout_at(deadline, body.frame()).await {
                Ok(frame) => Next::Frame(frame),
                Err(_) if framed_bytes.is_none() => {
                    return Err(message_too_slow_to_start(memory.body_timeout()));
                }
                Err(_) => return Err(body_too_slow(memory.body_timeout())),
            },
        };
        let frame = match next {
            Next::Share(share) => {
                held = Some(share);
                waiting = None;
                deadline = tokio::time::Instant::now() + memory.body_timeout();
                continue;
            }
            Next::Frame(frame) => frame,
        };
        let Some(frame) = frame else {
            break;
        };
        let frame = frame.map_err(|err| invalid_request(format!("reading the request: {err}")))?;
        // Trailers carry nothing a Cairn call reads.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if received < PREFIX_BYTES {
            let take = data.len().min(PREFIX_BYTES - received);
            prefix[received..received + take].copy_from_slice(&data[..take]);
        }
        received += data.len();
        if let Some((_, room)) = waiting.as_mut() {
            room.add(data.len()).map_err(budget_full)?;
        }
        if framed_bytes.is_none() && received >= PREFIX_BYTES {
            let length = read_prefix(prefix, max_request_bytes).map_err(refusal)?;
            framed_bytes = Some(PREFIX_BYTES + length);
            match memory.try_hold(PREFIX_BYTES + length) {
                Some(share) => {
                    held = Some(share);
                    deadline = tokio::time::Instant::now() + memory.body_timeout();
                }
                None => {
                    let mut room = memory.waiting_room();
                    room.add(received).map_err(budget_full)?;
                    waiting = Some((Box::pin(memory.hold(PREFIX_BYTES + length)), room));
                }
            }
        }
        if let Some(framed) = framed_bytes
            && received > framed
        {
            return Err(refusal(FrameError::TrailingBytes {
                extra_bytes: received - framed,
            }));
        }
        if data.len() < COALESCE_BELOW_BYTES {
            small.extend_from_slice(&data);
            if small.len() >= COALESCE_BELOW_BYTES {
                pieces.push(small.split().freeze());
            }
        } else {
            if !small.is_empty() {
                pieces.push(small.split().freeze());
            }
            pieces.push(data);
        }
    }
    // The body ended while its share was waited for: it is all here, counted in the room
    // until the share comes.
    if let Some((share, _room)) = waiting.take() {
        held = Some(share.await);
    }
    if !small.is_empty() {
        pieces.push(small.freeze());
    }
    let mut message: FramedMessage = pieces.into_iter().collect();
    open_single_message(&mut message, max_request_bytes).map_err(refusal)?;
    let decoded = M::decode(message).map_err(|err| {
        let name = std::any::type_name::<M>()
            .rsplit("::")
            .next()
            .unwrap_or("request");
        invalid_request(format!("malformed {name}: {err}"))
    })?;
    // An empty body was refused above, so the prefix was read and the bytes held.
    Ok((decoded, held.unwrap_or_else(HeldRequestBytes::none)))
}

/// The status a request's framing error is answered with. A set compressed flag without a
/// `grpc-encoding` (an encoding the server refuses was already refused by its header) is a
/// broken client: INVALID_ARGUMENT here, naming it, where the gRPC spec, tonic and grpc-go
/// answer INTERNAL: Cairn keeps INTERNAL for its own faults, which it logs as such.
fn refusal(err: FrameError) -> Status {
    match err {
        FrameError::TooLarge { .. } => status(
            ErrorCode::RequestTooLarge,
            Code::ResourceExhausted,
            format!("the request: {err}"),
        ),
        _ => invalid_request(format!("the request: {err}")),
    }
}

/// The status of an answer that cannot be framed (4 GiB or more): the broker caps what it
/// answers far below that, so this is its own bug.
pub(crate) fn unframeable(err: FrameError) -> Status {
    status(
        ErrorCode::Internal,
        Code::Internal,
        format!("the answer: {err}"),
    )
}

/// The answer of a unary call: `message` in one DATA frame, then `grpc-status: 0`.
///
/// # Errors
/// INTERNAL if the message cannot be framed (over 4 GiB).
pub(crate) fn answer_unary<M: Message>(message: &M) -> Result<Response<Body>, Status> {
    let length = message.encoded_len();
    let mut wire = BytesMut::with_capacity(PREFIX_BYTES + length);
    put_prefix(length, &mut wire).map_err(unframeable)?;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_codec::grpc_frame::single_message;
    use cairn_proto::v1::{ProduceRequest, ProduceResponse, produce_request::Payload};
    use futures_util::StreamExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
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

    /// Reads with a budget nothing else holds, and gives the bytes back at once.
    async fn read<M: Message + Default>(
        request: Request<Body>,
        max_request_bytes: usize,
    ) -> Result<M, Status> {
        let memory = RequestMemory::new(1 << 30);
        let (message, _held) = read_request(request, max_request_bytes, &memory).await?;
        Ok(message)
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
    async fn a_large_batch_is_decoded_from_the_received_frame_without_a_copy() {
        let sent = ProduceRequest {
            topic: "orders".into(),
            payload: Some(Payload::RecordBatch(Bytes::from(vec![5_u8; 20_000]))),
            ..Default::default()
        };
        let body = framed(&sent.encode_to_vec(), false);
        let received: ProduceRequest = read(request(body.clone()), 1 << 20).await.unwrap();
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
        let batch = Bytes::from(vec![7_u8; 20_000]);
        let sent = ProduceRequest {
            topic: "orders".into(),
            payload: Some(Payload::RecordBatch(batch.clone())),
            ..Default::default()
        };
        // Everything but the batch, then the batch: the two chunks Cairn's producer sends.
        let wire = framed(&sent.encode_to_vec(), false);
        let head = wire.slice(..wire.len() - batch.len());
        let received: ProduceRequest = read(body_of(vec![head, batch.clone()]), 1 << 20)
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
                Code::InvalidArgument,
                "INVALID_REQUEST",
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
            let refused = read::<ProduceRequest>(request(body.clone()), 1024)
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
        let refused = read::<ProduceRequest>(compressed, 1024).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unimplemented);
        assert!(refused.message().contains("gzip"), "{refused:?}");
        assert_eq!(
            refused.metadata().get("grpc-accept-encoding").unwrap(),
            "identity"
        );
    }

    fn body_of(frames: Vec<Bytes>) -> Request<Body> {
        let frames = frames
            .into_iter()
            .map(|chunk| Ok::<_, Status>(http_body::Frame::data(chunk)));
        Request::new(Body::new(http_body_util::StreamBody::new(
            futures_util::stream::iter(frames),
        )))
    }

    #[tokio::test]
    async fn a_request_in_one_byte_frames_is_put_together() {
        let sent = produce(b"a stored batch");
        let wire = framed(&sent.encode_to_vec(), false);
        let frames = (0..wire.len()).map(|i| wire.slice(i..=i)).collect();
        let received: ProduceRequest = read(body_of(frames), 1024).await.unwrap();
        assert_eq!(received, sent);
    }

    #[tokio::test]
    async fn an_oversized_length_is_refused_before_the_body_ends() {
        // The prefix declares 1 MiB and the body never ends: the refusal cannot wait for it.
        let prefix = Bytes::from_static(&[0, 0, 0x10, 0, 0]);
        let frames = futures_util::stream::iter([Ok::<_, Status>(http_body::Frame::data(prefix))])
            .chain(futures_util::stream::pending());
        let body = Body::new(http_body_util::StreamBody::new(frames));
        let refused = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            read::<ProduceRequest>(Request::new(body), 1024),
        )
        .await
        .expect("refused without waiting for the body")
        .unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted);
    }

    #[tokio::test]
    async fn a_request_waits_for_its_size_reading_its_body_into_the_waiting_room() {
        let sent = produce(b"a stored batch");
        let wire = framed(&sent.encode_to_vec(), false);
        // The rest of the body is read while the request waits: unread, it would sit in the
        // connection's shared window.
        let rest_taken = Arc::new(AtomicBool::new(false));
        let frames = futures_util::stream::iter([wire.slice(..PREFIX_BYTES)])
            .chain(
                futures_util::stream::iter([wire.slice(PREFIX_BYTES..)]).map({
                    let rest_taken = Arc::clone(&rest_taken);
                    move |rest| {
                        rest_taken.store(true, Ordering::SeqCst);
                        rest
                    }
                }),
            )
            .map(|chunk| Ok::<_, Status>(http_body::Frame::data(chunk)))
            .chain(futures_util::stream::pending());
        let body = Request::new(Body::new(http_body_util::StreamBody::new(frames)));
        let memory = Arc::new(RequestMemory::new(wire.len() as u64));
        let elsewhere = memory.hold(1).await;
        let reading = tokio::spawn({
            let memory = Arc::clone(&memory);
            async move {
                let (message, held) = read_request::<ProduceRequest>(body, 1024, &memory).await?;
                Ok::<_, Status>((message, held))
            }
        });
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert!(
            !reading.is_finished(),
            "one byte of the budget is held elsewhere"
        );
        assert!(rest_taken.load(Ordering::SeqCst), "the body is read on");
        drop(elsewhere);
        // The body never ends here, so the share, once held, runs its time limit: what this
        // test needs is that the share came.
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert_eq!(memory.used_bytes(), wire.len() as u64, "the share came");
        reading.abort();
    }

    #[tokio::test]
    async fn a_request_that_would_overfill_the_waiting_room_is_throttled() {
        // A budget of 100 has a waiting room of 25: another waiter holds 20 of it, so this
        // request's frame (over 5 bytes) would pass it.
        let memory = RequestMemory::new(100);
        let _all = memory.hold(100).await;
        let mut other = memory.waiting_room();
        other.add(20).unwrap();
        let wire = framed(&produce(b"a stored batch").encode_to_vec(), false);
        let refused = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            read_request::<ProduceRequest>(request(wire), 1024, &memory),
        )
        .await
        .expect("refused, not queued")
        .unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted);
        assert_eq!(reason(&refused), "THROTTLED");
    }

    /// A request whose body sends `sent` and then nothing, never ending.
    fn then_silence(sent: Vec<Bytes>) -> Request<Body> {
        let frames = futures_util::stream::iter(
            sent.into_iter()
                .map(|chunk| Ok::<_, Status>(http_body::Frame::data(chunk))),
        )
        .chain(futures_util::stream::pending());
        Request::new(Body::new(http_body_util::StreamBody::new(frames)))
    }

    /// Reads `request` under a 50 ms time limit: it must be refused REQUEST_TIMED_OUT, holding
    /// nothing of the budget. Returns the refusal.
    async fn refused_at_the_time_limit(request: Request<Body>) -> Status {
        let memory =
            RequestMemory::new(1 << 20).with_body_timeout(std::time::Duration::from_millis(50));
        let refused = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            read_request::<ProduceRequest>(request, 1024, &memory),
        )
        .await
        .expect("the time limit ends the wait")
        .unwrap_err();
        assert_eq!(refused.code(), Code::DeadlineExceeded);
        assert_eq!(reason(&refused), "REQUEST_TIMED_OUT");
        assert_eq!(memory.used_bytes(), 0);
        refused
    }

    #[tokio::test]
    async fn a_body_not_whole_in_time_is_refused_and_gives_its_share_back() {
        let wire = framed(&produce(b"a stored batch").encode_to_vec(), false);
        let refused = refused_at_the_time_limit(then_silence(vec![wire.slice(..8)])).await;
        assert!(refused.message().contains("arrive whole"), "{refused:?}");
    }

    #[tokio::test]
    async fn a_call_whose_message_never_starts_is_refused_in_time() {
        // Headers only, or four bytes of the prefix: no share is held, but the call would hold
        // its connection open for good.
        for sent in [Vec::new(), vec![Bytes::from_static(&[0, 0, 0, 0])]] {
            let refused = refused_at_the_time_limit(then_silence(sent)).await;
            assert!(refused.message().contains("did not start"), "{refused:?}");
        }
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

//! [`ServerStream`]: one gRPC server-streaming call over a [`StreamChannel`], read without
//! copying the messages.
//!
//! Why not tonic's `Streaming`: it copies every HTTP/2 DATA frame into a buffer of its own
//! before decoding, and for a replay that is one more pass over every byte fetched, plus the
//! page faults of the fresh buffers, on the core the caller also needs. Here a message that
//! arrives within one DATA frame (the usual case once [`StreamChannel`] has widened the
//! frames) is decoded from the frame's own buffer; `bytes` fields then share that buffer. A
//! message split over several frames is gathered, which costs the copy tonic always makes.
//!
//! The wire format is gRPC over HTTP/2 as specified (PROTOCOL-HTTP2.md): each message framed
//! by `cairn_codec::grpc_frame` (the framing the broker's own routes write), and the call's
//! outcome as `grpc-status` in the trailers, or in the headers of a trailers-only answer. Statuses come back as tonic's [`tonic::Status`], details
//! included, so callers map them as for any other call.

use std::marker::PhantomData;

use bytes::BytesMut;
use cairn_codec::grpc_frame::{FrameError, MessageReader, PREFIX_BYTES, put_prefix};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use prost::Message;

use crate::stream_channel::StreamChannel;

/// The answers of one server-streaming call, in order.
#[derive(Debug)]
pub(crate) struct ServerStream<M> {
    body: Incoming,
    framer: MessageReader,
    /// The call has ended (trailers seen, or an error returned).
    done: bool,
    _message: PhantomData<fn() -> M>,
}

/// Starts the call `path` (`/package.Service/Method`) with `request`, and waits for the
/// answer's headers. Messages larger than `max_message_bytes` are refused.
///
/// # Errors
/// The call's status when the broker refused it at once (a trailers-only answer), or
/// `UNAVAILABLE` when the connection failed.
pub(crate) async fn server_streaming<Q: Message, M: Message + Default>(
    channel: &StreamChannel,
    path: &str,
    request: &Q,
    max_message_bytes: usize,
) -> Result<ServerStream<M>, tonic::Status> {
    let length = request.encoded_len();
    let mut body = BytesMut::with_capacity(PREFIX_BYTES + length);
    put_prefix(length, &mut body)
        .map_err(|err| tonic::Status::invalid_argument(format!("the request: {err}")))?;
    request
        .encode(&mut body)
        .map_err(|e| tonic::Status::internal(format!("encoding the request: {e}")))?;
    let mut http_request = Request::builder()
        .method(Method::POST)
        .uri(channel.uri(path)?)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, HeaderValue::from_static("trailers"))
        .body(Full::new(body.freeze()))
        .map_err(|e| tonic::Status::internal(format!("building the request: {e}")))?;
    if let Some(value) = channel.authorization() {
        http_request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value);
    }
    let response = channel.send(http_request).await?;
    if response.status() != StatusCode::OK {
        return Err(tonic::Status::unavailable(format!(
            "the broker answered {path} with HTTP {}",
            response.status()
        )));
    }
    if let Some(status) = tonic::Status::from_header_map(response.headers())
        && status.code() != tonic::Code::Ok
    {
        return Err(status);
    }
    Ok(ServerStream {
        body: response.into_body(),
        framer: MessageReader::new(max_message_bytes),
        done: false,
        _message: PhantomData,
    })
}

impl<M: Message + Default> ServerStream<M> {
    /// The next message, or `None` when the call ended successfully.
    ///
    /// # Errors
    /// The call's failure status; a malformed stream is `INTERNAL`; a broken connection is
    /// mapped as tonic maps it (usually `UNAVAILABLE` or `INTERNAL`, both retried by callers).
    pub(crate) async fn message(&mut self) -> Result<Option<M>, tonic::Status> {
        loop {
            let taken = self.framer.take().map_err(|err| {
                self.done = true;
                frame_status(&err)
            })?;
            if let Some(message) = taken {
                // One piece (the usual case, and always for decoded records) decodes fastest
                // as `Bytes`, whose reads prost has tuned.
                let decoded = match message.into_single() {
                    Ok(piece) => M::decode(piece),
                    Err(pieces) => M::decode(pieces),
                };
                return decoded.map(Some).map_err(|e| {
                    self.done = true;
                    tonic::Status::internal(format!("malformed message from the broker: {e}"))
                });
            }
            if self.done {
                return Ok(None);
            }
            let Some(frame) = self.body.frame().await else {
                self.done = true;
                return Err(tonic::Status::unavailable(
                    "the broker's stream ended without a status",
                ));
            };
            let frame = frame.map_err(|err| {
                self.done = true;
                tonic::Status::from_error(Box::new(err))
            })?;
            match frame.into_data() {
                Ok(data) => self.framer.push(data),
                Err(frame) => {
                    if let Some(trailers) = frame.trailers_ref() {
                        self.done = true;
                        let status =
                            tonic::Status::from_header_map(trailers).unwrap_or_else(|| {
                                tonic::Status::unavailable("the broker's trailers carry no status")
                            });
                        if status.code() != tonic::Code::Ok {
                            return Err(status);
                        }
                        if self.framer.pending_bytes() > 0 {
                            return Err(tonic::Status::internal(
                                "the broker's stream ended inside a message",
                            ));
                        }
                    }
                }
            }
        }
    }
}

/// The status for a broken answer stream: a message over the caller's limit is `OUT_OF_RANGE`
/// (as tonic reports it), anything else a malformed stream, `INTERNAL`.
fn frame_status(err: &FrameError) -> tonic::Status {
    match err {
        FrameError::TooLarge { .. } => tonic::Status::out_of_range(err.to_string()),
        _ => tonic::Status::internal(format!("malformed stream from the broker: {err}")),
    }
}

#[cfg(test)]
mod tests;

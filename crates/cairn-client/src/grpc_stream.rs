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
//! The wire format is gRPC over HTTP/2 as specified (PROTOCOL-HTTP2.md): each message is a
//! compressed flag (always 0 here: the broker does not compress), a big-endian u32 length and
//! the protobuf bytes; the call's outcome is `grpc-status` in the trailers, or in the headers
//! of a trailers-only answer. Statuses come back as tonic's [`tonic::Status`], details
//! included, so callers map them as for any other call.

use std::collections::VecDeque;
use std::marker::PhantomData;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use prost::Message;

use crate::stream_channel::StreamChannel;

/// The gRPC message prefix: compressed flag and length.
const PREFIX_BYTES: usize = 5;

/// The answers of one server-streaming call, in order.
#[derive(Debug)]
pub(crate) struct ServerStream<M> {
    body: Incoming,
    framer: Framer,
    /// The call has ended (trailers seen, or an error returned).
    done: bool,
    _message: PhantomData<fn() -> M>,
}

/// Cuts received DATA bytes into gRPC messages.
#[derive(Debug)]
struct Framer {
    /// Received bytes not yet taken, in arrival order, none empty.
    pending: VecDeque<Bytes>,
    pending_bytes: usize,
    max_message_bytes: usize,
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
    let length = u32::try_from(request.encoded_len())
        .map_err(|_| tonic::Status::invalid_argument("request larger than 4 GiB"))?;
    let mut body = BytesMut::with_capacity(PREFIX_BYTES + length as usize);
    body.put_u8(0);
    body.put_u32(length);
    request
        .encode(&mut body)
        .map_err(|e| tonic::Status::internal(format!("encoding the request: {e}")))?;
    let http_request = Request::builder()
        .method(Method::POST)
        .uri(channel.uri(path)?)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, HeaderValue::from_static("trailers"))
        .body(Full::new(body.freeze()))
        .map_err(|e| tonic::Status::internal(format!("building the request: {e}")))?;
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
        framer: Framer::new(max_message_bytes),
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
            if let Some(message) = self.framer.take().inspect_err(|_| self.done = true)? {
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
                        if self.framer.pending_bytes > 0 {
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

impl Framer {
    fn new(max_message_bytes: usize) -> Framer {
        Framer {
            pending: VecDeque::new(),
            pending_bytes: 0,
            max_message_bytes,
        }
    }

    /// Adds bytes received.
    fn push(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.pending_bytes += data.len();
            self.pending.push_back(data);
        }
    }

    /// The next whole message's bytes, if all have arrived, as the slices of the frames it
    /// came in.
    fn take(&mut self) -> Result<Option<Segments>, tonic::Status> {
        if self.pending_bytes < PREFIX_BYTES {
            return Ok(None);
        }
        let mut prefix = [0_u8; PREFIX_BYTES];
        self.peek(&mut prefix);
        if prefix[0] != 0 {
            return Err(tonic::Status::internal(
                "the broker sent a compressed message, which was not asked for",
            ));
        }
        let length = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        if length > self.max_message_bytes {
            return Err(tonic::Status::out_of_range(format!(
                "a message of {length} bytes exceeds the limit of {}",
                self.max_message_bytes
            )));
        }
        let total = PREFIX_BYTES + length;
        if self.pending_bytes < total {
            return Ok(None);
        }
        self.pending_bytes -= total;
        let mut message = Segments::default();
        let mut skip = PREFIX_BYTES;
        let mut want = length;
        while skip > 0 || want > 0 {
            let Some(front) = self.pending.front_mut() else {
                break;
            };
            let dropped = skip.min(front.len());
            front.advance(dropped);
            skip -= dropped;
            let piece = if front.len() <= want {
                self.pending.pop_front().unwrap_or_default()
            } else {
                front.split_to(want)
            };
            want -= piece.len();
            message.push(piece);
            if self.pending.front().is_some_and(Bytes::is_empty) {
                self.pending.pop_front();
            }
        }
        Ok(Some(message))
    }

    /// Copies the first `out.len()` pending bytes (which must have arrived) into `out`.
    fn peek(&self, out: &mut [u8]) {
        let mut filled = 0;
        for piece in &self.pending {
            let take = piece.len().min(out.len() - filled);
            out[filled..filled + take].copy_from_slice(&piece[..take]);
            filled += take;
            if filled == out.len() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests;

/// One message's bytes as the pieces they arrived in, read as one [`Buf`]. Taking a `bytes`
/// field that lies within one piece (as a batch answer's data does) shares that piece; only a
/// field that straddles pieces is copied.
#[derive(Debug, Default)]
pub(crate) struct Segments {
    /// None empty.
    parts: VecDeque<Bytes>,
    remaining: usize,
}

impl Segments {
    /// The message as one `Bytes` when it arrived in one piece; itself otherwise.
    fn into_single(mut self) -> Result<Bytes, Segments> {
        if self.parts.len() <= 1 {
            return Ok(self.parts.pop_front().unwrap_or_default());
        }
        Err(self)
    }

    fn push(&mut self, piece: Bytes) {
        if !piece.is_empty() {
            self.remaining += piece.len();
            self.parts.push_back(piece);
        }
    }
}

impl Buf for Segments {
    fn remaining(&self) -> usize {
        self.remaining
    }

    #[inline]
    fn chunk(&self) -> &[u8] {
        self.parts.front().map_or(&[], |piece| &piece[..])
    }

    fn advance(&mut self, mut count: usize) {
        assert!(count <= self.remaining, "advance past the end of a message");
        self.remaining -= count;
        while count > 0 {
            let Some(front) = self.parts.front_mut() else {
                return;
            };
            if count < front.len() {
                front.advance(count);
                return;
            }
            count -= front.len();
            self.parts.pop_front();
        }
    }

    fn copy_to_bytes(&mut self, length: usize) -> Bytes {
        if let Some(front) = self.parts.front_mut()
            && front.len() >= length
        {
            let out = front.split_to(length);
            if front.is_empty() {
                self.parts.pop_front();
            }
            self.remaining -= length;
            return out;
        }
        let mut out = BytesMut::with_capacity(length);
        out.put((&mut *self).take(length));
        out.freeze()
    }
}

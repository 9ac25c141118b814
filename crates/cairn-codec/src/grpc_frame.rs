//! gRPC's message framing, shared by both ends of Cairn's hand-framed calls: the broker's own
//! `Produce`, `Subscribe` and `Fetch` routes and the client's zero-copy stream reader. gRPC over HTTP/2
//! (PROTOCOL-HTTP2.md, "Length-Prefixed-Message") sends each message as a compressed flag
//! byte, a big-endian `u32` length and the message bytes.
//!
//! What it deliberately does not do: HTTP/2, statuses or protobuf. Each end turns a
//! [`FrameError`] into the `tonic::Status` its side owes (a server refuses a request, a client
//! reports a broken answer). Neither end asks for compression, so a compressed message is
//! refused rather than inflated.
//!
//! The invariant: a length is checked against the caller's limit as soon as its prefix has
//! arrived, before anything is gathered or allocated for it.

use std::collections::VecDeque;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bytes of the prefix before each message: the compressed flag and the length.
pub const PREFIX_BYTES: usize = 5;

/// Why bytes are not a well-framed gRPC message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The compressed flag is set: neither end asks for compression.
    #[error("a compressed message (flag {flag}), which was not asked for")]
    Compressed {
        /// The flag byte as sent (1 is "compressed"; anything else is not gRPC either).
        flag: u8,
    },
    /// The prefix declares a message longer than the caller's limit.
    #[error("a message of {length_bytes} bytes exceeds the limit of {limit_bytes}")]
    TooLarge {
        /// The length declared by the prefix.
        length_bytes: usize,
        /// The caller's limit.
        limit_bytes: usize,
    },
    /// The bytes end before the prefix or the message it announces.
    #[error("the bytes end inside a message: {available_bytes} of {needed_bytes} present")]
    Truncated {
        /// Bytes present.
        available_bytes: usize,
        /// Bytes the prefix and message need.
        needed_bytes: usize,
    },
    /// A body that must hold exactly one message holds more bytes after it.
    #[error("{extra_bytes} bytes follow the one message")]
    TrailingBytes {
        /// Bytes after the message.
        extra_bytes: usize,
    },
    /// A message of 4 GiB or more cannot be framed (the length is a `u32`).
    #[error("a message of {length_bytes} bytes cannot be framed (over 4 GiB)")]
    Unframeable {
        /// The message's length.
        length_bytes: usize,
    },
}

/// Reads a prefix: the length of the message that follows.
///
/// # Errors
/// [`FrameError::Compressed`] for a set flag, [`FrameError::TooLarge`] past `limit_bytes`.
pub fn read_prefix(prefix: [u8; PREFIX_BYTES], limit_bytes: usize) -> Result<usize, FrameError> {
    let [flag, length @ ..] = prefix;
    if flag != 0 {
        return Err(FrameError::Compressed { flag });
    }
    // A u32 always fits a usize on the 64-bit targets Cairn builds for; saturate elsewhere.
    let length_bytes = usize::try_from(u32::from_be_bytes(length)).unwrap_or(usize::MAX);
    if length_bytes > limit_bytes {
        return Err(FrameError::TooLarge {
            length_bytes,
            limit_bytes,
        });
    }
    Ok(length_bytes)
}

/// Appends the prefix of an uncompressed message of `length_bytes`.
///
/// # Errors
/// [`FrameError::Unframeable`] at 4 GiB or more; nothing is written then.
pub fn put_prefix(length_bytes: usize, out: &mut impl BufMut) -> Result<(), FrameError> {
    out.put_slice(&prefix(length_bytes)?);
    Ok(())
}

/// The prefix of an uncompressed message of `length_bytes`.
///
/// # Errors
/// [`FrameError::Unframeable`] at 4 GiB or more.
pub fn prefix(length_bytes: usize) -> Result<[u8; PREFIX_BYTES], FrameError> {
    let length =
        u32::try_from(length_bytes).map_err(|_| FrameError::Unframeable { length_bytes })?;
    let mut out = [0_u8; PREFIX_BYTES];
    out[1..].copy_from_slice(&length.to_be_bytes());
    Ok(out)
}

/// The one message of a unary call's body (`body` holds exactly one framed message).
///
/// # Errors
/// As [`open_single_message`].
pub fn single_message(body: &[u8], limit_bytes: usize) -> Result<&[u8], FrameError> {
    let mut message = body;
    open_single_message(&mut message, limit_bytes)?;
    Ok(message)
}

/// Takes the prefix off `body`, which must hold exactly one framed message, so that what is
/// left of `body` is the message; returns its length. `body` may be in pieces (the DATA frames
/// a request arrived in), so a message is decoded where it arrived, without joining them.
///
/// # Errors
/// [`FrameError::Truncated`] (an empty body included), [`FrameError::TrailingBytes`], and
/// those of [`read_prefix`].
pub fn open_single_message(body: &mut impl Buf, limit_bytes: usize) -> Result<usize, FrameError> {
    let available_bytes = body.remaining();
    if available_bytes < PREFIX_BYTES {
        return Err(FrameError::Truncated {
            available_bytes,
            needed_bytes: PREFIX_BYTES,
        });
    }
    let mut prefix = [0_u8; PREFIX_BYTES];
    body.copy_to_slice(&mut prefix);
    let length = read_prefix(prefix, limit_bytes)?;
    match body.remaining().cmp(&length) {
        std::cmp::Ordering::Less => Err(FrameError::Truncated {
            available_bytes,
            needed_bytes: PREFIX_BYTES + length,
        }),
        std::cmp::Ordering::Greater => Err(FrameError::TrailingBytes {
            extra_bytes: body.remaining() - length,
        }),
        std::cmp::Ordering::Equal => Ok(length),
    }
}

/// Cuts a stream of received bytes (HTTP/2 DATA frames, in order) into messages without
/// copying them: a message that arrived within one frame is a slice of that frame.
#[derive(Debug)]
pub struct MessageReader {
    /// Received bytes not yet taken, in arrival order, none empty.
    pending: VecDeque<Bytes>,
    pending_bytes: usize,
    limit_bytes: usize,
}

impl MessageReader {
    /// A reader refusing messages longer than `limit_bytes`.
    pub fn new(limit_bytes: usize) -> MessageReader {
        MessageReader {
            pending: VecDeque::new(),
            pending_bytes: 0,
            limit_bytes,
        }
    }

    /// Adds bytes received.
    pub fn push(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.pending_bytes += data.len();
            self.pending.push_back(data);
        }
    }

    /// Bytes received and not yet taken as a message: non-zero at the end of a stream means
    /// it ended inside a message.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// The next whole message, if all of it has arrived, as the slices of the frames it came
    /// in. Its length is checked as soon as its prefix is in, before it is gathered.
    ///
    /// # Errors
    /// Those of [`read_prefix`]; the reader should then be dropped (the stream is broken).
    pub fn take(&mut self) -> Result<Option<FramedMessage>, FrameError> {
        if self.pending_bytes < PREFIX_BYTES {
            return Ok(None);
        }
        let mut prefix = [0_u8; PREFIX_BYTES];
        self.peek(&mut prefix);
        let length = read_prefix(prefix, self.limit_bytes)?;
        let total = PREFIX_BYTES + length;
        if self.pending_bytes < total {
            return Ok(None);
        }
        self.pending_bytes -= total;
        let mut message = FramedMessage::default();
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

/// One message's bytes as the pieces they arrived in, read as one [`Buf`]. Taking a `bytes`
/// field that lies within one piece (as a batch answer's data does) shares that piece; only a
/// field that straddles pieces is copied.
#[derive(Debug, Default)]
pub struct FramedMessage {
    /// None empty.
    parts: VecDeque<Bytes>,
    remaining: usize,
}

impl FramedMessage {
    /// The message as one `Bytes` when it arrived in one piece (protobuf decodes that
    /// fastest); itself otherwise.
    ///
    /// # Errors
    /// Gives the message back when it is in several pieces.
    pub fn into_single(mut self) -> Result<Bytes, FramedMessage> {
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

impl FromIterator<Bytes> for FramedMessage {
    /// A message (or a body to open with [`open_single_message`]) from the pieces it arrived
    /// in, in order.
    fn from_iter<I: IntoIterator<Item = Bytes>>(pieces: I) -> FramedMessage {
        let mut message = FramedMessage::default();
        for piece in pieces {
            message.push(piece);
        }
        message
    }
}

impl Buf for FramedMessage {
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

#[cfg(test)]
mod tests;

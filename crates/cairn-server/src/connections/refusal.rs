//! What a refused connection is told before it is closed: on a plaintext port, the HTTP/2
//! server preface (an empty SETTINGS frame) and a GOAWAY whose debug data says which limit
//! refused it. A client that is simply cut off sees only "broken pipe" or "connection reset"
//! and retries as if the broker were down; an h2 client shows a GOAWAY's debug data in its
//! error, so the operator reads the limit's name instead. On a TLS port nothing is written
//! (the client expects a TLS handshake first), and the connection is only closed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::EffectiveLimits;
use super::connection_metrics::RefusedReason;

/// HTTP/2's ENHANCE_YOUR_CALM error code (RFC 9113 §7): "the peer might be generating excessive
/// load", which is what a client over a connection limit is doing. gRPC maps it to
/// RESOURCE_EXHAUSTED, which clients do not retry at once.
const ENHANCE_YOUR_CALM: u32 = 0xb;
/// Frame types (RFC 9113 §6).
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;

/// Refused connections being read to their end at once, at most [`MAX_LINGERING`].
static LINGERING: AtomicUsize = AtomicUsize::new(0);

/// The most refused connections read to their end at once; past it they are closed at once.
const MAX_LINGERING: usize = 64;

/// How long a refused connection is read before it is closed anyway.
const LINGER: Duration = Duration::from_millis(500);

/// Writes the preface and a GOAWAY naming `reason` to `stream` (if the socket takes it without
/// waiting: a refused connection never holds up the accept loop), then closes it.
///
/// Closing a socket with the client's unread preface in it makes the kernel answer with a
/// reset, and a reset makes the client's kernel drop what it has not read yet: the GOAWAY. So
/// the connection is shut for writing and read to its end (the client closes on the GOAWAY),
/// for at most [`LINGER`], by at most [`MAX_LINGERING`] connections at once; in a flood past
/// that the rest are closed at once, as before.
pub(crate) fn tell(stream: TcpStream, reason: RefusedReason, limits: EffectiveLimits) {
    let frames = frames(&message(reason, limits));
    // A new socket's send buffer is empty: the bytes fit, or the peer is already gone.
    if stream.try_write(&frames).is_err() {
        return;
    }
    if LINGERING.fetch_add(1, Ordering::Relaxed) >= MAX_LINGERING {
        LINGERING.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = stream.shutdown().await;
        let mut sink = [0_u8; 1024];
        let _ = tokio::time::timeout(LINGER, async {
            while let Ok(read) = stream.read(&mut sink).await {
                if read == 0 {
                    break;
                }
            }
        })
        .await;
        LINGERING.fetch_sub(1, Ordering::Relaxed);
    });
}

/// The debug text of the GOAWAY for `reason`.
fn message(reason: RefusedReason, limits: EffectiveLimits) -> String {
    match reason {
        RefusedReason::MaxConnectionsPerIp => format!(
            "connection refused: this client IP address already has {} connections open \
             (--max-connections-per-ip)",
            limits.max_connections_per_ip
        ),
        RefusedReason::MaxConnections => format!(
            "connection refused: the broker has {} connections open, each with a request in \
             flight (--max-connections)",
            limits.max_connections
        ),
    }
}

/// An empty SETTINGS frame, then a GOAWAY (last stream 0, ENHANCE_YOUR_CALM) carrying `debug`.
fn frames(debug: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + 9 + 8 + debug.len());
    push_header(&mut out, 0, SETTINGS);
    push_header(&mut out, 8 + debug.len(), GOAWAY);
    out.extend_from_slice(&0_u32.to_be_bytes());
    out.extend_from_slice(&ENHANCE_YOUR_CALM.to_be_bytes());
    out.extend_from_slice(debug.as_bytes());
    out
}

/// A frame header on stream 0 with no flags: a 24-bit length, the type, flags, stream id.
fn push_header(out: &mut Vec<u8>, len: usize, kind: u8) {
    let len = u32::try_from(len).unwrap_or(u32::MAX).min(0x00ff_ffff);
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(0);
    out.extend_from_slice(&0_u32.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frames_are_a_settings_and_a_goaway_carrying_the_text() {
        let frames = frames("too many");
        assert_eq!(&frames[..9], &[0, 0, 0, SETTINGS, 0, 0, 0, 0, 0]);
        let goaway = &frames[9..];
        assert_eq!(&goaway[..3], &[0, 0, 16], "8 bytes of codes + 8 of text");
        assert_eq!(goaway[3], GOAWAY);
        assert_eq!(&goaway[5..9], &[0, 0, 0, 0], "stream 0");
        assert_eq!(&goaway[9..13], &[0, 0, 0, 0], "last stream 0");
        assert_eq!(&goaway[13..17], &ENHANCE_YOUR_CALM.to_be_bytes());
        assert_eq!(&goaway[17..], b"too many");
    }
}

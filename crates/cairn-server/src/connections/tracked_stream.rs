//! An admitted gRPC connection's socket, as tonic reads and writes it. Besides passing bytes
//! through, it closes the connection (its next read fails) when the client has not finished the
//! HTTP/2 handshake within the handshake timeout, when it has had no request in flight and
//! ended none for the idle timeout, or when the registry evicted it; and it holds the
//! connection's [`Registration`], so the connection's place is freed when hyper drops it.
//!
//! Idle counts calls, not bytes, as grpc-go's `MaxConnectionIdle` does: the answers to the
//! broker's keepalive PINGs (and a client's own PINGs) are bytes read on a connection that
//! does nothing, and counting them kept every pinged connection from ever being idle.
//!
//! The checks run only when a read would block: hyper always keeps a read pending on an HTTP/2
//! connection, so the timer registered there wakes the connection's own task, and no extra task
//! or per-connection timer wheel entry is needed beyond one `Sleep`. The timer is re-armed
//! lazily: reads and requests only record times, and a timer that fires early is pushed back.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::EffectiveLimits;
use super::connection_metrics::{ClosedReason, ConnectionMetrics};
use super::preface::PrefaceProgress;
use super::registry::{ConnectionState, Registration};
use super::server_io::{ServerIo, TlsOutcome};

/// What tonic puts in each request's extensions for this connection: the usual TCP addresses
/// (copied back as [`TcpConnectInfo`] by the in-flight layer, so `Request::remote_addr` works)
/// and the state the layer counts requests in.
#[derive(Clone, Debug)]
pub(crate) struct ConnectionInfo {
    pub(crate) tcp: TcpConnectInfo,
    pub(crate) state: Arc<ConnectionState>,
    /// On a TLS listener, what the connection's handshake proved.
    pub(crate) tls: Option<Arc<TlsOutcome>>,
}

/// An admitted connection (see the module doc).
#[derive(Debug)]
pub(crate) struct TrackedStream {
    io: ServerIo,
    tcp: TcpConnectInfo,
    tls: Option<Arc<TlsOutcome>>,
    registration: Registration,
    preface: PrefaceProgress,
    handshake_done: bool,
    /// When the HTTP/2 preface was whole: the start of the idle time of a connection that has
    /// not ended a call yet.
    handshake_at: Instant,
    timer: Pin<Box<Sleep>>,
    limits: EffectiveLimits,
    metrics: Arc<ConnectionMetrics>,
    /// Set once the connection is being closed, so it is counted once.
    closed: Option<ClosedReason>,
}

impl TrackedStream {
    /// Wraps a connection just admitted; its handshake timeout starts now, and covers the TLS
    /// handshake (under `tls`, when given) as well as the HTTP/2 one.
    pub(crate) fn new(
        io: TcpStream,
        tls: Option<Arc<rustls::ServerConfig>>,
        peer: SocketAddr,
        registration: Registration,
        limits: EffectiveLimits,
        metrics: Arc<ConnectionMetrics>,
    ) -> Self {
        let now = Instant::now();
        let tcp = TcpConnectInfo {
            local_addr: io.local_addr().ok(),
            remote_addr: Some(peer),
        };
        let (io, tls) = match tls {
            Some(config) => {
                let outcome = Arc::new(TlsOutcome::default());
                (
                    ServerIo::tls(io, config, Arc::clone(&outcome)),
                    Some(outcome),
                )
            }
            None => (ServerIo::Plain(io), None),
        };
        Self {
            io,
            tcp,
            tls,
            registration,
            preface: PrefaceProgress::default(),
            handshake_done: false,
            handshake_at: now,
            timer: Box::pin(tokio::time::sleep_until(
                (now + limits.handshake_timeout).into(),
            )),
            limits,
            metrics,
            closed: None,
        }
    }

    fn note_read(&mut self, bytes: &[u8]) {
        if !self.handshake_done && self.preface.feed(bytes) {
            self.handshake_done = true;
            self.handshake_at = Instant::now();
            self.registration.handshake_done();
            self.rearm(self.handshake_at + self.limits.idle_timeout);
        }
    }

    fn rearm(&mut self, deadline: Instant) {
        self.timer.as_mut().reset(deadline.into());
    }

    /// Ready with a reason once the connection must close; pending (with the waker registered
    /// on the timer and the registry's state) while it may stay.
    fn poll_close_reason(&mut self, cx: &mut Context<'_>) -> Poll<ClosedReason> {
        let state = Arc::clone(self.registration.state());
        state.register_waker(cx.waker());
        if state.close_requested() && state.in_flight_count() == 0 {
            return Poll::Ready(ClosedReason::Evicted);
        }
        loop {
            ready!(self.timer.as_mut().poll(cx));
            let now = Instant::now();
            if !self.handshake_done {
                return Poll::Ready(ClosedReason::HandshakeTimeout);
            }
            if state.in_flight_count() > 0 {
                self.rearm(now + self.limits.idle_timeout);
                continue;
            }
            let last_activity = state
                .last_request_end()
                .map_or(self.handshake_at, |end| end.max(self.handshake_at));
            let deadline = last_activity + self.limits.idle_timeout;
            if now >= deadline {
                return Poll::Ready(ClosedReason::IdleTimeout);
            }
            self.rearm(deadline);
        }
    }

    fn close(&mut self, reason: ClosedReason) -> io::Error {
        if self.closed.is_none() {
            self.closed = Some(reason);
            // An eviction was counted by the registry when it chose this connection.
            if reason != ClosedReason::Evicted {
                self.metrics.count_closed(reason);
            }
            tracing::debug!(peer = ?self.tcp.remote_addr, reason = reason.label(), "closing connection");
        }
        let kind = match reason {
            ClosedReason::Evicted => io::ErrorKind::ConnectionAborted,
            ClosedReason::HandshakeTimeout | ClosedReason::IdleTimeout => io::ErrorKind::TimedOut,
        };
        io::Error::new(kind, reason.label())
    }
}

impl Connected for TrackedStream {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        ConnectionInfo {
            tcp: self.tcp.clone(),
            state: Arc::clone(self.registration.state()),
            tls: self.tls.clone(),
        }
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(reason) = this.closed {
            return Poll::Ready(Err(this.close(reason)));
        }
        let filled_before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = buf.filled().get(filled_before..).unwrap_or_default();
                if !read.is_empty() {
                    this.note_read(read);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => {
                let reason = ready!(this.poll_close_reason(cx));
                Poll::Ready(Err(this.close(reason)))
            }
        }
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

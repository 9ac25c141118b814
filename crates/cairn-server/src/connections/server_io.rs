//! The byte stream under one gRPC connection: the TCP socket itself, or TLS over it. A TLS
//! connection does its handshake inside the stream, on the connection's own task, the first
//! time hyper reads or writes: the accept loop never waits on a slow client's handshake, and
//! the handshake falls under the connection's handshake timeout like the HTTP/2 preface after
//! it.
//!
//! What the handshake proved (TLS, and the client's verified certificate) is published in a
//! [`TlsOutcome`] shared with the connection's connect info, which tonic takes before the
//! handshake has run; every request comes after it, so the in-flight layer finds it set.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::caller::ClientCertificate;

/// What one connection's TLS handshake proved, set when it completes.
#[derive(Debug, Default)]
pub(crate) struct TlsOutcome {
    done: OnceLock<Option<ClientCertificate>>,
}

impl TlsOutcome {
    /// `None` until the handshake completed; then `Some(the client's end-entity certificate,
    /// DER, if it presented one)`.
    pub(crate) fn client_certificate(&self) -> Option<Option<ClientCertificate>> {
        self.done.get().cloned()
    }

    /// An outcome already complete, for tests of what reads it.
    #[cfg(test)]
    pub(crate) fn completed(certificate: Option<Arc<[u8]>>) -> Self {
        let outcome = Self::default();
        let _ = outcome.done.set(certificate.map(ClientCertificate::new));
        outcome
    }
}

/// A connection's stream (see the module doc).
pub(crate) enum ServerIo {
    /// No TLS on this listener.
    Plain(TcpStream),
    /// The TLS handshake is under way.
    Handshaking {
        // Boxed like the established stream: the TLS state is large, a plain socket small.
        accept: Box<tokio_rustls::Accept<TcpStream>>,
        outcome: Arc<TlsOutcome>,
    },
    /// TLS is established.
    Tls(Box<TlsStream<TcpStream>>),
    /// The handshake failed; the connection is closing.
    Failed,
}

impl std::fmt::Debug for ServerIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServerIo::Plain(_) => "ServerIo::Plain",
            ServerIo::Handshaking { .. } => "ServerIo::Handshaking",
            ServerIo::Tls(_) => "ServerIo::Tls",
            ServerIo::Failed => "ServerIo::Failed",
        })
    }
}

impl ServerIo {
    /// A TLS connection over `tcp` under `config`, whose handshake starts on first use; its
    /// outcome is published in `outcome`.
    pub(crate) fn tls(
        tcp: TcpStream,
        config: Arc<rustls::ServerConfig>,
        outcome: Arc<TlsOutcome>,
    ) -> Self {
        let accept = Box::new(tokio_rustls::TlsAcceptor::from(config).accept(tcp));
        ServerIo::Handshaking { accept, outcome }
    }

    /// Drives the handshake, if one is under way; ready once the stream carries data.
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let ServerIo::Handshaking { accept, outcome } = self else {
            return Poll::Ready(Ok(()));
        };
        match ready!(Pin::new(accept.as_mut()).poll(cx)) {
            Ok(stream) => {
                let certificate = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|cert| ClientCertificate::new(Arc::<[u8]>::from(cert.as_ref())));
                // Set once: this is the only place, and the state leaves Handshaking below.
                let _ = outcome.done.set(certificate);
                *self = ServerIo::Tls(Box::new(stream));
                Poll::Ready(Ok(()))
            }
            Err(err) => {
                // Debug only: a port scanner or a plaintext client fails here on every try.
                tracing::debug!(%err, "TLS handshake failed");
                *self = ServerIo::Failed;
                Poll::Ready(Err(err))
            }
        }
    }
}

fn failed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "TLS handshake failed")
}

impl AsyncRead for ServerIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_handshake(cx))?;
        match this {
            ServerIo::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            ServerIo::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
            ServerIo::Handshaking { .. } | ServerIo::Failed => Poll::Ready(Err(failed())),
        }
    }
}

impl AsyncWrite for ServerIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_handshake(cx))?;
        match this {
            ServerIo::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            ServerIo::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
            ServerIo::Handshaking { .. } | ServerIo::Failed => Poll::Ready(Err(failed())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_handshake(cx))?;
        match this {
            ServerIo::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            ServerIo::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
            ServerIo::Handshaking { .. } | ServerIo::Failed => Poll::Ready(Err(failed())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ServerIo::Plain(tcp) => tcp.is_write_vectored(),
            ServerIo::Tls(tls) => tls.is_write_vectored(),
            ServerIo::Handshaking { .. } | ServerIo::Failed => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_handshake(cx))?;
        match this {
            ServerIo::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            ServerIo::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
            ServerIo::Handshaking { .. } | ServerIo::Failed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerIo::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            ServerIo::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
            ServerIo::Handshaking { .. } | ServerIo::Failed => Poll::Ready(Ok(())),
        }
    }
}

//! The connector a peer link dials through when the node runs TLS: TCP, then a TLS 1.3
//! handshake that presents the node's own certificate (peers require it: mTLS between nodes)
//! and verifies the peer's certificate against the client CA and against the host of the
//! peer's address as configured (its IP address or DNS name must be in the certificate's
//! subjectAltName). Each new connection takes the configuration in force, so a reloaded
//! certificate is used from the next reconnection on.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::reload::TlsState;

/// Dials one peer over TLS (see the module doc).
#[derive(Clone, Debug)]
pub(crate) struct PeerConnector {
    state: TlsState,
    /// `host:port` to dial.
    address: String,
    /// The name the peer's certificate must carry.
    server_name: ServerName<'static>,
}

impl PeerConnector {
    /// A connector to the peer at `address` (`host:port`, or a URI with a scheme).
    ///
    /// # Errors
    /// A description of what is wrong with `address`.
    pub(crate) fn new(state: TlsState, address: &str) -> Result<Self, String> {
        let bare = address
            .split_once("://")
            .map_or(address, |(_, rest)| rest)
            .trim_end_matches('/');
        let host = match bare.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => host,
            _ => return Err(format!("peer address {address:?} has no port")),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(host.to_string()).map_err(|err| {
            format!("peer address {address:?}: {host:?} is not a host name: {err}")
        })?;
        Ok(Self {
            state,
            address: bare.to_string(),
            server_name,
        })
    }

    async fn connect(self) -> std::io::Result<TokioIo<TlsStream<TcpStream>>> {
        let config = self.state.current().peer.clone().ok_or_else(|| {
            std::io::Error::other("node-to-node TLS needs a client CA to verify peers")
        })?;
        let tcp = TcpStream::connect(&self.address).await?;
        tcp.set_nodelay(true)?;
        let tls = TlsConnector::from(config)
            .connect(self.server_name.clone(), tcp)
            .await?;
        Ok(TokioIo::new(tls))
    }
}

impl tower_service::Service<http::Uri> for PeerConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        Box::pin(self.clone().connect())
    }
}

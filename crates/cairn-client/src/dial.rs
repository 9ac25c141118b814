//! Dialing one broker for the client's own HTTP/2 transports (the replay's
//! [`crate::stream_channel::StreamChannel`] and the producer's
//! [`crate::produce_channel::ProduceChannel`]): TCP with no Nagle delay, or TLS over it,
//! within a deadline. tonic's channels dial on their own; these two transports drive HTTP/2
//! themselves and need the byte stream.

use std::time::Duration;

use http::Uri;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::tls::ClientTls;

/// A connected byte stream to a broker, plaintext or TLS.
pub(crate) trait BrokerIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> BrokerIo for T {}

/// Connects to `address` (`host:port`) within `timeout`; over TLS to `origin`'s host with
/// `tls`. Failures are `UNAVAILABLE` (callers retry them) and name the address.
pub(crate) async fn dial(
    address: &str,
    origin: &Uri,
    tls: Option<&ClientTls>,
    timeout: Duration,
) -> Result<Box<dyn BrokerIo>, tonic::Status> {
    let unavailable = |what: &str, err: &dyn std::fmt::Display| {
        tonic::Status::unavailable(format!("{what} {address}: {err}"))
    };
    match tls {
        Some(tls) => {
            let stream = tokio::time::timeout(timeout, tls.connect(origin))
                .await
                .map_err(|err| unavailable("timed out connecting to", &err))?
                .map_err(|err| unavailable("cannot connect (TLS) to", &err))?;
            Ok(Box::new(stream))
        }
        None => {
            let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
                .await
                .map_err(|err| unavailable("timed out connecting to", &err))?
                .map_err(|err| unavailable("cannot connect to", &err))?;
            stream
                .set_nodelay(true)
                .map_err(|err| unavailable("cannot set TCP_NODELAY on the connection to", &err))?;
            Ok(Box::new(stream))
        }
    }
}

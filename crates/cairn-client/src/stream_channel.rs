//! [`StreamChannel`]: the transport for bulk gRPC server streams (a replay's `Subscribe`
//! calls), an HTTP/2 connection whose frames may be as large as the fetched chunks; the
//! streams themselves are read by [`crate::grpc_stream`].
//!
//! Why not tonic's `Channel`: it leaves HTTP/2's `SETTINGS_MAX_FRAME_SIZE` at the protocol's
//! default of 16 KiB, so the broker cuts every 1 MiB answer into 64 DATA frames, each its own
//! `writev` on the broker, a few `recv` calls here, and a wake-up of the task reading the
//! stream. Measured on a replay of 131 MB: about 8,000 writes and 16,000 reads, and the
//! system calls, wake-ups and per-frame TCP pushes took more CPU than moving the bytes. A
//! receiver that advertises 1 MiB frames lets the broker send each answer in one or two frames.
//!
//! Large frames also let a whole answer arrive as one buffer, which `grpc_stream` hands to the
//! decoder without copying it. It keeps the rest of what the replay relies on: large flow-control windows, `TCP_NODELAY`,
//! and a new connection when the old one has failed (a broker restart), so a retried
//! subscription finds a live connection. Connection failures come back as `UNAVAILABLE`, which
//! callers retry.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::Mutex;

use crate::connection::{
    CONNECT_TIMEOUT, HTTP2_CONNECTION_WINDOW_BYTES, HTTP2_STREAM_WINDOW_BYTES, KEEPALIVE_INTERVAL,
    KEEPALIVE_TIMEOUT, one_broker_address,
};
use crate::dial::dial;
use crate::error::ClientError;
use crate::tls::ClientTls;

/// The largest HTTP/2 frame this transport accepts: the protocol's maximum, so that any answer
/// (at most [`crate::MAX_FETCH_MAX_BYTES`] of batches) can arrive in one frame.
pub const STREAM_MAX_FRAME_BYTES: u32 = (1 << 24) - 1;

/// A reconnecting HTTP/2 connection to one broker. Clones share the connection.
#[derive(Clone, Debug)]
pub(crate) struct StreamChannel {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// `host:port` of the broker.
    address: String,
    origin: Uri,
    /// TLS for the connections, when the client has it.
    tls: Option<ClientTls>,
    /// The live connection, if any; replaced when it fails.
    sender: Mutex<Option<SendRequest<Full<Bytes>>>>,
    /// Sent with every call, as the tonic channels send them.
    credentials: Option<crate::Credentials>,
}

impl StreamChannel {
    /// A channel to the one broker at `address` (`host:port`) that connects on its first
    /// call, as a replay's fetch task for a partition led there needs; over TLS with `tls`.
    ///
    /// # Errors
    /// [`ClientError::InvalidArgument`] unless `address` is one well-formed address.
    pub(crate) fn lazy(
        address: &str,
        credentials: Option<crate::Credentials>,
        tls: Option<ClientTls>,
    ) -> Result<StreamChannel, ClientError> {
        let (address, origin) = one_broker_address(address)?;
        Ok(StreamChannel {
            shared: Arc::new(Shared {
                address,
                origin,
                tls,
                sender: Mutex::new(None),
                credentials,
            }),
        })
    }

    /// The `authorization` header value to send, if the client has credentials.
    pub(crate) fn authorization(&self) -> Option<http::HeaderValue> {
        self.shared
            .credentials
            .as_ref()
            .map(crate::Credentials::header)
    }

    /// The URI of `path` (`/package.Service/Method`) on this broker.
    pub(crate) fn uri(&self, path: &str) -> Result<Uri, tonic::Status> {
        let mut parts = self.shared.origin.clone().into_parts();
        parts.path_and_query = Some(
            path.parse()
                .map_err(|e| tonic::Status::internal(format!("bad gRPC path {path:?}: {e}")))?,
        );
        Uri::from_parts(parts)
            .map_err(|e| tonic::Status::internal(format!("bad gRPC path {path:?}: {e}")))
    }

    /// Sends `request` on a live connection (opening one if the last has failed) and waits
    /// for the response head.
    pub(crate) async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, tonic::Status> {
        let mut sender = self.shared.sender().await?;
        sender.send_request(request).await.map_err(|err| {
            tonic::Status::unavailable(format!("request to {} failed: {err}", self.shared.address))
        })
    }
}

impl Shared {
    /// A sender on a live connection: the current one, or a new one if it has failed.
    async fn sender(&self) -> Result<SendRequest<Full<Bytes>>, tonic::Status> {
        let mut slot = self.sender.lock().await;
        if let Some(sender) = slot.as_mut()
            && sender.ready().await.is_ok()
        {
            return Ok(sender.clone());
        }
        *slot = None;
        let sender = open(&self.address, &self.origin, self.tls.as_ref()).await?;
        *slot = Some(sender.clone());
        Ok(sender)
    }
}

/// Opens one HTTP/2 connection to `address` (TLS to `origin`'s host with `tls`) and spawns its
/// driver.
async fn open(
    address: &str,
    origin: &Uri,
    tls: Option<&ClientTls>,
) -> Result<SendRequest<Full<Bytes>>, tonic::Status> {
    let io = dial(address, origin, tls, CONNECT_TIMEOUT).await?;
    handshake(address, TokioIo::new(io)).await
}

/// The HTTP/2 handshake over `io`, with the connection's driver spawned.
async fn handshake<I>(address: &str, io: I) -> Result<SendRequest<Full<Bytes>>, tonic::Status>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let unavailable = |what: &str, err: &dyn std::fmt::Display| {
        tonic::Status::unavailable(format!("{what} {address}: {err}"))
    };
    let (sender, connection) = Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .initial_stream_window_size(HTTP2_STREAM_WINDOW_BYTES)
        .initial_connection_window_size(HTTP2_CONNECTION_WINDOW_BYTES)
        .max_frame_size(STREAM_MAX_FRAME_BYTES)
        .keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(false)
        .handshake(io)
        .await
        .map_err(|err| unavailable("HTTP/2 handshake failed with", &err))?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "replay connection closed");
        }
    });
    Ok(sender)
}

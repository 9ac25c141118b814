//! The gRPC port's connections: which are let in, how long they may stay, and what the accept
//! loop does when the process runs out of descriptors. tonic serves whatever this module's
//! [`incoming`] stream yields, so every limit here holds before hyper sees a byte.
//!
//! Code map:
//! - `acceptor`: accepts, admits or refuses, and wraps each connection;
//! - `accept_backoff`: accepts with a growing pause after a failed `accept(2)` (EMFILE, ENFILE,
//!   ...), so a listener that stays readable while accepts fail cannot spin a core;
//! - `registry`: the live connections, the total and per-client-IP limits, and which idle
//!   connection makes room for a new one when the total is reached;
//! - `preface`: counts the bytes of the client's HTTP/2 connection preface and first SETTINGS
//!   frame, which is what "handshake done" means here;
//! - `server_io`: the socket, or TLS over it with the handshake done on the connection's own
//!   task (never in the accept loop);
//! - `tracked_stream`: the accepted socket as tonic sees it; it closes its connection on the
//!   handshake timeout, the idle timeout, or eviction;
//! - `in_flight`: a tower layer counting each connection's requests in flight, from the call
//!   until the response body is dropped (a Subscribe stream counts for as long as it is open);
//! - `connection_metrics`: what `/metrics` reports about all of the above.
//!
//! The invariant: a connection is closed by the broker only while it has no request in flight,
//! so a timeout or an eviction never cuts an answer short.

mod accept_backoff;
mod acceptor;
mod connection_metrics;
mod in_flight;
mod preface;
mod refusal;
mod registry;
mod server_io;
mod tracked_stream;

use std::sync::Arc;
use std::time::Duration;

pub(crate) use accept_backoff::AcceptBackoff;
pub use connection_metrics::{ClosedReason, ConnectionMetrics, Listener, RefusedReason};
pub(crate) use in_flight::InFlightLayer;
pub(crate) use tracked_stream::TrackedStream;

use acceptor::Acceptor;
use tokio::net::TcpListener;

/// How long a client may take from TCP accept to finishing its HTTP/2 preface and first SETTINGS
/// frame (its TLS handshake included, with TLS on), when not configured. A real client does this in one round trip; ten seconds allows a
/// slow network and still frees a descriptor held by a port scanner or a stuck client soon.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may sit with no request in flight and none ended before it is closed,
/// when not configured: Kafka's `connections.max.idle.ms` default, 10 minutes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// How often a single node PINGs each client connection, and how long it waits for the answer
/// before closing it. A client that vanished without closing (a laptop asleep, a NAT mapping
/// dropped, a partitioned pod) keeps a `Subscribe` in flight on a quiet topic, which keeps its
/// connection from the idle timeout and eviction: without a PING it would hold its place until
/// the broker stops. A cluster PINGs every connection faster, for its peers' sake
/// (`peer::PeerLimits`).
pub const CLIENT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// See [`CLIENT_KEEPALIVE_INTERVAL`].
pub const CLIENT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// The share of the process's descriptor limit that gRPC connections may use when the total is
/// not configured: half, which leaves the other half for segment and index files, the admin port
/// and the runtime.
pub const DEFAULT_MAX_CONNECTIONS_DESCRIPTOR_DIVISOR: u64 = 2;

/// The limits on the gRPC port's connections, and on the request bytes they may make it hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once; `None`: half the descriptor limit at start-up. When it is
    /// reached, a new connection closes the oldest one that has not finished its handshake, else
    /// the oldest with no request in flight; if every connection is busy, it is refused.
    pub max_connections: Option<u64>,
    /// Most connections open at once from one client IP address; `None`: no limit of its own
    /// (only `max_connections`). A connection past it is refused at once.
    pub max_connections_per_ip: Option<u64>,
    /// How long a new connection may take to send its HTTP/2 preface and first SETTINGS frame.
    pub handshake_timeout: Duration,
    /// How long a connection may stay with no request in flight and none ended
    /// (Kafka's `connections.max.idle.ms`).
    pub idle_timeout: Duration,
    /// Most bytes of request bodies held at once across every connection (Kafka's
    /// `queued.max.request.bytes`; see [`crate::request_memory`]).
    pub queued_max_request_bytes: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: None,
            max_connections_per_ip: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            queued_max_request_bytes: crate::request_memory::DEFAULT_QUEUED_MAX_REQUEST_BYTES,
        }
    }
}

/// The limits in force once the defaults that depend on the process are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EffectiveLimits {
    pub(crate) max_connections: u64,
    pub(crate) max_connections_per_ip: u64,
    pub(crate) handshake_timeout: Duration,
    pub(crate) idle_timeout: Duration,
}

impl ConnectionLimits {
    /// Applies the defaults: `descriptor_limit` is the process's soft `RLIMIT_NOFILE` (`None`
    /// when it is unlimited or unknown).
    pub(crate) fn effective(self, descriptor_limit: Option<u64>) -> EffectiveLimits {
        let max_connections = self.max_connections.unwrap_or_else(|| {
            descriptor_limit.map_or(u64::MAX, |limit| {
                (limit / DEFAULT_MAX_CONNECTIONS_DESCRIPTOR_DIVISOR).max(1)
            })
        });
        EffectiveLimits {
            max_connections,
            max_connections_per_ip: self.max_connections_per_ip.unwrap_or(u64::MAX),
            handshake_timeout: self.handshake_timeout,
            idle_timeout: self.idle_timeout,
        }
    }
}

/// The gRPC listener as a stream of admitted connections (see [`Acceptor`]), TLS under `tls`
/// when given. The stream never
/// ends and never yields an error, so tonic's own accept loop (which retries an error at once)
/// never spins.
pub(crate) fn incoming(
    listener: TcpListener,
    limits: EffectiveLimits,
    metrics: Arc<ConnectionMetrics>,
    tls: Option<crate::tls::TlsState>,
) -> impl tokio_stream::Stream<Item = std::io::Result<TrackedStream>> {
    let acceptor = Acceptor::new(listener, limits, metrics, tls);
    futures_util::stream::unfold(acceptor, |mut acceptor| async move {
        let stream = acceptor.next().await;
        Some((Ok(stream), acceptor))
    })
}

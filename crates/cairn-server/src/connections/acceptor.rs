//! The gRPC port's accept step: take the next connection (pausing after failed accepts), ask
//! the registry whether it may stay, and either wrap it in a [`TrackedStream`] or close it at
//! once, counted, told why (`refusal`) and (at most every few seconds) logged at WARN.

use std::sync::Arc;

use tokio::net::TcpListener;

use super::accept_backoff::{AcceptBackoff, WarnThrottle};
use super::connection_metrics::{ConnectionMetrics, Listener};
use super::refusal;
use super::registry::{Admission, Registry};
use super::{EffectiveLimits, TrackedStream};
use crate::tls::TlsState;

/// The accept state of the gRPC listener.
#[derive(Debug)]
pub(crate) struct Acceptor {
    listener: TcpListener,
    backoff: AcceptBackoff,
    registry: Arc<Registry>,
    refusals: WarnThrottle,
    limits: EffectiveLimits,
    metrics: Arc<ConnectionMetrics>,
    tls: Option<TlsState>,
}

impl Acceptor {
    /// Accepts from `listener` under `limits`, counting into `metrics`; with `tls`, each
    /// connection is TLS under the configuration in force when it is accepted.
    pub(crate) fn new(
        listener: TcpListener,
        limits: EffectiveLimits,
        metrics: Arc<ConnectionMetrics>,
        tls: Option<TlsState>,
    ) -> Self {
        Self {
            listener,
            backoff: AcceptBackoff::new(Listener::Grpc, Arc::clone(&metrics)),
            registry: Arc::new(Registry::new(limits, Arc::clone(&metrics))),
            refusals: WarnThrottle::default(),
            limits,
            metrics,
            tls,
        }
    }

    /// The next connection the limits let in; refused ones are closed on the way.
    pub(crate) async fn next(&mut self) -> TrackedStream {
        loop {
            let (stream, peer) = self.backoff.accept(&self.listener).await;
            let registration = match self.registry.admit(peer.ip()) {
                Admission::Admitted(registration) => registration,
                Admission::Refused(reason) => {
                    self.metrics.count_refused(reason);
                    if let Some(refused_count) = self.refusals.tick() {
                        tracing::warn!(
                            %peer,
                            reason = reason.label(),
                            refused_count,
                            "refusing gRPC connections: connection limit reached"
                        );
                    }
                    if self.tls.is_none() {
                        refusal::tell(stream, reason, self.limits);
                    }
                    continue;
                }
            };
            // Accepted sockets do not inherit tonic's own `tcp_nodelay` (that applies only to
            // sockets it binds itself), and Nagle's algorithm holding back the tail of an answer
            // behind the peer's delayed ACK cost whole milliseconds per produce request.
            if let Err(err) = stream.set_nodelay(true) {
                tracing::warn!(%err, "cannot set TCP_NODELAY on an accepted connection");
            }
            let metrics = Arc::clone(&self.metrics);
            let tls = self
                .tls
                .as_ref()
                .map(|state| Arc::clone(&state.current().grpc));
            return TrackedStream::new(stream, tls, peer, registration, self.limits, metrics);
        }
    }
}

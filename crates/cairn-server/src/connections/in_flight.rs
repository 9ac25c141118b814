//! A tower layer over the gRPC routes that counts each connection's requests in flight, from
//! the call until the response body is dropped: a unary call counts until its answer is sent,
//! a Subscribe stream for as long as it is open. The idle timeout and eviction read the count,
//! so a connection is never closed under a request.
//!
//! It also puts tonic's usual [`TcpConnectInfo`] back into the request, since the connection's
//! own connect info (which carries the count) replaces it, and, on a TLS connection, the
//! [`OverTls`] and [`ClientCertificate`](crate::caller::ClientCertificate) extensions the authentication layers read.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use tower_service::Service;

use super::registry::RequestGuard;
use super::tracked_stream::ConnectionInfo;
use crate::caller::OverTls;

/// Wraps a service in [`InFlight`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct InFlightLayer;

impl<S> tower_layer::Layer<S> for InFlightLayer {
    type Service = InFlight<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InFlight { inner }
    }
}

/// The service counting requests in flight (see the module doc).
#[derive(Clone, Debug)]
pub(crate) struct InFlight<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for InFlight<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body + Unpin,
{
    type Response = http::Response<GuardedBody<ResBody>>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        let connection = req.extensions().get::<ConnectionInfo>().cloned();
        let guard = connection.map(|info| {
            req.extensions_mut().insert(info.tcp);
            // Every request follows the completed handshake, so the outcome is set; if it
            // were not, the request gets neither extension and counts as plaintext.
            if let Some(Some(certificate)) = info.tls.as_ref().map(|tls| tls.client_certificate()) {
                req.extensions_mut().insert(OverTls);
                if let Some(certificate) = certificate {
                    req.extensions_mut().insert(certificate);
                }
            }
            info.state.request_started()
        });
        let answer = self.inner.call(req);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|inner| GuardedBody {
                inner,
                _guard: guard,
            }))
        })
    }
}

/// A response body that keeps its request counted as in flight until it is dropped.
#[derive(Debug)]
pub(crate) struct GuardedBody<B> {
    inner: B,
    _guard: Option<RequestGuard>,
}

impl<B: Body + Unpin> Body for GuardedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use std::convert::Infallible;
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;
    use std::time::Duration;

    use tonic::transport::server::TcpConnectInfo;
    use tower_layer::Layer as _;

    use super::*;
    use crate::connections::EffectiveLimits;
    use crate::connections::connection_metrics::ConnectionMetrics;
    use crate::connections::registry::{Admission, Registry};
    use crate::connections::server_io::TlsOutcome;

    /// What the service under the layer saw in one request: (over TLS, the client certificate).
    async fn seen(tls: Option<Arc<TlsOutcome>>) -> (bool, Option<Arc<[u8]>>) {
        let limits = EffectiveLimits {
            max_connections: 10,
            max_connections_per_ip: 10,
            handshake_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
        };
        let registry = Arc::new(Registry::new(limits, Arc::new(ConnectionMetrics::new())));
        let Admission::Admitted(registration) = registry.admit(IpAddr::V4(Ipv4Addr::LOCALHOST))
        else {
            panic!("refused");
        };
        let info = ConnectionInfo {
            tcp: TcpConnectInfo {
                local_addr: None,
                remote_addr: None,
            },
            state: Arc::clone(registration.state()),
            tls,
        };
        let inner = tower_service_fn(|req: http::Request<()>| {
            let over_tls = req.extensions().get::<OverTls>().is_some();
            let cert = req
                .extensions()
                .get::<crate::caller::ClientCertificate>()
                .map(|c| Arc::clone(c.der()));
            (over_tls, cert)
        });
        let mut service = InFlightLayer.layer(inner);
        let mut req = http::Request::new(());
        req.extensions_mut().insert(info);
        let response = service.call(req).await.unwrap();
        let (parts, body) = response.into_parts();
        drop(parts);
        body.inner.0
    }

    #[tokio::test]
    async fn a_tls_connection_marks_its_requests_and_passes_the_client_certificate() {
        assert_eq!(seen(None).await, (false, None));
        let anonymous = Arc::new(TlsOutcome::completed(None));
        assert_eq!(seen(Some(anonymous)).await, (true, None));
        let der: Arc<[u8]> = Arc::from(&b"certificate"[..]);
        let verified = Arc::new(TlsOutcome::completed(Some(Arc::clone(&der))));
        assert_eq!(seen(Some(verified)).await, (true, Some(der)));
        let unfinished = Arc::new(TlsOutcome::default());
        assert_eq!(seen(Some(unfinished)).await, (false, None));
    }

    /// A body that carries what the service saw, so the test reads it back.
    #[derive(Debug)]
    struct Seen((bool, Option<Arc<[u8]>>));

    impl Body for Seen {
        type Data = bytes::Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
            Poll::Ready(None)
        }
    }

    #[derive(Clone)]
    struct FnService<F>(F);

    fn tower_service_fn<F>(f: F) -> FnService<F> {
        FnService(f)
    }

    impl<F> Service<http::Request<()>> for FnService<F>
    where
        F: Fn(http::Request<()>) -> (bool, Option<Arc<[u8]>>),
    {
        type Response = http::Response<Seen>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<()>) -> Self::Future {
            std::future::ready(Ok(http::Response::new(Seen((self.0)(req)))))
        }
    }
}

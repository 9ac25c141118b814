//! A tower layer over the gRPC routes that counts each connection's requests in flight, from
//! the call until the response body is dropped: a unary call counts until its answer is sent,
//! a Subscribe stream for as long as it is open. The idle timeout and eviction read the count,
//! so a connection is never closed under a request.
//!
//! It also puts tonic's usual [`TcpConnectInfo`] back into the request, since the connection's
//! own connect info (which carries the count) replaces it, and, on a TLS connection, the
//! [`OverTls`] and [`ClientCertificate`] extensions the authentication layers read.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use tower_service::Service;

use super::registry::RequestGuard;
use crate::caller::{ClientCertificate, OverTls};
use super::tracked_stream::ConnectionInfo;

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
                if let Some(der) = certificate {
                    req.extensions_mut().insert(ClientCertificate(der));
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

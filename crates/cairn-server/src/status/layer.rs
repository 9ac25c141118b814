//! [`StatusLayer`]: a tower layer over the whole gRPC router (every service, the router's
//! fallback for unknown services included) that reviews each answer's status on its way out.
//!
//! tonic answers some refusals itself, before any Cairn code runs: its codec turns an
//! undecodable message into INTERNAL, its decoder a message over the size limit into
//! OUT_OF_RANGE, both without an ErrorInfo. A wrapper around the codec would catch only the
//! first, and only in services generated with it; this layer sees every status, whether it
//! leaves in the headers (a refusal before any answer, "trailers-only") or in the trailers
//! after a stream, and rewrites the ones without an ErrorInfo through
//! [`super::transport_status`]. It is also where INTERNAL and UNAVAILABLE answers are logged,
//! with the RPC and the whole cause ([`super::Cause`], which [`super::to_status`] attaches and
//! tonic keeps in the response's extensions), so no service can forget to log one.
//!
//! Answers without a status in their headers pass through with their body wrapped to look at
//! the trailers frame only; data frames are handed on untouched (no copy).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use tonic::body::Body;
use tonic::{Code, Status};
use tower_layer::Layer;
use tower_service::Service;

use super::transport_status;

/// Reviews the status of every answer of the service it wraps; see the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct StatusLayer;

impl<S> Layer<S> for StatusLayer {
    type Service = StatusService<S>;

    fn layer(&self, inner: S) -> StatusService<S> {
        StatusService { inner }
    }
}

/// The service [`StatusLayer`] makes of the router.
#[derive(Clone, Debug)]
pub struct StatusService<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for StatusService<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let rpc: Arc<str> = Arc::from(request.uri().path());
        let answer = self.inner.call(request);
        Box::pin(async move { Ok(review(rpc, answer.await?)) })
    }
}

/// The answer with its status reviewed, now (trailers-only) or when its trailers come.
fn review(rpc: Arc<str>, mut response: Response<Body>) -> Response<Body> {
    if response.headers().contains_key(Status::GRPC_STATUS) {
        let cause = response
            .extensions()
            .get::<Status>()
            .and_then(|status| std::error::Error::source(status))
            .map(ToString::to_string);
        review_headers(&rpc, response.headers_mut(), cause.as_deref());
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = body.map_frame(move |frame| match frame.into_trailers() {
        Ok(mut trailers) => {
            review_headers(&rpc, &mut trailers, None);
            Frame::trailers(trailers)
        }
        Err(frame) => frame,
    });
    Response::from_parts(parts, Body::new(body))
}

/// Rewrites the status in `headers` when it has no ErrorInfo, and logs it when it is INTERNAL
/// or UNAVAILABLE.
fn review_headers(rpc: &str, headers: &mut HeaderMap, cause: Option<&str>) {
    // Nearly every answer is OK, and an OK status is neither rewritten nor logged: this skips
    // parsing it into a `Status` (an allocation and a header map walk per call).
    if headers
        .get(Status::GRPC_STATUS)
        .is_some_and(|code| code.as_bytes() == b"0")
    {
        return;
    }
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    let answered = match transport_status(rpc, &status) {
        None => status,
        Some(mapped) => {
            headers.remove(Status::GRPC_STATUS);
            headers.remove(Status::GRPC_MESSAGE);
            headers.remove(Status::GRPC_STATUS_DETAILS);
            if let Err(err) = mapped.add_header(headers) {
                // The mapped status is built from our own short text; fall back to the bare
                // code rather than answer without one.
                tracing::error!(rpc, %err, "cannot encode a mapped status");
                headers.insert(Status::GRPC_STATUS, (mapped.code() as i32).into());
            }
            mapped
        }
    };
    log_failure(rpc, &answered, cause);
}

/// Logs an INTERNAL answer at ERROR and an UNAVAILABLE one at WARN, with the RPC, the reason
/// and the whole cause when it is known (else the message the client got).
fn log_failure(rpc: &str, status: &Status, cause: Option<&str>) {
    let reason = tonic_types::StatusExt::get_details_error_info(status)
        .map(|info| info.reason)
        .unwrap_or_default();
    let cause = cause.unwrap_or(status.message());
    match status.code() {
        Code::Internal => {
            tracing::error!(rpc, code = ?status.code(), reason, cause, "answered with an error");
        }
        Code::Unavailable => {
            tracing::warn!(rpc, code = ?status.code(), reason, cause, "answered with an error");
        }
        _ => {}
    }
}

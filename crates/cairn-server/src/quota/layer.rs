//! [`QuotaLayer`]: throttles every client call whose principal has a rate quota. It runs after
//! the authentication layer (it needs the request's [`Principal`]) and around the services: the
//! service answers, the layer records the call and the bytes the service reports in the
//! answer's [`UsedBytes`] extension, and if the principal is over a quota it sleeps the delay
//! before handing the answer on, with the `cairn-throttle-time-ms` header saying how long.
//!
//! A streaming answer (Subscribe, which replay uses) cannot be delayed as a whole: the layer
//! puts a [`StreamQuota`] in the request's extensions, and the stream charges each answer's
//! bytes to it and holds the answer back by the delay it owes before sending it.
//!
//! Node-to-node calls, health and reflection are never throttled, and a principal without
//! rate quotas costs one look-up per call. The delay is cut to end before the client's
//! deadline (`grpc-timeout`), so a throttled call is late but never timed out by its throttle.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use cairn_broker::Broker;
use cairn_controller::security::quota::QuotaLimits;
use http::{HeaderValue, Request, Response};
use tonic::body::Body;
use tower_layer::Layer;
use tower_service::Service;

use super::metrics::QuotaMetrics;
use super::throttler::{Throttler, Usage};
use crate::caller::Principal;

/// The response header that says how long (ms) the answer was delayed by a quota.
pub const THROTTLE_HEADER: &str = "cairn-throttle-time-ms";

/// What a service tells the layer it moved for a call, as an extension of its answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsedBytes(pub Usage);

/// Put in a request's extensions when its principal has a rate quota: services measure the
/// bytes they move (for [`UsedBytes`]) only then, so calls without quotas pay nothing.
#[derive(Clone, Copy, Debug)]
pub struct Metered;

/// A principal's consumer byte-rate quota, for a streaming answer to charge as it sends.
#[derive(Clone, Debug)]
pub struct StreamQuota {
    shared: Arc<Shared>,
    principal: Principal,
    limits: QuotaLimits,
}

impl StreamQuota {
    /// Records `fetched_bytes` about to be sent on the stream; answers how long to hold them
    /// back (zero if under the quota), and counts it in the metrics.
    pub fn charge(&self, fetched_bytes: u64) -> Duration {
        let usage = Usage {
            produced_bytes: 0,
            fetched_bytes,
        };
        // Only the byte rate: the stream is one request, counted when it was opened.
        let limits = QuotaLimits {
            consumer_byte_rate: self.limits.consumer_byte_rate,
            ..QuotaLimits::default()
        };
        match self
            .shared
            .throttler
            .record(self.principal.name(), &limits, usage)
        {
            Some(throttle) => {
                self.shared
                    .metrics
                    .count(self.principal.name(), throttle.kind, throttle.delay);
                throttle.delay
            }
            None => Duration::ZERO,
        }
    }
}

/// How much of the client's deadline a throttle leaves for the answer to travel.
const DEADLINE_MARGIN: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct Shared {
    broker: Arc<Broker>,
    throttler: Throttler,
    metrics: Arc<QuotaMetrics>,
}

/// Wraps the gRPC routes in [`QuotaService`].
#[derive(Clone, Debug)]
pub struct QuotaLayer {
    shared: Arc<Shared>,
}

impl QuotaLayer {
    /// A layer over `broker`'s quotas, counting throttles into `metrics`.
    pub fn new(broker: Arc<Broker>, metrics: Arc<QuotaMetrics>) -> QuotaLayer {
        QuotaLayer {
            shared: Arc::new(Shared {
                broker,
                throttler: Throttler::new(),
                metrics,
            }),
        }
    }
}

impl<S> Layer<S> for QuotaLayer {
    type Service = QuotaService<S>;

    fn layer(&self, inner: S) -> QuotaService<S> {
        QuotaService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service that throttles (see [`QuotaLayer`]).
#[derive(Clone, Debug)]
pub struct QuotaService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, B> Service<Request<B>> for QuotaService<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone that was polled ready serves this request (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let started = Instant::now();
            let principal = request.extensions().get::<Principal>().cloned();
            let limits = match principal {
                Some(ref p) if is_client_call(request.uri().path()) => {
                    shared.broker.security().quotas().effective(p.name())
                }
                _ => return inner.call(request).await,
            };
            let has_rates = limits.producer_byte_rate.is_some()
                || limits.consumer_byte_rate.is_some()
                || limits.request_rate.is_some();
            let (Some(principal), true) = (principal, has_rates) else {
                return inner.call(request).await;
            };
            request.extensions_mut().insert(Metered);
            if limits.consumer_byte_rate.is_some() {
                request.extensions_mut().insert(StreamQuota {
                    shared: Arc::clone(&shared),
                    principal: principal.clone(),
                    limits,
                });
            }
            let deadline = crate::services::grpc_timeout(request.headers());
            let mut response = inner.call(request).await?;
            let used = response
                .extensions()
                .get::<UsedBytes>()
                .map_or(Usage::default(), |u| u.0);
            let Some(throttle) = shared.throttler.record(principal.name(), &limits, used) else {
                return Ok(response);
            };
            let delay = match deadline {
                Some(deadline) => throttle
                    .delay
                    .min(deadline.saturating_sub(started.elapsed() + DEADLINE_MARGIN)),
                None => throttle.delay,
            };
            if delay.is_zero() {
                return Ok(response);
            }
            tokio::time::sleep(delay).await;
            shared.metrics.count(principal.name(), throttle.kind, delay);
            response
                .headers_mut()
                .insert(THROTTLE_HEADER, HeaderValue::from(delay.as_millis() as u64));
            Ok(response)
        })
    }
}

/// True for the calls clients make (the `cairn.v1` services); node-to-node traffic, health and
/// reflection are never throttled.
fn is_client_call(path: &str) -> bool {
    path.starts_with("/cairn.v1.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_client_calls_are_throttled() {
        assert!(is_client_call("/cairn.v1.Producer/Produce"));
        assert!(!is_client_call("/cairn.cluster.v1.Peer/Stream"));
        assert!(!is_client_call("/grpc.health.v1.Health/Check"));
    }
}

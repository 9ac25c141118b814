//! [`ProducerRoutes`]: the `cairn.v1.Producer` service as mounted in the broker. It serves
//! `Produce` itself (see [`super::unary`] for why) and hands `InitProducerId` to tonic's
//! generated server. [`ProduceShortcut`] routes `Produce` calls to it ahead of the router.
//!
//! Why a shortcut past the router: tonic's router is axum's, which matches the path, then
//! stores the matched parameters in the request's extensions (a map it allocates) for every
//! call. For the one call a producer makes thousands of times a second that is work with no
//! use; every other path still goes through the router as before.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use cairn_proto::v1::ProduceRequest;
use cairn_proto::v1::producer_server::ProducerServer;
use http::{Request, Response};
use tonic::body::Body;
use tonic::server::NamedService;
use tower_layer::Layer;
use tower_service::Service;

use super::producer::ProducerService;
use super::unary::{answer_unary, read_request};
use crate::auth::CallerContext;
use crate::quota::Metered;
use crate::request_memory::RequestMemory;

/// The path of the method served here.
pub(crate) const PRODUCE_PATH: &str = "/cairn.v1.Producer/Produce";

/// The Producer service: `Produce` served here, `InitProducerId` by tonic.
#[derive(Clone, Debug)]
pub struct ProducerRoutes {
    service: ProducerService,
    generated: ProducerServer<ProducerService>,
    max_request_bytes: usize,
    memory: Arc<RequestMemory>,
}

impl ProducerRoutes {
    /// Mounts `service`; requests above `max_request_bytes` are refused, as tonic's limit
    /// would. Each `Produce` body is read within `memory`'s budget and holds its share until
    /// its answer is built: its records are appended from the frames they arrived in.
    pub fn new(
        service: ProducerService,
        max_request_bytes: usize,
        memory: Arc<RequestMemory>,
    ) -> Self {
        let generated =
            ProducerServer::new(service.clone()).max_decoding_message_size(max_request_bytes);
        ProducerRoutes {
            service,
            generated,
            max_request_bytes,
            memory,
        }
    }

    /// Serves one `Produce` call.
    fn produce(&self, request: Request<Body>) -> ResponseFuture {
        let service = self.service.clone();
        let max_request_bytes = self.max_request_bytes;
        let memory = Arc::clone(&self.memory);
        let caller = request.extensions().get::<CallerContext>().cloned();
        let metered = request.extensions().get::<Metered>().is_some();
        Box::pin(async move {
            let read = read_request::<ProduceRequest>(request, max_request_bytes, &memory).await;
            let answered = match read {
                Ok((produce, held)) => {
                    let answered = service
                        .serve_produce(caller.as_ref(), metered, produce)
                        .await
                        .and_then(|(answer, usage)| {
                            let mut response = answer_unary(&answer)?;
                            response.extensions_mut().insert(usage);
                            Ok(response)
                        });
                    drop(held);
                    answered
                }
                Err(status) => Err(status),
            };
            Ok(answered.unwrap_or_else(tonic::Status::into_http))
        })
    }
}

/// What [`ProducerRoutes`] and [`ProduceShortcut`] answer with.
type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl NamedService for ProducerRoutes {
    const NAME: &'static str = <ProducerServer<ProducerService> as NamedService>::NAME;
}

impl Service<Request<Body>> for ProducerRoutes {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<Request<Body>>::poll_ready(&mut self.generated, cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if request.uri().path() == PRODUCE_PATH {
            return self.produce(request);
        }
        Box::pin(self.generated.call(request))
    }
}

/// Sends `Produce` calls straight to [`ProducerRoutes`], everything else to the router it
/// wraps; see the module docs.
#[derive(Clone, Debug)]
pub struct ProduceShortcut {
    producer: ProducerRoutes,
}

impl ProduceShortcut {
    /// A layer that answers `Produce` calls with `producer`.
    pub fn new(producer: ProducerRoutes) -> Self {
        ProduceShortcut { producer }
    }
}

impl<S> Layer<S> for ProduceShortcut {
    type Service = ProduceShortcutService<S>;

    fn layer(&self, inner: S) -> ProduceShortcutService<S> {
        ProduceShortcutService {
            producer: self.producer.clone(),
            inner,
        }
    }
}

/// The service [`ProduceShortcut`] makes of the router.
#[derive(Clone, Debug)]
pub struct ProduceShortcutService<S> {
    producer: ProducerRoutes,
    inner: S,
}

impl<S> Service<Request<Body>> for ProduceShortcutService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if request.uri().path() == PRODUCE_PATH {
            return self.producer.produce(request);
        }
        Box::pin(self.inner.call(request))
    }
}

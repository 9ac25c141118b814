//! [`AuthLayer`]: authenticates every gRPC request and checks the cluster-level ones (see the
//! module docs of `auth` for the rules). One password check in a thousand or so runs PBKDF2,
//! on a blocking thread; the rest are answered from the cache of successful checks.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use cairn_broker::Broker;
use cairn_controller::security::acl::{CLUSTER_RESOURCE_NAME, ResourceType};
use cairn_proto::v1::ErrorCode;
use http::{Request, Response};
use tonic::Code;
use tonic::body::Body;
use tonic::transport::server::TcpConnectInfo;
use tower_layer::Layer;
use tower_service::Service;

use super::audit::AuditLog;
use super::authorizer::Authorizer;
use super::basic;
use super::cache::VerifiedPasswords;
use super::cert::principal_name;
use super::metrics::{AuthMetrics, FailureReason};
use super::rpc_rules::{PathRule, rule_for};
use super::{AuthConfig, CallerContext};
use crate::caller::{ClientCertificate, OverTls, Principal, Proof};
use crate::status::status_with_metadata;

/// What the layer shares with each request.
#[derive(Debug)]
struct Shared {
    cfg: AuthConfig,
    passwords_over_plaintext: bool,
    broker: Arc<Broker>,
    cache: Arc<VerifiedPasswords>,
    authorizer: Arc<Authorizer>,
    audit: Arc<AuditLog>,
    metrics: Arc<AuthMetrics>,
}

/// Wraps the gRPC routes in [`AuthService`].
#[derive(Clone, Debug)]
pub struct AuthLayer {
    shared: Arc<Shared>,
}

impl AuthLayer {
    /// A layer over `broker`'s users and ACLs, counting into `metrics`.
    /// `passwords_over_plaintext` accepts passwords on requests not over TLS: for a listener
    /// bound to a loopback address only.
    ///
    /// # Errors
    /// The OS has no random numbers for the cache's key.
    pub fn new(
        cfg: AuthConfig,
        passwords_over_plaintext: bool,
        broker: Arc<Broker>,
        metrics: Arc<AuthMetrics>,
    ) -> Result<AuthLayer, getrandom::Error> {
        let audit = Arc::new(AuditLog::default());
        let authorizer = Arc::new(Authorizer::new(
            cfg.authorization,
            cfg.super_users.iter().cloned(),
            Arc::clone(&broker),
            Arc::clone(&audit),
            Arc::clone(&metrics),
        ));
        Ok(AuthLayer {
            shared: Arc::new(Shared {
                cfg,
                passwords_over_plaintext,
                broker,
                cache: Arc::new(VerifiedPasswords::new()?),
                authorizer,
                audit,
                metrics,
            }),
        })
    }

    /// The policy the layer hands to requests.
    pub fn authorizer(&self) -> &Arc<Authorizer> {
        &self.shared.authorizer
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service that authenticates (see [`AuthLayer`]).
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// A refused login: why (for the counter and the audit), and the user it claimed.
struct Refusal {
    reason: FailureReason,
    detail: &'static str,
    user: Option<String>,
}

impl<S, B> Service<Request<B>> for AuthService<S>
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
        // The clone that was polled ready serves this request (tower's rule for moving a
        // service into a future).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let rule = rule_for(request.uri().path());
            if rule == PathRule::Open {
                return inner.call(request).await;
            }
            let host = request
                .extensions()
                .get::<TcpConnectInfo>()
                .and_then(TcpConnectInfo::remote_addr)
                .map(|a| a.ip());
            let proof = Presented::of(&request);
            let principal = match authenticate(&shared, proof).await {
                Ok(principal) => principal,
                Err(refusal) => return Ok(refused(&shared, refusal, host)),
            };
            if let PathRule::Cluster(operation) = rule
                && let Err(status) = shared.authorizer.check(
                    &principal,
                    host,
                    operation,
                    ResourceType::Cluster,
                    CLUSTER_RESOURCE_NAME,
                )
            {
                return Ok(status.into_http());
            }
            request.extensions_mut().insert(principal.clone());
            request.extensions_mut().insert(CallerContext {
                principal,
                host,
                authorizer: Arc::clone(&shared.authorizer),
            });
            inner.call(request).await
        })
    }
}

/// What a request presents to prove who it is, taken out of it so the request (whose body
/// need not be `Sync`) is not held across the password check.
struct Presented {
    authorization: Option<http::HeaderValue>,
    over_tls: bool,
    certificate: Option<ClientCertificate>,
}

impl Presented {
    fn of<B>(request: &Request<B>) -> Presented {
        Presented {
            authorization: request.headers().get(http::header::AUTHORIZATION).cloned(),
            over_tls: request.extensions().get::<OverTls>().is_some(),
            certificate: request.extensions().get::<ClientCertificate>().cloned(),
        }
    }
}

/// The request's principal: from its Basic header if it has one (checked), else from its
/// verified client certificate, else anonymous.
async fn authenticate(shared: &Shared, presented: Presented) -> Result<Principal, Refusal> {
    if let Some(value) = presented.authorization {
        let credentials = basic::parse(value.as_bytes()).map_err(|detail| Refusal {
            reason: FailureReason::Malformed,
            detail,
            user: None,
        })?;
        if !presented.over_tls && !shared.passwords_over_plaintext {
            return Err(Refusal {
                reason: FailureReason::Plaintext,
                detail: "passwords are accepted only over TLS",
                user: Some(credentials.user),
            });
        }
        return check_password(shared, credentials).await;
    }
    if let Some(certificate) = presented.certificate {
        let from = shared.cfg.principal_from;
        return certificate
            .principal(|der| {
                principal_name(der, from).map(|name| Principal::user(&name, Proof::Certificate))
            })
            .map_err(|detail| Refusal {
                reason: FailureReason::BadCertificate,
                detail,
                user: None,
            });
    }
    Ok(Principal::anonymous())
}

async fn check_password(
    shared: &Shared,
    credentials: basic::BasicCredentials,
) -> Result<Principal, Refusal> {
    let Some(credential) = shared.broker.security().user(&credentials.user).cloned() else {
        return Err(Refusal {
            reason: FailureReason::UnknownUser,
            // The same words as a wrong password: a client must not learn which users exist.
            detail: "wrong user name or password",
            user: Some(credentials.user),
        });
    };
    let cache = Arc::clone(&shared.cache);
    let user = credentials.user.clone();
    // A cache hit is a few microseconds; a miss runs PBKDF2 (milliseconds), which must not
    // hold a runtime worker, so every check goes where a miss may block.
    let ok = if cache.is_cached(&user, &credentials.password, &credential) {
        true
    } else {
        tokio::task::spawn_blocking(move || cache.verify(&user, &credentials.password, &credential))
            .await
            .unwrap_or(false)
    };
    if ok {
        Ok(Principal::user(&credentials.user, Proof::Password))
    } else {
        Err(Refusal {
            reason: FailureReason::BadPassword,
            detail: "wrong user name or password",
            user: Some(credentials.user),
        })
    }
}

/// Counts, audits and answers a refused login: UNAUTHENTICATED with SASL_AUTHENTICATION_FAILED
/// and the reason's label in the ErrorInfo (never the secret).
fn refused(shared: &Shared, refusal: Refusal, host: Option<IpAddr>) -> Response<Body> {
    shared.metrics.count_failure(refusal.reason);
    shared
        .audit
        .login_failed(refusal.user.as_deref(), host, refusal.reason.label());
    status_with_metadata(
        ErrorCode::SaslAuthenticationFailed,
        Code::Unauthenticated,
        format!("authentication failed: {}", refusal.detail),
        vec![("reason", refusal.reason.label().to_string())],
    )
    .into_http()
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::Ready;

    use cairn_broker::{BrokerConfig, ClusterSpec, SystemClock, TopicConfig};

    use super::*;

    /// Answers 200 with the principal the layer put in the request, in a header.
    #[derive(Clone)]
    struct Echo;

    impl Service<Request<()>> for Echo {
        type Response = Response<Body>;
        type Error = Infallible;
        type Future = Ready<Result<Response<Body>, Infallible>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: Request<()>) -> Self::Future {
            let principal = request
                .extensions()
                .get::<Principal>()
                .map_or("none".to_string(), |p| p.name().to_string());
            let mut response = Response::new(Body::empty());
            response
                .headers_mut()
                .insert("x-principal", principal.parse().unwrap());
            std::future::ready(Ok(response))
        }
    }

    async fn layer(dir: &std::path::Path, plaintext_ok: bool) -> AuthLayer {
        let cfg = BrokerConfig {
            data_dir: dir.to_path_buf(),
            cluster: ClusterSpec::default(),
            advertised_address: "127.0.0.1:1".to_string(),
            topic_defaults: TopicConfig::default(),
            offsets_topic_partitions: 1,
            max_partitions: cairn_broker::DEFAULT_MAX_PARTITIONS,
            producer_id_expiration: Default::default(),
        };
        let broker = Arc::new(Broker::open(cfg, Arc::new(SystemClock)).await.unwrap());
        broker
            .upsert_user("alice", b"alice-pw".to_vec())
            .await
            .unwrap();
        AuthLayer::new(
            AuthConfig::default(),
            plaintext_ok,
            broker,
            Arc::new(AuthMetrics::default()),
        )
        .unwrap()
    }

    async fn principal_of(layer: &AuthLayer, request: Request<()>) -> Result<String, String> {
        let response = layer.layer(Echo).call(request).await.unwrap();
        match response.headers().get("x-principal") {
            Some(value) => Ok(value.to_str().unwrap().to_string()),
            None => Err(response
                .headers()
                .get("grpc-status")
                .map_or("?".to_string(), |v| v.to_str().unwrap().to_string())),
        }
    }

    fn request(path: &str) -> Request<()> {
        Request::builder().uri(path).body(()).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn principal_comes_from_password_then_certificate_then_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let layer = layer(dir.path(), false).await;
        let path = "/cairn.v1.Producer/Produce";
        assert_eq!(
            principal_of(&layer, request(path)).await,
            Ok("User:ANONYMOUS".to_string())
        );

        // A password over plaintext on a non-loopback listener: refused unchecked (16 is
        // UNAUTHENTICATED).
        let mut with_password = request(path);
        with_password.headers_mut().insert(
            http::header::AUTHORIZATION,
            basic::header_value("alice", b"alice-pw").parse().unwrap(),
        );
        assert_eq!(
            principal_of(&layer, with_password).await,
            Err("16".to_string())
        );

        let mut over_tls = request(path);
        over_tls.extensions_mut().insert(OverTls);
        over_tls.headers_mut().insert(
            http::header::AUTHORIZATION,
            basic::header_value("alice", b"alice-pw").parse().unwrap(),
        );
        assert_eq!(
            principal_of(&layer, over_tls).await,
            Ok("User:alice".to_string())
        );

        let mut garbage_cert = request(path);
        garbage_cert
            .extensions_mut()
            .insert(ClientCertificate::new(Arc::from(&b"not a certificate"[..])));
        assert_eq!(
            principal_of(&layer, garbage_cert).await,
            Err("16".to_string())
        );

        // Health stays open whatever is sent.
        let mut health = request("/grpc.health.v1.Health/Check");
        health
            .headers_mut()
            .insert(http::header::AUTHORIZATION, "Basic !!".parse().unwrap());
        assert_eq!(principal_of(&layer, health).await, Ok("none".to_string()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_changed_password_invalidates_the_cached_check() {
        let dir = tempfile::tempdir().unwrap();
        let layer = layer(dir.path(), true).await;
        let send = |password: &'static [u8]| {
            let mut request = request("/cairn.v1.Admin/ListTopics");
            request.headers_mut().insert(
                http::header::AUTHORIZATION,
                basic::header_value("alice", password).parse().unwrap(),
            );
            request
        };
        assert_eq!(
            principal_of(&layer, send(b"alice-pw")).await,
            Ok("User:alice".to_string())
        );
        layer
            .shared
            .broker
            .upsert_user("alice", b"new-pw".to_vec())
            .await
            .unwrap();
        assert_eq!(
            principal_of(&layer, send(b"alice-pw")).await,
            Err("16".to_string())
        );
        assert_eq!(
            principal_of(&layer, send(b"new-pw")).await,
            Ok("User:alice".to_string())
        );
        layer.shared.broker.delete_user("alice").await.unwrap();
        assert_eq!(
            principal_of(&layer, send(b"new-pw")).await,
            Err("16".to_string())
        );
    }
}

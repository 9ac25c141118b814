//! Authentication and authorization of gRPC calls.
//!
//! - `layer.rs`: [`AuthLayer`], over every route: decides each request's [`Principal`] (from a
//!   verified client certificate, or from an `authorization: Basic` header checked against the
//!   user's SCRAM credential through the `cache.rs` of successful checks), answers
//!   UNAUTHENTICATED when credentials were sent and are wrong, and puts a [`CallerContext`] in
//!   the request for the services. It also checks the calls whose resource is the cluster
//!   (`rpc_rules.rs`), since their path says it all.
//! - [`Authorizer`] (`authorizer.rs`): the policy (authorization on or off, super users) over
//!   the ACLs; services call [`authorize`] with the operation and resource a request needs once
//!   they decoded it.
//! - `audit.rs`: the rate-limited `cairn::audit` log of every denial and failed login;
//!   `metrics.rs`: the counters `/metrics` shows.
//!
//! Rules:
//! - A password is accepted only on a request that came over TLS ([`crate::caller::OverTls`]),
//!   or when the gRPC listener is bound to a loopback address only (a development set-up no
//!   other machine can reach). Elsewhere a Basic header is refused UNAUTHENTICATED (reason
//!   `plaintext`) without being checked, so a client that would leak its password learns so.
//! - A request with no credentials is the anonymous principal `User:ANONYMOUS`; with
//!   authorization off it may do everything, as before this module existed.
//! - With authorization on, everything the ACLs do not allow is denied, except to super users.
//!   Health and reflection stay open to everyone.
//! - Node-to-node traffic (`cairn.cluster.v1.Peer`) needs ClusterAction on the cluster: with
//!   authorization on, make each node's certificate principal a super user (or grant it
//!   ClusterAction on `cairn-cluster`).
//! - A request that reached a service without passing the layer (in-process tests) carries no
//!   [`CallerContext`] and is not checked: the layer is what turns enforcement on.

mod audit;
mod authorizer;
pub mod basic;
mod cache;
pub mod cert;
mod layer;
mod metrics;
mod rpc_rules;

use std::net::IpAddr;
use std::sync::Arc;

pub use audit::{AUDIT_EVENTS_PER_SEC, AUDIT_TARGET, AuditLog};
pub use authorizer::Authorizer;
pub use cache::{VERIFIED_PASSWORDS_MAX, VerifiedPasswords};
pub use cert::CertPrincipalFrom;
pub use layer::{AuthLayer, AuthService};
pub use metrics::{AuthMetrics, FailureReason};

use cairn_controller::security::acl::{AclOperation, ResourceType};
use tonic::Status;

use crate::caller::Principal;

/// How a server authenticates and authorizes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// Enforce ACLs (`--authorization on`); off, every principal may do everything.
    pub authorization: bool,
    /// Principals (`User:NAME`) that bypass ACLs (`--super-users`).
    pub super_users: Vec<String>,
    /// Which certificate name becomes the principal (`--tls-principal-from`).
    pub principal_from: CertPrincipalFrom,
}

/// Who is calling and the authorizer to ask; put in each request by [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct CallerContext {
    /// The request's principal.
    pub principal: Principal,
    /// The client's IP address, when the transport knows it.
    pub host: Option<IpAddr>,
    /// The policy.
    pub authorizer: Arc<Authorizer>,
}

/// Checks that the caller of `request` may do `operation` on the resource; answers
/// PERMISSION_DENIED naming the principal, operation and resource otherwise (and audits it).
///
/// # Errors
/// The PERMISSION_DENIED status.
pub fn authorize<T>(
    request: &tonic::Request<T>,
    operation: AclOperation,
    resource_type: ResourceType,
    resource_name: &str,
) -> Result<(), Status> {
    authorize_caller(
        request.extensions().get::<CallerContext>(),
        operation,
        resource_type,
        resource_name,
    )
}

/// As [`authorize`], for a caller taken out of a request's extensions (`None`: the request did
/// not pass the layer, and is not checked).
///
/// # Errors
/// The PERMISSION_DENIED status.
pub fn authorize_caller(
    caller: Option<&CallerContext>,
    operation: AclOperation,
    resource_type: ResourceType,
    resource_name: &str,
) -> Result<(), Status> {
    match caller {
        Some(caller) => caller.authorizer.check(
            &caller.principal,
            caller.host,
            operation,
            resource_type,
            resource_name,
        ),
        None => Ok(()),
    }
}

/// True if `caller` may do `operation` on the resource, without auditing a no (for filtering
/// listings, as Kafka filters metadata). `None` (not through the layer) is allowed.
pub fn allowed(
    caller: Option<&CallerContext>,
    operation: AclOperation,
    resource_type: ResourceType,
    resource_name: &str,
) -> bool {
    match caller {
        Some(caller) => caller.authorizer.allows(
            &caller.principal,
            caller.host,
            operation,
            resource_type,
            resource_name,
        ),
        None => true,
    }
}

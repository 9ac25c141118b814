//! [`Authorizer`]: the authorization policy over the ACLs. Off, it allows everything; on, a
//! super user may do everything and anyone else what the ACLs allow and no ACL denies (see
//! `cairn_controller::security::acl` for the matching rules, which are Kafka's).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use cairn_broker::Broker;
use cairn_controller::security::acl::{
    AclDecision, AclOperation, AclRequest, ResourceType, authorize,
};
use cairn_proto::v1::ErrorCode;
use tonic::{Code, Status};

use super::audit::AuditLog;
use super::metrics::AuthMetrics;
use crate::caller::Principal;
use crate::status::status_with_metadata;

/// The policy, shared by every request.
#[derive(Debug)]
pub struct Authorizer {
    enabled: bool,
    super_users: BTreeSet<String>,
    broker: Arc<Broker>,
    audit: Arc<AuditLog>,
    metrics: Arc<AuthMetrics>,
}

impl Authorizer {
    /// A policy over `broker`'s ACLs; `enabled` false allows everything.
    pub fn new(
        enabled: bool,
        super_users: impl IntoIterator<Item = String>,
        broker: Arc<Broker>,
        audit: Arc<AuditLog>,
        metrics: Arc<AuthMetrics>,
    ) -> Authorizer {
        Authorizer {
            enabled,
            super_users: super_users.into_iter().collect(),
            broker,
            audit,
            metrics,
        }
    }

    /// True if authorization is on.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// True if `principal` from `host` may do `operation` on the resource.
    pub fn allows(
        &self,
        principal: &Principal,
        host: Option<IpAddr>,
        operation: AclOperation,
        resource_type: ResourceType,
        resource_name: &str,
    ) -> bool {
        if !self.enabled || self.super_users.contains(principal.name()) {
            return true;
        }
        let security = self.broker.security();
        let request = AclRequest {
            principal: principal.name(),
            host,
            operation,
            resource_type,
            resource_name,
        };
        authorize(security.acls(), &request) == AclDecision::Allowed
    }

    /// As [`Authorizer::allows`], but a no is counted, audited and answered as a typed
    /// PERMISSION_DENIED that names the principal, operation and resource.
    ///
    /// # Errors
    /// The PERMISSION_DENIED status.
    pub fn check(
        &self,
        principal: &Principal,
        host: Option<IpAddr>,
        operation: AclOperation,
        resource_type: ResourceType,
        resource_name: &str,
    ) -> Result<(), Status> {
        if self.allows(principal, host, operation, resource_type, resource_name) {
            return Ok(());
        }
        self.metrics.count_denial(resource_type);
        self.audit.denied(
            principal.name(),
            host,
            operation,
            resource_type,
            resource_name,
        );
        Err(denied_status(
            principal,
            operation,
            resource_type,
            resource_name,
        ))
    }
}

/// PERMISSION_DENIED with the resource type's authorization error code.
pub(super) fn denied_status(
    principal: &Principal,
    operation: AclOperation,
    resource_type: ResourceType,
    resource_name: &str,
) -> Status {
    let code = match resource_type {
        ResourceType::Topic => ErrorCode::TopicAuthorizationFailed,
        ResourceType::Group => ErrorCode::GroupAuthorizationFailed,
        ResourceType::Cluster => ErrorCode::ClusterAuthorizationFailed,
    };
    status_with_metadata(
        code,
        Code::PermissionDenied,
        format!(
            "{principal} is not allowed to {} {} {resource_name:?}",
            operation.name(),
            resource_type.name().to_ascii_lowercase()
        ),
        vec![
            ("principal", principal.name().to_string()),
            ("operation", operation.name().to_string()),
            ("resource_type", resource_type.name().to_string()),
            ("resource_name", resource_name.to_string()),
        ],
    )
}

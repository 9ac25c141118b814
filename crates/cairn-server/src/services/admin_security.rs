//! The user and ACL calls of `cairn.v1.Admin` (UpsertUser, DeleteUser, ListUsers, CreateAcls,
//! DeleteAcls, ListAcls): the API's words for ACLs parsed into the controller's types, with a
//! typed INVALID_ARGUMENT naming the field for anything unknown. Who may call them (Alter or
//! Describe on the cluster) is checked by the auth layer before they run.
//!
//! An ACL for a principal that is not a user is accepted with a warning, as Kafka does:
//! principals also come from client certificates, which no user list names. The answer warns
//! once per such principal; the log, once per request.

use std::collections::HashSet;

use cairn_broker::Broker;
use cairn_controller::security::acl::{
    AclBinding, AclOperation, PatternType, Permission, ResourceType,
};
use cairn_proto::v1 as api;
use cairn_proto::v1::ErrorCode;
use tonic::{Code, Response, Status};

use crate::status::{shorten_value, status_with_metadata, to_status};

/// Adds or replaces a user.
pub(super) async fn upsert_user(
    broker: &Broker,
    request: api::UpsertUserRequest,
) -> Result<Response<api::UpsertUserResponse>, Status> {
    let created = broker
        .upsert_user(&request.name, request.password.into_bytes())
        .await
        .map_err(|e| to_status(&e))?;
    Ok(Response::new(api::UpsertUserResponse { created }))
}

/// Removes a user.
pub(super) async fn delete_user(
    broker: &Broker,
    request: api::DeleteUserRequest,
) -> Result<Response<api::DeleteUserResponse>, Status> {
    broker
        .delete_user(&request.name)
        .await
        .map_err(|e| to_status(&e))?;
    Ok(Response::new(api::DeleteUserResponse {}))
}

/// Lists users: names, mechanism and iterations, never keys or salts.
pub(super) fn list_users(broker: &Broker) -> api::ListUsersResponse {
    let security = broker.security();
    api::ListUsersResponse {
        users: security
            .users()
            .iter()
            .map(|(name, credential)| api::UserDescription {
                name: name.clone(),
                mechanism: credential.mechanism.clone(),
                iterations: credential.iterations,
            })
            .collect(),
    }
}

/// Adds ACLs.
pub(super) async fn create_acls(
    broker: &Broker,
    request: api::CreateAclsRequest,
) -> Result<Response<api::CreateAclsResponse>, Status> {
    let acls = parse_all(request.acls)?;
    let acl_count = acls.len();
    let strangers = non_user_principals(broker, &acls);
    broker.create_acls(acls).await.map_err(|e| to_status(&e))?;
    if !strangers.is_empty() {
        log_non_users(acl_count, &strangers);
    }
    let warnings = strangers
        .iter()
        .map(|principal| {
            format!(
                "{principal} is not a user: the ACL applies only if a client certificate names \
                 this principal"
            )
        })
        .collect();
    Ok(Response::new(api::CreateAclsResponse { warnings }))
}

/// How many of a request's non-user principals its log line names; the rest are counted.
const LOGGED_PRINCIPALS_MAX: usize = 5;

/// The distinct principals of `acls` that are not users (nor `User:*`), in request order.
fn non_user_principals(broker: &Broker, acls: &[AclBinding]) -> Vec<String> {
    let security = broker.security();
    let mut seen = HashSet::new();
    acls.iter()
        .map(|acl| acl.principal.as_str())
        .filter(|principal| {
            let user = principal.strip_prefix("User:").unwrap_or("");
            user != "*" && security.user(user).is_none()
        })
        .filter(|principal| seen.insert(*principal))
        .map(str::to_string)
        .collect()
}

/// One WARN line for a request's ACLs whose principals are not users, however many there are:
/// a request of 10,000 such ACLs is one operator action, not 10,000 log lines.
fn log_non_users(acl_count: usize, strangers: &[String]) {
    let mut named: Vec<String> = strangers
        .iter()
        .take(LOGGED_PRINCIPALS_MAX)
        .map(|principal| shorten_value(principal))
        .collect();
    if strangers.len() > LOGGED_PRINCIPALS_MAX {
        named.push(format!(
            "and {} more",
            strangers.len() - LOGGED_PRINCIPALS_MAX
        ));
    }
    tracing::warn!(
        acl_count,
        principal_count = strangers.len(),
        principals = %named.join(", "),
        "ACLs added for principals that are not users (fine for certificates' principals)"
    );
}

/// Removes ACLs.
pub(super) async fn delete_acls(
    broker: &Broker,
    request: api::DeleteAclsRequest,
) -> Result<Response<api::DeleteAclsResponse>, Status> {
    let acls = parse_all(request.acls)?;
    broker.delete_acls(acls).await.map_err(|e| to_status(&e))?;
    Ok(Response::new(api::DeleteAclsResponse {}))
}

/// Lists every ACL.
pub(super) fn list_acls(broker: &Broker) -> api::ListAclsResponse {
    api::ListAclsResponse {
        acls: broker.security().acls().iter().map(to_api).collect(),
    }
}

fn parse_all(acls: Vec<api::Acl>) -> Result<Vec<AclBinding>, Status> {
    if acls.is_empty() {
        return Err(invalid_field("acls", "no ACL given".to_string()));
    }
    acls.into_iter().map(parse_acl).collect()
}

/// The controller's ACL for the API's, with its defaults (host `*`, Literal, Allow); the
/// remaining checks (principal, host, names) are the controller's, run by the broker.
fn parse_acl(acl: api::Acl) -> Result<AclBinding, Status> {
    let operation = AclOperation::parse(&acl.operation).ok_or_else(|| {
        invalid_field(
            "operation",
            format!(
                "unknown operation {:?}; use one of {}",
                acl.operation,
                AclOperation::ALL.map(AclOperation::name).join(", ")
            ),
        )
    })?;
    let resource_type = match acl.resource_type.to_ascii_lowercase().as_str() {
        "topic" => ResourceType::Topic,
        "group" => ResourceType::Group,
        "cluster" => ResourceType::Cluster,
        _ => {
            return Err(invalid_field(
                "resource_type",
                format!(
                    "unknown resource type {:?}; use Topic, Group or Cluster",
                    acl.resource_type
                ),
            ));
        }
    };
    let pattern_type = match acl.pattern_type.to_ascii_lowercase().as_str() {
        "" | "literal" => PatternType::Literal,
        "prefixed" => PatternType::Prefixed,
        _ => {
            return Err(invalid_field(
                "pattern_type",
                format!(
                    "unknown pattern type {:?}; use Literal or Prefixed",
                    acl.pattern_type
                ),
            ));
        }
    };
    let permission = match acl.permission.to_ascii_lowercase().as_str() {
        "" | "allow" => Permission::Allow,
        "deny" => Permission::Deny,
        _ => {
            return Err(invalid_field(
                "permission",
                format!("unknown permission {:?}; use Allow or Deny", acl.permission),
            ));
        }
    };
    let binding = AclBinding {
        principal: acl.principal,
        host: if acl.host.is_empty() {
            "*".to_string()
        } else {
            acl.host
        },
        operation,
        resource_type,
        resource_name: acl.resource_name,
        pattern_type,
        permission,
    };
    binding
        .check()
        .map_err(|e| invalid_field(&e.field, e.reason))?;
    Ok(binding)
}

fn to_api(acl: &AclBinding) -> api::Acl {
    api::Acl {
        principal: acl.principal.clone(),
        host: acl.host.clone(),
        operation: acl.operation.name().to_string(),
        resource_type: acl.resource_type.name().to_string(),
        resource_name: acl.resource_name.clone(),
        pattern_type: match acl.pattern_type {
            PatternType::Literal => "Literal",
            PatternType::Prefixed => "Prefixed",
        }
        .to_string(),
        permission: match acl.permission {
            Permission::Allow => "Allow",
            Permission::Deny => "Deny",
        }
        .to_string(),
    }
}

fn invalid_field(field: &str, reason: String) -> Status {
    status_with_metadata(
        ErrorCode::InvalidRequest,
        Code::InvalidArgument,
        format!("ACL field {field}: {reason}"),
        vec![("field", field.to_string())],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(operation: &str) -> api::Acl {
        api::Acl {
            principal: "User:alice".into(),
            host: String::new(),
            operation: operation.into(),
            resource_type: "topic".into(),
            resource_name: "orders".into(),
            pattern_type: String::new(),
            permission: String::new(),
        }
    }

    fn field_of(status: &Status) -> String {
        tonic_types::StatusExt::get_details_error_info(status)
            .and_then(|info| info.metadata.get("field").cloned())
            .unwrap_or_default()
    }

    #[test]
    fn defaults_apply_and_bad_fields_are_named() {
        let parsed = parse_acl(acl("write")).unwrap();
        assert_eq!(parsed.host, "*");
        assert_eq!(parsed.pattern_type, PatternType::Literal);
        assert_eq!(parsed.permission, Permission::Allow);
        assert_eq!(to_api(&parsed).operation, "Write");

        let cases = [
            (acl("fly"), "operation"),
            (
                api::Acl {
                    principal: "alice".into(),
                    ..acl("read")
                },
                "principal",
            ),
            (
                api::Acl {
                    resource_name: String::new(),
                    ..acl("read")
                },
                "resource_name",
            ),
            (
                api::Acl {
                    resource_name: "ord*".into(),
                    pattern_type: "prefixed".into(),
                    ..acl("read")
                },
                "resource_name",
            ),
            (
                api::Acl {
                    resource_type: "table".into(),
                    ..acl("read")
                },
                "resource_type",
            ),
            (
                api::Acl {
                    permission: "maybe".into(),
                    ..acl("read")
                },
                "permission",
            ),
        ];
        for (bad, field) in cases {
            let status = parse_acl(bad).unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument);
            assert_eq!(field_of(&status), field, "{status:?}");
        }
    }
}

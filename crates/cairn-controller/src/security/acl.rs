//! [`AclBinding`]: one access rule in Kafka's model (KIP-290 for prefixed patterns): a
//! principal, a host, an operation, a resource pattern and allow or deny. Also the matching
//! rules, which follow Kafka's `AclAuthorizer`: a deny that matches wins over any allow; `All`
//! matches every operation; an allow of `Read`, `Write`, `Delete` or `Alter` implies `Describe`,
//! and an allow of `AlterConfigs` implies `DescribeConfigs` (denies imply nothing).
//!
//! Nothing here knows who is a super user or whether authorization is on: that is the server's
//! policy. This module answers only what the rules say.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The principal type Cairn knows (Kafka's `User:`); a principal is written `User:NAME`.
pub const USER_PRINCIPAL_PREFIX: &str = "User:";

/// The name of the one cluster resource (Kafka's `kafka-cluster`).
pub const CLUSTER_RESOURCE_NAME: &str = "cairn-cluster";

/// Longest principal, host or resource name an ACL may carry, in characters.
pub const MAX_ACL_FIELD_CHARS: usize = 255;

/// What a request does to a resource (Kafka's `AclOperation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AclOperation {
    /// Every operation.
    All,
    /// Fetch, subscribe, list offsets; join and commit in a group.
    Read,
    /// Produce.
    Write,
    /// Create a topic.
    Create,
    /// Delete a topic.
    Delete,
    /// Add partitions; on the cluster, change users and ACLs.
    Alter,
    /// See that a resource exists (metadata, describe).
    Describe,
    /// Node-to-node traffic.
    ClusterAction,
    /// Read configs.
    DescribeConfigs,
    /// Change configs.
    AlterConfigs,
}

impl AclOperation {
    /// Every operation, in declaration order (for parsers and help texts).
    pub const ALL: [AclOperation; 10] = [
        AclOperation::All,
        AclOperation::Read,
        AclOperation::Write,
        AclOperation::Create,
        AclOperation::Delete,
        AclOperation::Alter,
        AclOperation::Describe,
        AclOperation::ClusterAction,
        AclOperation::DescribeConfigs,
        AclOperation::AlterConfigs,
    ];

    /// Kafka's spelling (`Read`, `ClusterAction`, ...).
    pub fn name(self) -> &'static str {
        match self {
            AclOperation::All => "All",
            AclOperation::Read => "Read",
            AclOperation::Write => "Write",
            AclOperation::Create => "Create",
            AclOperation::Delete => "Delete",
            AclOperation::Alter => "Alter",
            AclOperation::Describe => "Describe",
            AclOperation::ClusterAction => "ClusterAction",
            AclOperation::DescribeConfigs => "DescribeConfigs",
            AclOperation::AlterConfigs => "AlterConfigs",
        }
    }

    /// Parses a name in any case, with or without `-`/`_` (`describe-configs`, `Write`).
    pub fn parse(text: &str) -> Option<AclOperation> {
        let folded: String = text
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_lowercase();
        AclOperation::ALL
            .into_iter()
            .find(|op| op.name().to_ascii_lowercase() == folded)
    }

    /// True if an allow of `self` allows `requested` (Kafka's implied operations).
    fn allows(self, requested: AclOperation) -> bool {
        use AclOperation::*;
        self == All
            || self == requested
            || (requested == Describe && matches!(self, Read | Write | Delete | Alter))
            || (requested == DescribeConfigs && self == AlterConfigs)
    }

    /// True if a deny of `self` denies `requested`.
    fn denies(self, requested: AclOperation) -> bool {
        self == AclOperation::All || self == requested
    }
}

/// The kind of thing an ACL protects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceType {
    /// A topic, by name.
    Topic,
    /// A consumer group, by id.
    Group,
    /// The cluster itself (named [`CLUSTER_RESOURCE_NAME`]).
    Cluster,
}

impl ResourceType {
    /// Kafka's spelling.
    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Topic => "Topic",
            ResourceType::Group => "Group",
            ResourceType::Cluster => "Cluster",
        }
    }
}

/// How an ACL's resource name matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatternType {
    /// The name exactly; the name `*` matches every resource of the type.
    Literal,
    /// Every name that starts with the pattern's name.
    Prefixed,
}

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Grants the operation.
    Allow,
    /// Refuses it, whatever any allow says.
    Deny,
}

/// One ACL. Field order is the sort order of a snapshot's ACL list.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclBinding {
    /// `User:NAME`, or `User:*` for every principal (the anonymous one included).
    pub principal: String,
    /// The client's IP address, or `*` for any.
    pub host: String,
    /// The operation.
    pub operation: AclOperation,
    /// The resource's type.
    pub resource_type: ResourceType,
    /// The resource's name, or the prefix for [`PatternType::Prefixed`].
    pub resource_name: String,
    /// How `resource_name` matches.
    pub pattern_type: PatternType,
    /// Allow or deny.
    pub permission: Permission,
}

/// Which field of an ACL is wrong, and why; the server turns it into INVALID_ARGUMENT naming
/// the field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("ACL field {field}: {reason}")]
pub struct AclFieldError {
    /// `principal`, `host`, `resource_name`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

/// One request to authorize: who, from where, what, on which resource.
#[derive(Clone, Copy, Debug)]
pub struct AclRequest<'a> {
    /// `User:NAME` (`User:ANONYMOUS` when nothing proved an identity).
    pub principal: &'a str,
    /// The client's IP address.
    pub host: Option<IpAddr>,
    /// The operation.
    pub operation: AclOperation,
    /// The resource's type.
    pub resource_type: ResourceType,
    /// The resource's name.
    pub resource_name: &'a str,
}

impl AclBinding {
    /// Checks every field: the principal is `User:` and a name (or `*`), the host is `*` or an
    /// IP address, the resource name is not empty, a prefixed pattern has no `*`, and a cluster
    /// ACL names [`CLUSTER_RESOURCE_NAME`] literally.
    ///
    /// # Errors
    /// [`AclFieldError`] naming the first field found wrong.
    pub fn check(&self) -> Result<(), AclFieldError> {
        check_principal(&self.principal).map_err(|reason| field_error("principal", reason))?;
        if self.host != "*" && self.host.parse::<IpAddr>().is_err() {
            return Err(field_error(
                "host",
                format!("{:?} is neither `*` nor an IP address", self.host),
            ));
        }
        check_text(&self.resource_name).map_err(|reason| field_error("resource_name", reason))?;
        if self.pattern_type == PatternType::Prefixed && self.resource_name.contains('*') {
            return Err(field_error(
                "resource_name",
                "a prefixed pattern can't hold a wildcard `*`".to_string(),
            ));
        }
        if self.resource_type == ResourceType::Cluster
            && (self.resource_name != CLUSTER_RESOURCE_NAME
                || self.pattern_type != PatternType::Literal)
        {
            return Err(field_error(
                "resource_name",
                format!("a cluster ACL names the literal resource {CLUSTER_RESOURCE_NAME:?}"),
            ));
        }
        Ok(())
    }

    /// True if this ACL is about `request`'s principal, host and resource (whatever its
    /// operation and permission).
    fn covers(&self, request: &AclRequest<'_>) -> bool {
        let principal = self.principal == request.principal || self.principal == "User:*";
        let host = self.host == "*"
            || request
                .host
                .is_some_and(|ip| self.host.parse::<IpAddr>().is_ok_and(|h| h == ip));
        let resource = self.resource_type == request.resource_type
            && match self.pattern_type {
                PatternType::Literal => {
                    self.resource_name == "*" || self.resource_name == request.resource_name
                }
                PatternType::Prefixed => request.resource_name.starts_with(&self.resource_name),
            };
        principal && host && resource
    }
}

/// What the ACLs say about one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AclDecision {
    /// An allow matched and no deny did.
    Allowed,
    /// A deny matched (it wins over any allow).
    Denied(AclBinding),
    /// Nothing matched: denied once authorization is on.
    NoMatch,
}

/// Decides `request` against `acls`: a matching deny wins, then a matching allow.
pub fn authorize<'a>(
    acls: impl IntoIterator<Item = &'a AclBinding>,
    request: &AclRequest<'_>,
) -> AclDecision {
    let mut allowed = false;
    for acl in acls {
        if !acl.covers(request) {
            continue;
        }
        match acl.permission {
            Permission::Deny if acl.operation.denies(request.operation) => {
                return AclDecision::Denied(acl.clone());
            }
            Permission::Allow if acl.operation.allows(request.operation) => allowed = true,
            _ => {}
        }
    }
    if allowed {
        AclDecision::Allowed
    } else {
        AclDecision::NoMatch
    }
}

/// Checks a principal's spelling: `User:` then a name of printable characters, or `*`.
///
/// # Errors
/// What is wrong, in words.
pub fn check_principal(principal: &str) -> Result<(), String> {
    let Some(name) = principal.strip_prefix(USER_PRINCIPAL_PREFIX) else {
        return Err(format!(
            "{principal:?} is not `User:NAME` (the only principal type is `User`)"
        ));
    };
    check_text(name)
}

fn check_text(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("is empty".to_string());
    }
    if text.chars().count() > MAX_ACL_FIELD_CHARS {
        return Err(format!("is longer than {MAX_ACL_FIELD_CHARS} characters"));
    }
    if text.chars().any(char::is_control) {
        return Err("holds a control character".to_string());
    }
    Ok(())
}

fn field_error(field: &str, reason: String) -> AclFieldError {
    AclFieldError {
        field: field.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests;

//! [`Security`]: the users (with their SCRAM credentials), the ACLs and the client quotas
//! ([`quota`]) of the cluster, and the changes to them. It is part of [`crate::ClusterMetadata`] (changed by the `UpsertUser`,
//! `DeleteUser`, `CreateAcls` and `DeleteAcls` commands), and a node that is a cluster of one
//! keeps the same type in a file of its own, changed by the same methods, so the rules are one.
//!
//! Like the rest of the crate it is pure: a credential arrives already derived (the proposer
//! picked the salt), and nothing is logged here, so no secret can reach a log from this module.

pub mod acl;
pub mod quota;
pub mod scram;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::ControllerError;
use acl::AclBinding;
use quota::Quotas;
use scram::ScramCredential;

/// Longest user name, in characters.
pub const MAX_USER_NAME_CHARS: usize = 128;

/// Users and ACLs. Sorted maps and sets, so snapshots are byte-equal across nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Security {
    #[serde(default)]
    users: BTreeMap<String, ScramCredential>,
    #[serde(default)]
    acls: BTreeSet<AclBinding>,
    /// Absent from states written before quotas existed (and while there are none), so those
    /// read unchanged.
    #[serde(default, skip_serializing_if = "Quotas::is_empty")]
    quotas: Quotas,
}

impl Security {
    /// No users and no ACLs.
    pub fn new() -> Security {
        Security::default()
    }

    /// True with no users and no ACLs (such a state is left out of snapshots, so a snapshot
    /// of a cluster that never used them reads exactly as before they existed).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.acls.is_empty() && self.quotas.is_empty()
    }

    /// The client quotas.
    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// The client quotas, to change (see [`Quotas::set`] and [`Quotas::remove`]).
    pub fn quotas_mut(&mut self) -> &mut Quotas {
        &mut self.quotas
    }

    /// The users by name.
    pub fn users(&self) -> &BTreeMap<String, ScramCredential> {
        &self.users
    }

    /// One user's credential.
    pub fn user(&self, name: &str) -> Option<&ScramCredential> {
        self.users.get(name)
    }

    /// Every ACL, sorted.
    pub fn acls(&self) -> &BTreeSet<AclBinding> {
        &self.acls
    }

    /// Adds a user or replaces its credential; answers true if the user is new.
    ///
    /// # Errors
    /// [`ControllerError::InvalidUser`] for a bad name or a malformed credential.
    pub fn upsert_user(
        &mut self,
        name: String,
        credential: ScramCredential,
    ) -> Result<bool, ControllerError> {
        check_user_name(&name)?;
        credential
            .check()
            .map_err(|reason| ControllerError::InvalidUser {
                name: name.clone(),
                reason,
            })?;
        Ok(self.users.insert(name, credential).is_none())
    }

    /// Removes a user. Its ACLs stay (as in Kafka: an ACL names a principal, which a
    /// certificate can also prove).
    ///
    /// # Errors
    /// [`ControllerError::UnknownUser`] if there is no such user.
    pub fn delete_user(&mut self, name: &str) -> Result<(), ControllerError> {
        self.users
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| ControllerError::UnknownUser {
                name: name.to_string(),
            })
    }

    /// Adds ACLs, all or none; answers how many were new (adding one that exists is not an
    /// error).
    ///
    /// # Errors
    /// [`ControllerError::InvalidAcl`] naming the first bad ACL's field; nothing is added then.
    pub fn create_acls(&mut self, acls: Vec<AclBinding>) -> Result<usize, ControllerError> {
        for acl in &acls {
            acl.check().map_err(ControllerError::InvalidAcl)?;
        }
        Ok(acls
            .into_iter()
            .filter(|a| self.acls.insert(a.clone()))
            .count())
    }

    /// Removes exactly these ACLs; answers how many were there.
    pub fn delete_acls(&mut self, acls: &[AclBinding]) -> usize {
        acls.iter().filter(|a| self.acls.remove(*a)).count()
    }

    /// Checks what a decoded snapshot must hold: valid names, credentials and ACLs.
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        for (name, credential) in &self.users {
            check_user_name(name).map_err(|e| e.to_string())?;
            credential
                .check()
                .map_err(|reason| format!("user {name:?}: {reason}"))?;
        }
        for acl in &self.acls {
            acl.check().map_err(|e| e.to_string())?;
        }
        self.quotas.check_invariants()
    }
}

/// Checks a user name: 1 to [`MAX_USER_NAME_CHARS`] characters of `[A-Za-z0-9._@-]`, so it can
/// stand in `User:NAME`, in a comma-separated super-user list and in a Basic-auth header.
///
/// # Errors
/// [`ControllerError::InvalidUser`] saying what is wrong.
pub fn check_user_name(name: &str) -> Result<(), ControllerError> {
    let invalid = |reason: &str| ControllerError::InvalidUser {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(invalid("the name is empty"));
    }
    if name.chars().count() > MAX_USER_NAME_CHARS {
        return Err(invalid("the name is longer than 128 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'))
    {
        return Err(invalid("use only [A-Za-z0-9._@-]"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::acl::*;
    use super::*;

    fn credential() -> ScramCredential {
        ScramCredential::derive(b"pw", b"saltsalt", scram::MIN_SCRAM_ITERATIONS)
    }

    fn read_acl(name: &str) -> AclBinding {
        AclBinding {
            principal: "User:alice".into(),
            host: "*".into(),
            operation: AclOperation::Read,
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type: PatternType::Literal,
            permission: Permission::Allow,
        }
    }

    #[test]
    fn users_are_added_replaced_and_removed() {
        let mut security = Security::new();
        assert_eq!(security.upsert_user("alice".into(), credential()), Ok(true));
        assert_eq!(
            security.upsert_user("alice".into(), credential()),
            Ok(false)
        );
        assert_eq!(security.delete_user("alice"), Ok(()));
        assert_eq!(
            security.delete_user("alice"),
            Err(ControllerError::UnknownUser {
                name: "alice".into()
            })
        );
        assert!(security.is_empty());
    }

    #[test]
    fn bad_user_names_and_credentials_change_nothing() {
        let mut security = Security::new();
        for name in ["", "a b", "a:b", "a,b", &"x".repeat(129)] {
            assert!(security.upsert_user(name.into(), credential()).is_err());
        }
        let mut weak = credential();
        weak.iterations = 1;
        assert!(security.upsert_user("bob".into(), weak).is_err());
        assert!(security.is_empty());
    }

    #[test]
    fn acls_are_added_all_or_none_and_removed_exactly() {
        let mut security = Security::new();
        let bad = read_acl("");
        assert!(matches!(
            security.create_acls(vec![read_acl("a"), bad]),
            Err(ControllerError::InvalidAcl(AclFieldError { ref field, .. })) if field == "resource_name"
        ));
        assert!(security.is_empty());
        assert_eq!(
            security.create_acls(vec![read_acl("a"), read_acl("b")]),
            Ok(2)
        );
        assert_eq!(security.create_acls(vec![read_acl("a")]), Ok(0));
        assert_eq!(security.delete_acls(&[read_acl("a"), read_acl("c")]), 1);
        assert_eq!(security.acls().len(), 1);
    }
}

//! [`Principal`]: who a request acts as, decided once per request by the authentication layer
//! (`crate::auth`) and put in the request's extensions for everything after it: the
//! authorization checks in the services, and later layers such as quotas. A request whose
//! caller proved nothing is the anonymous principal, never a missing one.

use std::sync::Arc;

/// Kafka's name for the principal of a caller that proved no identity.
pub const ANONYMOUS_PRINCIPAL: &str = "User:ANONYMOUS";

/// How a principal was proven.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proof {
    /// Nothing: the anonymous principal.
    None,
    /// A user name and password checked against the stored SCRAM credential.
    Password,
    /// A client certificate the listener verified under mTLS.
    Certificate,
}

/// A request's principal, `User:NAME` as ACLs name it. Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Principal {
    name: Arc<str>,
    proof: Proof,
}

impl Principal {
    /// The anonymous principal, [`ANONYMOUS_PRINCIPAL`].
    pub fn anonymous() -> Principal {
        Principal {
            name: Arc::from(ANONYMOUS_PRINCIPAL),
            proof: Proof::None,
        }
    }

    /// The principal `User:{user}`, proven by `proof`.
    pub fn user(user: &str, proof: Proof) -> Principal {
        Principal {
            name: Arc::from(format!("User:{user}")),
            proof,
        }
    }

    /// `User:NAME`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The part after `User:`.
    pub fn user_name(&self) -> &str {
        self.name.strip_prefix("User:").unwrap_or(&self.name)
    }

    /// How it was proven.
    pub fn proof(&self) -> Proof {
        self.proof
    }

    /// True for the anonymous principal.
    pub fn is_anonymous(&self) -> bool {
        self.proof == Proof::None
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

//! The authentication and authorization counters `/metrics` shows:
//! `cairn_auth_failures_total{reason}` and `cairn_authorization_denials_total{resource_type}`.
//! Labels come from fixed lists, so a client cannot grow the series.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_controller::security::acl::ResourceType;

/// Why a login failed, as the `reason` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureReason {
    /// The authorization header is not `Basic base64(user:password)`.
    Malformed,
    /// A password came over plaintext where passwords need TLS.
    Plaintext,
    /// No such user.
    UnknownUser,
    /// The password is wrong.
    BadPassword,
    /// The client certificate names no principal under the configured mapping.
    BadCertificate,
}

impl FailureReason {
    const ALL: [FailureReason; 5] = [
        FailureReason::Malformed,
        FailureReason::Plaintext,
        FailureReason::UnknownUser,
        FailureReason::BadPassword,
        FailureReason::BadCertificate,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            FailureReason::Malformed => "malformed",
            FailureReason::Plaintext => "plaintext",
            FailureReason::UnknownUser => "unknown_user",
            FailureReason::BadPassword => "bad_password",
            FailureReason::BadCertificate => "bad_certificate",
        }
    }
}

const RESOURCE_TYPES: [ResourceType; 3] = [
    ResourceType::Topic,
    ResourceType::Group,
    ResourceType::Cluster,
];

/// The counters; shared by the layer, the authorizer and the HTTP endpoint.
#[derive(Debug, Default)]
pub struct AuthMetrics {
    failures: [AtomicU64; FailureReason::ALL.len()],
    denials: [AtomicU64; RESOURCE_TYPES.len()],
}

impl AuthMetrics {
    /// Counts one failed login.
    pub fn count_failure(&self, reason: FailureReason) {
        let idx = FailureReason::ALL
            .iter()
            .position(|r| *r == reason)
            .expect("every reason is listed");
        self.failures[idx].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one denied request.
    pub fn count_denial(&self, resource_type: ResourceType) {
        let idx = RESOURCE_TYPES
            .iter()
            .position(|r| *r == resource_type)
            .expect("every resource type is listed");
        self.denials[idx].fetch_add(1, Ordering::Relaxed);
    }

    /// Failed logins so far for `reason`.
    pub fn failures(&self, reason: FailureReason) -> u64 {
        FailureReason::ALL
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |idx| self.failures[idx].load(Ordering::Relaxed))
    }

    /// Appends both families in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP cairn_auth_failures_total Failed authentications (wrong or malformed credentials, passwords over plaintext, unusable client certificates), by reason."
        );
        let _ = writeln!(out, "# TYPE cairn_auth_failures_total counter");
        for (reason, counter) in FailureReason::ALL.iter().zip(&self.failures) {
            let _ = writeln!(
                out,
                "cairn_auth_failures_total{{reason=\"{}\"}} {}",
                reason.label(),
                counter.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP cairn_authorization_denials_total Requests denied by the ACLs, by resource type."
        );
        let _ = writeln!(out, "# TYPE cairn_authorization_denials_total counter");
        for (resource_type, counter) in RESOURCE_TYPES.iter().zip(&self.denials) {
            let _ = writeln!(
                out,
                "cairn_authorization_denials_total{{resource_type=\"{}\"}} {}",
                resource_type.name(),
                counter.load(Ordering::Relaxed)
            );
        }
    }
}

//! The audit log: every denial and every failed login as one structured event on the tracing
//! target `cairn::audit` (WARN), with the fields `principal`, `host`, `operation`,
//! `resource_type`, `resource_name` and `decision` (or `reason` for a login). Never a
//! password or any part of a credential.
//!
//! Rate-limited: at most [`AUDIT_EVENTS_PER_SEC`] events a second are written, so a client
//! looping on a denied call cannot flood the log; the count of those left out is written with
//! the next event that gets through. The counters in `/metrics` count every one.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cairn_controller::security::acl::{AclOperation, ResourceType};

/// Most audit events written per second.
pub const AUDIT_EVENTS_PER_SEC: u32 = 100;

/// The audit target's name, for log filters (`RUST_LOG=cairn::audit=info`).
pub const AUDIT_TARGET: &str = "cairn::audit";

#[derive(Debug)]
struct Window {
    started: Instant,
    written: u32,
    suppressed: u64,
}

/// The rate-limited audit writer.
#[derive(Debug)]
pub struct AuditLog {
    window: Mutex<Window>,
}

impl Default for AuditLog {
    fn default() -> Self {
        AuditLog {
            window: Mutex::new(Window {
                started: Instant::now(),
                written: 0,
                suppressed: 0,
            }),
        }
    }
}

impl AuditLog {
    /// `Some(events left out before this one)` if this event may be written now.
    fn admit(&self) -> Option<u64> {
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if now.duration_since(window.started) >= Duration::from_secs(1) {
            window.started = now;
            window.written = 0;
        }
        if window.written >= AUDIT_EVENTS_PER_SEC {
            window.suppressed += 1;
            return None;
        }
        window.written += 1;
        Some(std::mem::take(&mut window.suppressed))
    }

    /// Records a denied request.
    pub fn denied(
        &self,
        principal: &str,
        host: Option<IpAddr>,
        operation: AclOperation,
        resource_type: ResourceType,
        resource_name: &str,
    ) {
        if let Some(suppressed) = self.admit() {
            tracing::warn!(
                target: AUDIT_TARGET,
                principal,
                host = %host.map_or_else(|| "unknown".to_string(), |h| h.to_string()),
                operation = operation.name(),
                resource_type = resource_type.name(),
                resource_name,
                decision = "denied",
                suppressed,
                "request denied"
            );
        }
    }

    /// Records a failed login: the user name claimed (if any), never the secret.
    pub fn login_failed(&self, user: Option<&str>, host: Option<IpAddr>, reason: &str) {
        if let Some(suppressed) = self.admit() {
            tracing::warn!(
                target: AUDIT_TARGET,
                user = user.unwrap_or(""),
                host = %host.map_or_else(|| "unknown".to_string(), |h| h.to_string()),
                reason,
                decision = "unauthenticated",
                suppressed,
                "authentication failed"
            );
        }
    }
}

//! [`CoordinatorCache`]: which node coordinates each consumer group, as far as the client
//! knows. Filled from `FindCoordinator` answers, corrected by `NOT_COORDINATOR` hints, and
//! emptied for a group by `COORDINATOR_NOT_AVAILABLE` and by an unreachable coordinator, so the
//! next call asks `FindCoordinator` again.
//!
//! Pure state: no I/O, so every rule has a unit test; the router runs the calls. It does not
//! retry or wait: callers decide that from the [`Verdict`]. The one invariant: an error only
//! counts when it comes from the node the entry names (or when there is no entry), so a late
//! answer of a former coordinator never overwrites what a newer one said.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::v1::ErrorCode;

use super::leader_cache::LeaderCache;
use super::router::is_transport_failure;
use crate::error::ClientError;

/// First pause before retrying a group call that a coordinator move failed.
pub(crate) const COORDINATOR_RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Longest pause between two retries of a group call that a coordinator move failed.
pub(crate) const COORDINATOR_RETRY_BACKOFF_MAX: Duration = Duration::from_millis(250);

/// Most groups whose coordinator one client remembers. A consumer has one group; an admin
/// tool that walks thousands must not grow the map without bound, and a forgotten entry only
/// costs one `FindCoordinator` more.
pub(crate) const COORDINATOR_CACHE_GROUPS_MAX: usize = 1024;

/// What an error of a group call says about where the group's calls go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// `NOT_COORDINATOR` naming another node: the entry names it now; retry there at once.
    Moved,
    /// `NOT_COORDINATOR` without a usable hint, or `COORDINATOR_NOT_AVAILABLE`: the entry is
    /// gone; retry after a pause, asking `FindCoordinator` again.
    Forgotten,
    /// `COORDINATOR_LOAD_IN_PROGRESS`: the right node, not ready yet; retry there after a pause.
    Loading,
    /// The node could not be reached (refused, reset, timed out): the entry is gone. Another
    /// node may take over, but only in a cluster.
    Unreachable,
    /// An answer about the call itself (unknown member, bad group id...): nothing to learn.
    Unrelated,
}

/// The client's view of group coordinators: group id to the coordinator's address, as this
/// client reaches it.
#[derive(Debug, Default)]
pub(crate) struct CoordinatorCache {
    groups: HashMap<String, Arc<str>>,
}

impl CoordinatorCache {
    /// Where `group`'s calls go, if known.
    pub(crate) fn lookup(&self, group: &str) -> Option<Arc<str>> {
        self.groups.get(group).cloned()
    }

    /// Remembers that `address` coordinates `group`. At [`COORDINATOR_CACHE_GROUPS_MAX`]
    /// groups, another group's entry makes room.
    pub(crate) fn insert(&mut self, group: &str, address: Arc<str>) {
        if self.groups.len() >= COORDINATOR_CACHE_GROUPS_MAX
            && !self.groups.contains_key(group)
            && let Some(evicted) = self.groups.keys().next().cloned()
        {
            self.groups.remove(&evicted);
        }
        self.groups.insert(group.to_string(), address);
        debug_assert!(
            self.groups.len() <= COORDINATOR_CACHE_GROUPS_MAX,
            "{} groups cached",
            self.groups.len()
        );
    }

    /// Learns from `error`, which a call for `group` sent to `address` failed with. A hint
    /// (the error's "leader" metadata) is turned into the address this client reaches that
    /// node at by `reach`.
    pub(crate) fn on_error(
        &mut self,
        group: &str,
        address: &str,
        error: &ClientError,
        reach: impl FnOnce(&str) -> Arc<str>,
    ) -> Verdict {
        let (verdict, hint) = verdict(error, address, reach);
        let current = self
            .groups
            .get(group)
            .is_none_or(|known| **known == *address);
        match (verdict, hint) {
            (Verdict::Moved, Some(hint)) if current => self.insert(group, hint),
            (Verdict::Forgotten | Verdict::Unreachable, _) if current => {
                self.groups.remove(group);
            }
            _ => {}
        }
        verdict
    }
}

/// What `error` from `address` says, with the hinted coordinator for [`Verdict::Moved`].
fn verdict(
    error: &ClientError,
    address: &str,
    reach: impl FnOnce(&str) -> Arc<str>,
) -> (Verdict, Option<Arc<str>>) {
    match error.code() {
        Some(ErrorCode::NotCoordinator) => {
            let hint = match error {
                ClientError::Broker { leader, .. } => leader.as_deref().filter(|h| !h.is_empty()),
                _ => None,
            };
            match hint.map(reach) {
                // A node naming itself as the coordinator it is not contradicts itself: ask
                // FindCoordinator again rather than loop on it.
                Some(hint) if *hint != *address => (Verdict::Moved, Some(hint)),
                _ => (Verdict::Forgotten, None),
            }
        }
        Some(ErrorCode::CoordinatorNotAvailable) => (Verdict::Forgotten, None),
        Some(ErrorCode::CoordinatorLoadInProgress) => (Verdict::Loading, None),
        _ if is_transport_failure(error) => (Verdict::Unreachable, None),
        _ => (Verdict::Unrelated, None),
    }
}

/// The pause before retry number `retry` (0 for the first) of a group call that failed with
/// `error`, a coordinator error or an unreachable node. A `NOT_COORDINATOR` naming the
/// coordinator is retried there at once, unless the failure before was one too: two nodes
/// that name each other (each with a stale view) then cost a pause per round, not a busy loop.
/// Otherwise [`COORDINATOR_RETRY_BACKOFF`] doubling up to [`COORDINATOR_RETRY_BACKOFF_MAX`],
/// enough for an election (about a second) without flooding the node that has to hold it.
pub(crate) fn retry_pause(error: &ClientError, hinted_before: bool, retry: u32) -> Duration {
    if is_hint(error) && !hinted_before {
        return Duration::ZERO;
    }
    COORDINATOR_RETRY_BACKOFF
        .saturating_mul(2_u32.saturating_pow(retry.min(16)))
        .min(COORDINATOR_RETRY_BACKOFF_MAX)
}

/// True when `error` is a `NOT_COORDINATOR` that names the coordinator.
pub(crate) fn is_hint(error: &ClientError) -> bool {
    match error {
        ClientError::Broker {
            code: ErrorCode::NotCoordinator,
            leader: Some(hint),
            ..
        } => !hint.is_empty(),
        _ => false,
    }
}

/// The address this client reaches the coordinator `FindCoordinator` named (node `node_id`,
/// advertised at `advertised`) at, given that `answered_by` answered the question. `None`
/// when that takes a metadata read first: the node is not the one that answered, and no read
/// has listed the nodes, so the advertised address might name, under another name, a node the
/// client already has a channel to (a single node bound to `0.0.0.0`).
pub(crate) fn resolve(
    leaders: &LeaderCache,
    node_id: i32,
    advertised: &str,
    answered_by: &str,
) -> Option<Arc<str>> {
    if let Some(known) = leaders.node_address(node_id) {
        return Some(known);
    }
    if advertised == answered_by {
        return Some(Arc::from(answered_by));
    }
    leaders.knows_nodes().then(|| leaders.reach(advertised))
}

#[cfg(test)]
mod tests;

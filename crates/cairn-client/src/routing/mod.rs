//! Finding partition leaders in a cluster: which node each call goes to.
//!
//! Code map:
//! - `leader_cache`: the pure state (partition to leader address, nodes, staleness), filled
//!   from `GetMetadata` and corrected by `NOT_LEADER` hints and unreachable leaders;
//! - `coordinator_cache`: the pure state of group routing (group to coordinator address),
//!   filled from `FindCoordinator` and corrected by `NOT_COORDINATOR` hints and the other
//!   coordinator errors;
//! - `router`: the channels (one per node, lazily connected), metadata reads, the any-node
//!   channel with failover along the bootstrap list, and (its `coordinator` child) each
//!   group's calls to the group's coordinator;
//! - `offsets`: `ListOffsets` split by leader, for the consumers and the replay.
//!
//! The invariant every caller keeps: a failed partition call is reported to
//! [`Router::on_error`] (a group call to [`Router::on_coordinator_error`]) before it is
//! retried, so the retry goes where the error pointed.

mod coordinator_cache;
#[cfg(test)]
pub(crate) mod fake_cluster;
mod leader_cache;
mod offsets;
mod router;

pub(crate) use coordinator_cache::{is_hint, retry_pause};
pub use leader_cache::METADATA_MAX_AGE;
pub(crate) use offsets::list_offsets;
pub(crate) use router::{AuthChannel, Router, is_transport_failure};
pub use router::{COORDINATOR_RETRY_TIMEOUT, METADATA_REFRESH_INTERVAL, METADATA_REQUEST_TIMEOUT};

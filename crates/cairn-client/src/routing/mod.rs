//! Finding partition leaders in a cluster: which node each call goes to.
//!
//! Code map:
//! - `leader_cache`: the pure state (partition to leader address, nodes, staleness), filled
//!   from `GetMetadata` and corrected by `NOT_LEADER` hints and unreachable leaders;
//! - `router`: the channels (one per node, lazily connected), metadata reads, the any-node
//!   channel with failover along the bootstrap list;
//! - `offsets`: `ListOffsets` split by leader, for the consumers and the replay.
//!
//! The invariant every caller keeps: a failed partition call is reported to
//! [`Router::on_error`] before it is retried, so the retry goes where the error pointed.

mod leader_cache;
mod offsets;
mod router;

pub use leader_cache::METADATA_MAX_AGE;
pub(crate) use offsets::list_offsets;
pub(crate) use router::Router;
pub use router::{METADATA_REFRESH_INTERVAL, METADATA_REQUEST_TIMEOUT};

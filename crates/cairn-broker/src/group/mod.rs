//! Consumer groups (the model of Kafka's KIP-848) and their committed offsets.
//!
//! - `assignor`: the sticky, balanced assignor that computes a group's target assignment.
//! - `state`: one group's membership state machine: joins, heartbeats, leaves, session
//!   expiry, incremental revoke-then-assign, member epochs that fence zombies. Pure.
//! - `offset_record`: the key and value layout of `__consumer_offsets` records (Kafka's).
//! - `events`: the INFO log of joins, leaves, fencing, rebalances, offset resets and deletes.
//! - `group_id`: the rules for group and member ids.
//! - `coordinator`: the [`crate::Broker`] operations of a group's members: heartbeat, commit,
//!   fetch offsets; `group_admin`: an operator's: list, describe with lag, reset, delete;
//!   `types`: what they take and answer.
//! - `coordination`: which groups this node answers for; in a cluster, taking over and letting
//!   go of the groups of the `__consumer_offsets` partitions it comes to lead or stops leading.
//! - `offset_log`: `__consumer_offsets` as the store of committed offsets: load at open,
//!   records of a commit, applying a record (one code path for loading and committing).
//! - `offsets_gc`: a replicated `__consumer_offsets` kept bounded without compaction: each
//!   replica deletes its superseded prefix, and the coordinator commits old offsets again.

mod assignor;
mod coordination;
mod coordinator;
mod events;
mod group_admin;
mod group_id;
mod offset_log;
pub(crate) mod offset_record;
mod offsets_gc;
mod state;
mod types;

pub use assignor::{MemberSpec, TopicPartition, assign};
pub(crate) use coordination::follow_offsets_leadership;
pub(crate) use coordinator::Groups;
pub use group_id::{MAX_GROUP_ID_CHARS, validate_group_id};
pub use offset_record::{MAX_OFFSET_METADATA_BYTES, OffsetValue};
pub(crate) use offsets_gc::{Liveness, spawn_copy_forward};
pub use state::{
    DEFAULT_REBALANCE_TIMEOUT_MS, DEFAULT_SESSION_TIMEOUT_MS, GroupState, HeartbeatInput,
    HeartbeatOutput, MAX_SESSION_TIMEOUT_MS, MIN_SESSION_TIMEOUT_MS, MemberDescription,
};
pub use types::{
    CommittedOffset, GroupDescription, GroupListing, OffsetCommit, PartitionLag, ResetTo,
};

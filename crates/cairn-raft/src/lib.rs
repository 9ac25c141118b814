//! `cairn-raft`: Cairn's use of openraft, below the broker and above the log. Each replicated
//! partition (and the controller) is one Raft group whose log storage *is* a `cairn-log` segment
//! log: one Raft entry is one record batch, its term is the batch's partitionLeaderEpoch, and
//! entries without records (a new leader's no-op, membership changes) are meta entries that take
//! no offset. Nothing here knows tonic: node-to-node traffic goes through the [`PeerTransport`]
//! trait, which the server implements.
//!
//! Code map:
//! - `types`: the ids ([`NodeId`], [`GroupId`]), the node record ([`PeerNode`]), the entry
//!   payload ([`BatchData`]) and the partition group's openraft type config ([`PartitionRaft`]).
//! - `raft_log`: [`RaftLog`], one group's storage in its partition directory (the `cairn-log`
//!   log and writer thread, the vote, the purge point), shared by:
//! - `log_storage`: openraft's log storage over it ([`CairnLogStorage`]), generic over the type
//!   configs [`CairnRaftConfig`] names (partitions and the controller), with `entry_codec`
//!   turning entries into batches (normal entries) or meta entries (blank, membership);
//! - `partition_sm`: the partition's state machine ([`PartitionStateMachine`]): applying moves
//!   the high watermark, once the entries are durable on this node; snapshots are metadata only.
//! - `durable`: how far the log meets its flush policy, by offset and entry, which `acks=leader`,
//!   the state machine and `commit_bound` ([`CommitBound`]: the commit a leader tells followers,
//!   at most its own durable entries) wait for; together they let a leader ship entries while
//!   its own fsync runs (`CairnLogStorage::shipping_before_flush`).
//! - `vote_file`, `purge_file`, `applied_file` (over `checkpoint`): the small checksummed,
//!   atomically written Raft metadata files (`segments-format.md`, "Raft metadata files").
//! - `transport`: the [`PeerTransport`] contract (one call to one group on one peer, coalesced per
//!   node pair by the implementation) and [`InboundCalls`], where a node hands calls it received
//!   to its groups.
//! - `wire`: the bytes of openraft's messages (record batches travel as slices, not copies);
//!   `network`: openraft's network for one group over the shared transport; `groups`: the
//!   registry of hosted groups that answers peers' calls.
//! - `handover`: a leaving leader hands each group it leads to a caught-up follower
//!   ([`hand_over`]), or to one named follower ([`hand_over_to`], preferred-leader balancing);
//!   a follower stands for election only when its leader asks in the current
//!   term (the [`RpcKind::Campaign`] call).
//! - `fetch`: a replica holding damaged committed entries fetches good copies from a peer
//!   ([`RpcKind::FetchEntries`], answered only up to the peer's applied index, CRC-checked by
//!   the asker); `partition_group`: a partition group's handler of peers' calls
//!   ([`PartitionGroup`]), which serves those fetches from its log and refuses handover
//!   campaigns while its copy is damaged ([`Standing`]).
//! - `testing` (feature `testing`): an in-memory store and in-process transport for tests and
//!   measurements of many groups, and `testing::sim`, which runs a group under a seeded
//!   simulation of network faults, crashes and a virtual clock.

pub mod applied_file;
mod checkpoint;
pub mod commit_bound;
mod durable;
pub mod entry_codec;
pub mod error;
pub mod fetch;
pub mod groups;
pub mod handover;
pub mod log_storage;
pub mod membership_change;
pub mod network;
pub mod partition_group;
pub mod partition_sm;
pub mod purge_file;
pub mod raft_log;
pub mod snapshot_file;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod transport;
pub mod types;
pub mod vote_file;
pub mod wire;

pub use applied_file::AppliedState;
pub use commit_bound::CommitBound;
pub use entry_codec::CairnRaftConfig;
pub use error::RaftStorageError;
pub use fetch::{FetchError, fetch_entries};
pub use groups::{GroupRegistry, HostedGroup};
pub use handover::{HandoverOutcome, hand_over, hand_over_to};
pub use log_storage::{CairnLogReader, CairnLogStorage};
pub use membership_change::{MembershipChangeError, move_voters};
pub use network::GroupNetwork;
pub use partition_group::{PartitionGroup, Standing};
pub use partition_sm::{PartitionSnapshotBuilder, PartitionStateMachine};
pub use raft_log::{RaftLog, without_compaction};
pub use transport::{InboundCalls, PeerTransport, RpcKind, TransportError};
pub use types::{AppliedBatch, BatchData, GroupId, NodeId, PartitionRaft, PeerNode};

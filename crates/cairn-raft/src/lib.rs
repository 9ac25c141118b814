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
//! - `transport`: the [`PeerTransport`] contract (one call to one group on one peer, coalesced per
//!   node pair by the implementation) and [`InboundCalls`], where a node hands calls it received
//!   to its groups.
//! - `wire`: the bytes of openraft's messages (record batches travel as slices, not copies);
//!   `network`: openraft's network for one group over the shared transport; `groups`: the
//!   registry of hosted groups that answers peers' calls.
//! - `testing` (feature `testing`): an in-memory store and in-process transport for tests and
//!   measurements of many groups.

pub mod groups;
pub mod network;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod transport;
pub mod types;
pub mod wire;

pub use groups::{GroupRegistry, HostedGroup};
pub use network::GroupNetwork;
pub use transport::{InboundCalls, PeerTransport, RpcKind, TransportError};
pub use types::{BatchData, GroupId, NodeId, PartitionRaft, PeerNode};

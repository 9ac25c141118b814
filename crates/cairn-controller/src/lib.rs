//! `cairn-controller`: the cluster's metadata as a pure state machine. Commands committed by the
//! controller Raft group go in, the new metadata and the actions each node must take come out; no
//! sockets, files or clocks, so every rule is tested in memory.
//!
//! Code map:
//! - [`ClusterMetadata`] (`metadata.rs`): the state (cluster id, nodes, topics with their
//!   partitions' groups, replicas and reported leaders, producer-id blocks, the next ids) and its
//!   queries, [`ClusterMetadata::replicas_of`] among them.
//! - [`Command`] (`command.rs`): one controller-log entry and its versioned JSON encoding.
//! - `apply/`: [`ClusterMetadata::apply`], one file per family of commands.
//! - `placement.rs`: which nodes host a new partition and which one leads it.
//! - [`Reply`], [`Outcome`], [`Action`], [`ReplicaAssignment`]: what applying answers.
//! - `snapshot.rs`: the state as bytes for the controller group's snapshots, versioned too.
//! - [`security`] (`security/`): users with SCRAM credentials, Kafka-style ACLs and client quotas, their
//!   checks and the ACL matching rules; part of the metadata, and also kept by a single node.
//! - `invariants.rs`: the invariants as one check, run on every decoded snapshot.
//! - [`ControllerError`]: every refusal, typed.
//!
//! Invariants across modules:
//! - Applying is deterministic: no clock (times come in commands), no randomness, no hash-map
//!   order. Every node that applies the same committed log holds equal metadata and computes
//!   equal actions.
//! - A refused command changes nothing.
//! - Topic ids and group ids are never given twice, even after a delete; group 0 is the
//!   controller's own.
//!
//! Placement is decided by `apply`, not carried in the command. `apply` sees the state as of the
//! command's place in the log, so two creates proposed at the same time (or a node fenced in
//! between) are each placed against the state they will actually land on; a proposer's placement
//! would be computed on a state that may be stale by commit time and would have to be checked and
//! possibly refused anyway. The price is that the placement rule is part of the log format: a
//! change to it takes a new command format version (see [`Command`]), and the old rule stays for
//! old entries.
//!
//! Driving it: decode each committed entry with [`Command::decode`], call
//! [`ClusterMetadata::apply`], return the result as the entry's response, and act on the
//! [`Reply::actions`] that are [`Action::is_for`] this node. At start-up, or after installing a
//! snapshot ([`ClusterMetadata::from_snapshot`]), reconcile with
//! [`ClusterMetadata::replicas_of`].
//!
//! ```
//! use std::collections::BTreeMap;
//! use cairn_controller::{Action, ClusterMetadata, Command, PeerSpec};
//!
//! # fn main() -> Result<(), cairn_controller::ControllerError> {
//! let mut metadata = ClusterMetadata::new();
//! let peers = (1..=3).map(|node| PeerSpec { node, addr: format!("10.0.0.{node}:7070") });
//! let bootstrap = Command::Bootstrap { cluster_id: "c1".into(), peers: peers.collect(), at_ms: 0 };
//! // What the controller log holds, and what each node reads back from it:
//! metadata.apply(Command::decode(&bootstrap.encode())?)?;
//! let create = Command::CreateTopic {
//!     name: "orders".into(),
//!     partition_count: 3,
//!     replication_factor: 3,
//!     configs: BTreeMap::new(),
//! };
//! let reply = metadata.apply(create)?;
//! let mine: Vec<&Action> = reply.actions.iter().filter(|a| a.is_for(2)).collect();
//! assert_eq!(mine.len(), 3); // node 2 hosts a replica of each partition
//! assert_eq!(metadata.replicas_of(2).len(), 3);
//! assert_eq!(ClusterMetadata::from_snapshot(&metadata.to_snapshot())?, metadata);
//! # Ok(())
//! # }
//! ```

mod action;
mod apply;
mod command;
mod error;
mod ids;
mod invariants;
mod metadata;
mod node;
mod placement;
mod reply;
pub mod security;
mod snapshot;
mod topic;

pub use action::{Action, ReplicaAssignment};
pub use apply::{MAX_PRODUCER_ID, MAX_PRODUCER_ID_BLOCK_LEN};
pub use command::{COMMAND_FORMAT_VERSION, Command, PartitionMove, PeerSpec};
pub use error::{ControllerError, Encoded, IdKind, TopicNameRule};
pub use ids::{GroupId, NodeId, ProducerIdBlock, TopicId};
pub use metadata::{ClusterMetadata, PartitionRef};
pub use node::{NodeMeta, NodeState};
pub use reply::{Outcome, Reply};
pub use security::Security;
pub use snapshot::SNAPSHOT_FORMAT_VERSION;
pub use topic::{
    MAX_PARTITIONS_PER_TOPIC, MAX_TOPIC_NAME_CHARS, PartitionMeta, TopicMeta, check_topic_name,
};

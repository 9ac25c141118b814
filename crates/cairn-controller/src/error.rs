//! [`ControllerError`]: why a command was refused or bytes could not be decoded. A refused
//! command changes nothing, so the error is the whole story. The enum is serde so that the
//! controller group's Raft response (the result of applying a command) can carry it back to the
//! proposer; that is also why decode failures carry the parser's message as text rather than the
//! `serde_json::Error` itself.

use serde::{Deserialize, Serialize};

use crate::ids::{GroupId, NodeId, TopicId};

/// What a set of encoded bytes was meant to be, for decode errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoded {
    /// A [`Command`](crate::Command) from the controller log.
    Command,
    /// A [`ClusterMetadata`](crate::ClusterMetadata) snapshot.
    Snapshot,
}

impl std::fmt::Display for Encoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Encoded::Command => "controller command",
            Encoded::Snapshot => "controller snapshot",
        })
    }
}

/// Which counter ran out (after 2^64 ids; listed so that no `+ 1` can overflow silently).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdKind {
    /// [`TopicId`]s.
    Topic,
    /// Partition [`GroupId`]s.
    Group,
}

/// Which of Kafka's topic-name rules a name breaks (the broker checks the same rules; see
/// `cairn-broker/src/topic_name.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TopicNameRule {
    /// The name is empty.
    #[error("a topic name can't be empty")]
    Empty,
    /// The name is `.` or `..`.
    #[error("a topic name can't be \".\" or \"..\"")]
    Reserved,
    /// The name has more than [`MAX_TOPIC_NAME_CHARS`](crate::MAX_TOPIC_NAME_CHARS) characters.
    #[error("the name is {char_count} characters long; at most 249 are allowed")]
    TooLong {
        /// Characters in the name.
        char_count: usize,
    },
    /// The name holds a character outside `[a-zA-Z0-9._-]`.
    #[error("character {ch:?} at position {char_idx} is not allowed; use [a-zA-Z0-9._-]")]
    IllegalChar {
        /// The first illegal character.
        ch: char,
        /// Its 0-based position.
        char_idx: usize,
    },
}

/// Why the controller refused a command, or why bytes were not a command or snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ControllerError {
    /// A command other than `Bootstrap` came before the cluster was bootstrapped.
    #[error("the cluster is not bootstrapped yet")]
    NotBootstrapped,
    /// `Bootstrap` named another cluster than the one this metadata belongs to.
    #[error("this metadata belongs to cluster {held:?}, not {proposed:?}")]
    ClusterIdMismatch {
        /// The cluster id held.
        held: String,
        /// The cluster id in the command.
        proposed: String,
    },
    /// `Bootstrap` carried an empty cluster id.
    #[error("the cluster id can't be empty")]
    EmptyClusterId,
    /// `Bootstrap` carried no nodes.
    #[error("the peer list is empty")]
    EmptyPeerList,
    /// A peer list named a node id twice.
    #[error("node {node} appears twice in the peer list")]
    DuplicateNodeId {
        /// The repeated id.
        node: NodeId,
    },
    /// Two nodes would share one address.
    #[error("nodes {first} and {second} have the same address {addr:?}")]
    DuplicateNodeAddress {
        /// The shared address.
        addr: String,
        /// The node that has (or was listed with) the address first.
        first: NodeId,
        /// The other node.
        second: NodeId,
    },
    /// A node's address is empty.
    #[error("node {node} has an empty address")]
    EmptyNodeAddress {
        /// The node.
        node: NodeId,
    },
    /// A command named a node that is not registered.
    #[error("node {node} is not a registered node")]
    UnknownNode {
        /// The node.
        node: NodeId,
    },
    /// A topic name breaks a naming rule.
    #[error("invalid topic name {name:?}: {rule}")]
    InvalidTopicName {
        /// The name as given.
        name: String,
        /// The rule it breaks.
        rule: TopicNameRule,
    },
    /// `CreateTopic` named a topic that exists.
    #[error("topic {name:?} already exists ({topic_id})")]
    TopicExists {
        /// The name.
        name: String,
        /// The existing topic's id.
        topic_id: TopicId,
    },
    /// A command named a topic that does not exist.
    #[error("topic {name:?} does not exist")]
    UnknownTopic {
        /// The name.
        name: String,
    },
    /// A partition count outside `1..=max`.
    #[error("partition count {requested} is not in 1..={max}")]
    InvalidPartitionCount {
        /// The count asked for.
        requested: u32,
        /// [`MAX_PARTITIONS_PER_TOPIC`](crate::MAX_PARTITIONS_PER_TOPIC).
        max: u32,
    },
    /// `AddPartitions` asked for a total that is not above the current count.
    #[error("topic {name:?} has {current} partitions; the new total {requested} must be higher")]
    PartitionCountNotIncreased {
        /// The topic.
        name: String,
        /// Its partition count now.
        current: u32,
        /// The total asked for.
        requested: u32,
    },
    /// A replication factor below 1.
    #[error("the replication factor must be at least 1")]
    InvalidReplicationFactor,
    /// A replication factor above the number of nodes that can take replicas.
    #[error(
        "replication factor {requested} is above the {alive_node_count} alive nodes \
         ({registered_node_count} registered)"
    )]
    ReplicationFactorTooLarge {
        /// The factor asked for.
        requested: u16,
        /// Nodes that placement may use (state `Alive`).
        alive_node_count: usize,
        /// All registered nodes.
        registered_node_count: usize,
    },
    /// A leader report named a group no partition has (deleted, or never created).
    #[error("{group} is not a partition's group")]
    UnknownGroup {
        /// The group.
        group: GroupId,
    },
    /// A leader report named a node outside the group's replica set.
    #[error("node {node} is not a replica of {group}")]
    NotAReplica {
        /// The group.
        group: GroupId,
        /// The node.
        node: NodeId,
    },
    /// A leader report's in-sync set lacks the leader itself.
    #[error("the in-sync replicas reported for {group} lack its leader {leader}")]
    LeaderNotInIsr {
        /// The group.
        group: GroupId,
        /// The reported leader.
        leader: NodeId,
    },
    /// A leader report's in-sync set names a node twice.
    #[error("node {node} appears twice in the in-sync replicas reported for {group}")]
    DuplicateIsrMember {
        /// The group.
        group: GroupId,
        /// The repeated node.
        node: NodeId,
    },
    /// Two different leaders were reported for one epoch (Raft elects at most one per term).
    #[error("{group} epoch {epoch}: leader {held_leader} is held, {reported_leader} was reported")]
    ConflictingLeader {
        /// The group.
        group: GroupId,
        /// The epoch both reports name.
        epoch: u64,
        /// The leader held for that epoch.
        held_leader: NodeId,
        /// The other leader reported.
        reported_leader: NodeId,
    },
    /// `AlterTopicConfigs` both sets and deletes one key.
    #[error("config {key:?} is both set and deleted")]
    ConfigKeySetAndDeleted {
        /// The key.
        key: String,
    },
    /// A producer-id block length outside `1..=max`.
    #[error("producer-id block length {requested} is not in 1..={max}")]
    InvalidProducerIdBlockLen {
        /// The length asked for.
        requested: u64,
        /// [`MAX_PRODUCER_ID_BLOCK_LEN`](crate::MAX_PRODUCER_ID_BLOCK_LEN).
        max: u64,
    },
    /// The producer-id space (`0..=i64::MAX`, Kafka's) has fewer ids left than asked for.
    #[error("producer ids are exhausted: next free id {next_id}, {requested} asked for")]
    ProducerIdsExhausted {
        /// The next free id.
        next_id: u64,
        /// The block length asked for.
        requested: u64,
    },
    /// A counter reached its end.
    #[error("no {kind:?} ids are left")]
    IdSpaceExhausted {
        /// Which counter.
        kind: IdKind,
    },
    /// Bytes carried a format version this code does not read.
    #[error("{what} format version {found} is not supported (this build reads {supported})")]
    UnsupportedVersion {
        /// What the bytes were.
        what: Encoded,
        /// The version found.
        found: u64,
        /// The version this build reads.
        supported: u64,
    },
    /// Bytes were not valid JSON of the expected shape.
    #[error("{what} does not decode: {reason}")]
    Decode {
        /// What the bytes were.
        what: Encoded,
        /// The parser's message (line and column included).
        reason: String,
    },
    /// `AddNode` named an id the metadata already has.
    #[error("node id {node} is already in use by the node at {addr:?}; pick another id")]
    NodeIdInUse {
        /// The id.
        node: NodeId,
        /// The address of the node that has it.
        addr: String,
    },
    /// Removing the node would leave the cluster without nodes.
    #[error("node {node} is the cluster's last node; it can't be removed")]
    LastNode {
        /// The node.
        node: NodeId,
    },
    /// The node is already being removed.
    #[error("node {node} is already being removed")]
    NodeLeaving {
        /// The node.
        node: NodeId,
    },
    /// A removed node's replica has no node to move to: every other alive node already holds
    /// a copy of the partition, so removing it would leave the partition short of its
    /// replication factor.
    #[error(
        "removing node {node} would leave {topic}-{partition} with {remaining} of its \
         {replication_factor} replicas: no other alive node can take its copy; add a node first"
    )]
    NoReplacement {
        /// The node to remove.
        node: NodeId,
        /// The partition's topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// Replicas left without the node.
        remaining: usize,
        /// The topic's replication factor.
        replication_factor: u16,
    },
    /// A partition's reassignment has not finished, so another cannot start.
    #[error(
        "{topic}-{partition} is being reassigned already (to {target:?}); wait until it is done"
    )]
    ReassignmentInProgress {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// Where it is moving.
        target: Vec<NodeId>,
    },
    /// A reassignment names a partition the topic does not have.
    #[error(
        "topic {topic:?} has {partition_count} partitions; partition {partition} does not exist"
    )]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many it has.
        partition_count: u32,
    },
    /// A reassignment's replica count is not the topic's replication factor: fewer would lose
    /// copies, and the topic keeps one factor for all its partitions.
    #[error(
        "{topic}-{partition}: the plan lists {requested} replicas; the topic's replication \
         factor is {replication_factor}"
    )]
    ReplicaCountMismatch {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// Replicas in the plan.
        requested: usize,
        /// The topic's factor.
        replication_factor: u16,
    },
    /// A reassignment lists a node twice for one partition.
    #[error("{topic}-{partition}: node {node} appears twice in the plan")]
    DuplicateReplica {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The node.
        node: NodeId,
    },
    /// A reassignment moves a partition twice in one plan.
    #[error("{topic}-{partition} appears twice in the plan")]
    DuplicateMove {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
    /// A reassignment puts a copy on a node that is not alive (fenced or leaving).
    #[error("node {node} is {state}; it can't take new replicas")]
    NodeNotAlive {
        /// The node.
        node: NodeId,
        /// Its state, in words.
        state: String,
    },
    /// A reassignment plan with no moves.
    #[error("the reassignment plan has no moves")]
    EmptyPlan,
    /// `CompleteReassignment` for a group with no reassignment, or a membership that is not its
    /// target (a late or repeated report).
    #[error("{group} has no reassignment to {replicas:?} pending")]
    NoSuchReassignment {
        /// The group.
        group: GroupId,
        /// The membership reported.
        replicas: Vec<NodeId>,
    },
    /// `ForgetNode` for a node that is not leaving or still hosts copies.
    #[error("node {node} can't be forgotten yet: {reason}")]
    NodeNotRemovable {
        /// The node.
        node: NodeId,
        /// Why not.
        reason: String,
    },
    /// A snapshot decoded but breaks an invariant the state machine keeps.
    #[error("controller snapshot is inconsistent: {reason}")]
    CorruptSnapshot {
        /// The first invariant found broken.
        reason: String,
    },
    /// A user name or credential breaks the rules of `security/`.
    #[error("user {name:?}: {reason}")]
    InvalidUser {
        /// The user name as given.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// `DeleteUser` for a user that does not exist.
    #[error("user {name:?} does not exist")]
    UnknownUser {
        /// The name.
        name: String,
    },
    /// An ACL with a malformed field.
    #[error(transparent)]
    InvalidAcl(crate::security::acl::AclFieldError),
    /// A quota with a bad field: a limit below 1, none set, or a principal not `User:NAME`.
    #[error("quota field {field}: {reason}")]
    InvalidQuota {
        /// `principal`, `producer_byte_rate`, ...
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// `RemoveQuota` for an entity that has none.
    #[error("no quota for {entity}")]
    UnknownQuota {
        /// `User:NAME` or `<default>`.
        entity: String,
    },
}

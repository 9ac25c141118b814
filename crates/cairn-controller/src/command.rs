//! [`Command`]: one entry of the controller's Raft log, and its encoding.
//!
//! # Encoding (format version 1)
//!
//! A command is stored in the controller log as UTF-8 JSON bytes of one object with two fields:
//! `"v"`, the format version (an integer, `1` today), and `"cmd"`, the command as an object whose
//! `"type"` field names the variant in snake case, beside the variant's fields:
//!
//! ```json
//! {"v":1,"cmd":{"type":"create_topic","name":"orders","partition_count":3,
//!   "replication_factor":3,"configs":{"retention.ms":"86400000"}}}
//! ```
//!
//! Decoding reads `"v"` first and refuses a version it does not know
//! ([`ControllerError::UnsupportedVersion`]) rather than guess, and refuses unknown fields inside
//! a version-1 command, so a field added by a newer build is never silently dropped: a change to
//! the fields, or to what `apply` does with a committed command (placement included), takes a
//! new version, and a build keeps applying the old versions the old way for logs written before.
//! Maps are JSON objects with keys sorted; node ids are JSON integers.
//!
//! The user and ACL commands (`upsert_user`, `delete_user`, `create_acls`, `delete_acls`) are
//! new variants of version 1: they change no existing command's fields or meaning, so logs
//! written before them read as before. A build without them refuses such an entry as a decode
//! error, so every node of a cluster must run a build that has them before users or ACLs are
//! added. The same holds for the quota commands (`set_quota`, `remove_quota`,
//! `record_topic_creator`, `forget_topic_creator`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{ControllerError, Encoded};
use crate::ids::{GroupId, NodeId};
use crate::node::NodeState;

/// The command format version this build writes and reads.
pub const COMMAND_FORMAT_VERSION: u64 = 1;

/// A node of the static initial cluster, as `--peers` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSpec {
    /// The node's id.
    pub node: NodeId,
    /// `host:port` of its gRPC listener.
    pub addr: String,
}

/// A change to the cluster metadata, proposed by any node and applied by every node once the
/// controller group commits it. Times are carried in the command (ms since the Unix epoch, from
/// the proposer's clock) because applying must not read a clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Starts the cluster: its id and the static peer list. Applied again with the same cluster
    /// id it changes nothing (any node may propose it after a restart); with another id it is
    /// refused.
    Bootstrap {
        /// The cluster's id, fixed for its life.
        cluster_id: String,
        /// Every node of the initial cluster.
        peers: Vec<PeerSpec>,
        /// When it was proposed.
        at_ms: i64,
    },
    /// Adds a node, or moves a known node to a new address.
    RegisterNode {
        /// The node.
        node: NodeId,
        /// Its gRPC address.
        addr: String,
        /// When it was proposed.
        at_ms: i64,
    },
    /// Sets where clients reach a registered node (see [`crate::NodeMeta::client_addr`]):
    /// each node proposes its own `--advertised-address` once the cluster has formed, and
    /// `None` when it advertises its peer address.
    AdvertiseNode {
        /// The node.
        node: NodeId,
        /// Its client address, `HOST:PORT`, or `None` for its peer address.
        client_addr: Option<String>,
    },
    /// Marks a node alive or fenced (see [`NodeState`]).
    SetNodeState {
        /// The node.
        node: NodeId,
        /// Its new state.
        state: NodeState,
        /// When it was proposed.
        at_ms: i64,
    },
    /// Creates a topic. `apply` places its replicas (see the crate docs for why there).
    CreateTopic {
        /// The topic's name.
        name: String,
        /// Partitions, `1..=MAX_PARTITIONS_PER_TOPIC`.
        partition_count: u32,
        /// Replicas per partition, at least 1 and at most the alive nodes.
        replication_factor: u16,
        /// Topic configs (validated by the proposing broker).
        configs: BTreeMap<String, String>,
    },
    /// Deletes a topic; its groups' replicas are dropped.
    DeleteTopic {
        /// The topic's name.
        name: String,
    },
    /// Sets and removes topic configs (Kafka's incremental alter).
    AlterTopicConfigs {
        /// The topic's name.
        name: String,
        /// Keys to set, with their new values.
        set: BTreeMap<String, String>,
        /// Keys to remove (back to the default); keys not set are ignored.
        delete: Vec<String>,
    },
    /// Raises a topic's partition count; the new partitions are placed like a create.
    AddPartitions {
        /// The topic's name.
        name: String,
        /// The new total, above the current count.
        partition_count: u32,
    },
    /// A partition group's leader tells who leads it and who is in sync. Ignored if its epoch is
    /// older than the one held, so reports that arrive late do no harm.
    ReportLeader {
        /// The partition's group.
        group: GroupId,
        /// The leader.
        leader: NodeId,
        /// Its Raft term.
        epoch: u64,
        /// The replicas in sync with it, itself included.
        isr: Vec<NodeId>,
    },
    /// Adds a node to a running cluster (`cairn cluster add-node`): unlike `RegisterNode`, an id
    /// or address already in the metadata is refused, so a typo cannot move a live node. The
    /// controller leader then makes the node a member of the controller group.
    AddNode {
        /// The new node's id.
        node: NodeId,
        /// Its gRPC address (node-to-node traffic).
        addr: String,
        /// When it was proposed.
        at_ms: i64,
    },
    /// Starts removing a node (`cairn cluster remove-node`): it takes no new replicas, and each
    /// of its replicas is moved to another alive node (a reassignment per partition). Refused,
    /// with nothing moved, when some partition has no node to take its copy.
    RemoveNode {
        /// The node to remove.
        node: NodeId,
        /// When it was proposed.
        at_ms: i64,
    },
    /// Drops a removed node from the metadata once it hosts no replica; the controller leader
    /// proposes it after taking the node out of the controller group.
    ForgetNode {
        /// The node, in state `Leaving` and hosting nothing.
        node: NodeId,
    },
    /// Moves partitions to new replica sets (`cairn topic reassign`). Each partition's group
    /// leader adds the new replicas as learners, waits for them to catch up, changes the group's
    /// membership, and then proposes `CompleteReassignment`. All or nothing: one bad move refuses
    /// the whole plan.
    ReassignPartitions {
        /// The moves, at most one per partition.
        moves: Vec<PartitionMove>,
    },
    /// A partition group's membership now is its reassignment's target: the target becomes the
    /// replica set, and replicas left out drop their copies.
    CompleteReassignment {
        /// The partition's group.
        group: GroupId,
        /// The group's voters, as its leader committed them (must equal the target).
        replicas: Vec<NodeId>,
    },
    /// Hands a node the next block of idempotent-producer ids.
    AllocateProducerIds {
        /// The node that asks.
        node: NodeId,
        /// How many ids, `1..=MAX_PRODUCER_ID_BLOCK_LEN`.
        block_len: u64,
    },
    /// Adds a user or replaces its credential (`cairn user add`). The credential is derived
    /// by the proposer, which picks the salt; the password itself is never in the log.
    UpsertUser {
        /// The user name.
        name: String,
        /// Its SCRAM-SHA-256 credential.
        credential: crate::security::scram::ScramCredential,
    },
    /// Removes a user (`cairn user remove`); its ACLs stay.
    DeleteUser {
        /// The user name.
        name: String,
    },
    /// Adds ACLs, all or none (`cairn acl add`).
    CreateAcls {
        /// The ACLs.
        acls: Vec<crate::security::acl::AclBinding>,
    },
    /// Removes exactly these ACLs (`cairn acl remove`).
    DeleteAcls {
        /// The ACLs.
        acls: Vec<crate::security::acl::AclBinding>,
    },
    /// Sets the limits given for a principal or the default, keeping its others
    /// (`cairn quota set`).
    SetQuota {
        /// Whom for.
        entity: crate::security::quota::QuotaEntity,
        /// The limits to set.
        limits: crate::security::quota::QuotaLimits,
    },
    /// Removes every limit of a principal or of the default (`cairn quota remove`).
    RemoveQuota {
        /// Whom for.
        entity: crate::security::quota::QuotaEntity,
    },
    /// Records in the creation ledger that `principal` created `topic`, which has
    /// `partitions` partitions now (after a topic is created or grows).
    RecordTopicCreator {
        /// The topic.
        topic: String,
        /// `User:NAME`.
        principal: String,
        /// Its partitions.
        partitions: u64,
    },
    /// Forgets a deleted topic in the creation ledger (nothing if it is not there).
    ForgetTopicCreator {
        /// The topic.
        topic: String,
    },
}

/// One partition's new replica set in a [`Command::ReassignPartitions`] plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionMove {
    /// The topic's name.
    pub topic: String,
    /// The partition's index.
    pub partition: u32,
    /// The new replicas, as many as the topic's replication factor; the first is the new
    /// preferred leader.
    pub replicas: Vec<NodeId>,
}

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    v: u64,
    cmd: &'a Command,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeIn {
    #[serde(rename = "v")]
    _v: u64,
    cmd: Command,
}

/// Only the version, read before the rest so an unknown version is named as such rather than
/// reported as a shape error.
#[derive(Deserialize)]
pub(crate) struct VersionProbe {
    pub(crate) v: u64,
}

impl Command {
    /// Encodes the command as it goes into the controller log (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let envelope = EnvelopeOut {
            v: COMMAND_FORMAT_VERSION,
            cmd: self,
        };
        // Every field is a string, an integer or a map with string keys, which JSON always
        // represents, so serialization has no failing case.
        serde_json::to_vec(&envelope).expect("a command always serializes to JSON")
    }

    /// Decodes bytes written by [`Command::encode`].
    ///
    /// # Errors
    /// [`ControllerError::UnsupportedVersion`] for another format version;
    /// [`ControllerError::Decode`] for bytes that are not a version-1 command.
    pub fn decode(bytes: &[u8]) -> Result<Command, ControllerError> {
        check_version(bytes, Encoded::Command, COMMAND_FORMAT_VERSION)?;
        let envelope: EnvelopeIn =
            serde_json::from_slice(bytes).map_err(|e| decode_error(Encoded::Command, &e))?;
        Ok(envelope.cmd)
    }
}

/// Reads the `"v"` field of an encoded object and checks it is `supported`.
pub(crate) fn check_version(
    bytes: &[u8],
    what: Encoded,
    supported: u64,
) -> Result<(), ControllerError> {
    let probe: VersionProbe = serde_json::from_slice(bytes).map_err(|e| decode_error(what, &e))?;
    if probe.v == supported {
        Ok(())
    } else {
        Err(ControllerError::UnsupportedVersion {
            what,
            found: probe.v,
            supported,
        })
    }
}

pub(crate) fn decode_error(what: Encoded, error: &serde_json::Error) -> ControllerError {
    ControllerError::Decode {
        what,
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create() -> Command {
        Command::CreateTopic {
            name: "orders".into(),
            partition_count: 3,
            replication_factor: 3,
            configs: BTreeMap::from([("retention.ms".into(), "86400000".into())]),
        }
    }

    #[test]
    fn encoding_is_the_documented_json() {
        let text = String::from_utf8(create().encode()).unwrap();
        assert_eq!(
            text,
            r#"{"v":1,"cmd":{"type":"create_topic","name":"orders","partition_count":3,"replication_factor":3,"configs":{"retention.ms":"86400000"}}}"#
        );
    }

    #[test]
    fn every_command_round_trips() {
        let commands = [
            Command::Bootstrap {
                cluster_id: "c".into(),
                peers: vec![PeerSpec {
                    node: 1,
                    addr: "h:1".into(),
                }],
                at_ms: 5,
            },
            Command::RegisterNode {
                node: 2,
                addr: "h:2".into(),
                at_ms: 6,
            },
            Command::SetNodeState {
                node: 2,
                state: NodeState::Fenced,
                at_ms: 7,
            },
            Command::AdvertiseNode {
                node: 2,
                client_addr: Some("public:9092".into()),
            },
            Command::AdvertiseNode {
                node: 2,
                client_addr: None,
            },
            create(),
            Command::DeleteTopic { name: "t".into() },
            Command::AlterTopicConfigs {
                name: "t".into(),
                set: BTreeMap::new(),
                delete: vec!["a".into()],
            },
            Command::AddPartitions {
                name: "t".into(),
                partition_count: 4,
            },
            Command::ReportLeader {
                group: GroupId(9),
                leader: 1,
                epoch: u64::MAX,
                isr: vec![1, 2],
            },
            Command::AllocateProducerIds {
                node: 1,
                block_len: 1000,
            },
            Command::AddNode {
                node: 4,
                addr: "h:4".into(),
                at_ms: 8,
            },
            Command::RemoveNode { node: 4, at_ms: 9 },
            Command::ForgetNode { node: 4 },
            Command::ReassignPartitions {
                moves: vec![PartitionMove {
                    topic: "t".into(),
                    partition: 0,
                    replicas: vec![2, 3, 4],
                }],
            },
            Command::CompleteReassignment {
                group: GroupId(9),
                replicas: vec![2, 3, 4],
            },
            Command::UpsertUser {
                name: "alice".into(),
                credential: crate::security::scram::ScramCredential::derive(
                    b"pw",
                    b"saltsalt",
                    4096,
                ),
            },
            Command::DeleteUser {
                name: "alice".into(),
            },
            Command::CreateAcls {
                acls: vec![crate::security::acl::AclBinding {
                    principal: "User:alice".into(),
                    host: "*".into(),
                    operation: crate::security::acl::AclOperation::Write,
                    resource_type: crate::security::acl::ResourceType::Topic,
                    resource_name: "orders".into(),
                    pattern_type: crate::security::acl::PatternType::Prefixed,
                    permission: crate::security::acl::Permission::Deny,
                }],
            },
            Command::DeleteAcls { acls: vec![] },
            Command::SetQuota {
                entity: crate::security::quota::QuotaEntity::Principal("User:alice".into()),
                limits: crate::security::quota::QuotaLimits {
                    producer_byte_rate: Some(1 << 20),
                    max_topics: Some(4),
                    ..Default::default()
                },
            },
            Command::RemoveQuota {
                entity: crate::security::quota::QuotaEntity::Default,
            },
            Command::RecordTopicCreator {
                topic: "orders".into(),
                principal: "User:alice".into(),
                partitions: 3,
            },
            Command::ForgetTopicCreator {
                topic: "orders".into(),
            },
        ];
        for command in commands {
            assert_eq!(Command::decode(&command.encode()), Ok(command));
        }
    }

    #[test]
    fn another_version_is_refused_by_name() {
        let bytes = br#"{"v":2,"cmd":{"type":"something_new"}}"#;
        assert_eq!(
            Command::decode(bytes),
            Err(ControllerError::UnsupportedVersion {
                what: Encoded::Command,
                found: 2,
                supported: 1
            })
        );
    }

    #[test]
    fn unknown_fields_and_variants_and_garbage_are_decode_errors() {
        for bytes in [
            &br#"{"v":1,"cmd":{"type":"delete_topic","name":"t","extra":1}}"#[..],
            br#"{"v":1,"cmd":{"type":"launch_rockets"}}"#,
            br#"{"v":1,"cmd":{"type":"delete_topic","name":"t"},"more":0}"#,
            br#"{"v":1}"#,
            br#"{"cmd":{"type":"delete_topic","name":"t"}}"#,
            b"",
            b"\xff\xfe",
            br#"{"v":-1,"cmd":{}}"#,
        ] {
            assert!(
                matches!(Command::decode(bytes), Err(ControllerError::Decode { .. })),
                "{:?} decoded",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}

//! `BrokerError`: everything that can go wrong in the broker, with what an operator or a client
//! needs to act on it (the topic name, the config key and value, the file line). Errors from the
//! log cross into it through `From`, wrapped as a [`StorageError`] so the broker's API names no
//! `cairn-log` type.
//!
//! The enum is deliberately not `#[non_exhaustive]`: `cairn-server` maps each variant to a
//! status and a Kafka error code in one exhaustive `match`, so a new variant must be given one.

use cairn_codec::Offset;
use cairn_codec::batch::BatchError;
use cairn_log::LogError;

use crate::node_meta::NodeMetaError;
use crate::partition::LeaderHint;
use crate::storage_error::StorageError;
use crate::topic_name::TopicNameError;

/// An error from the broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A topic name breaks Kafka's rules (Kafka's `INVALID_TOPIC_EXCEPTION`).
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: TopicNameError,
    },
    /// A topic config key that Cairn does not know (Kafka's `INVALID_CONFIG`).
    #[error("unknown topic config key {key:?}")]
    UnknownConfig {
        /// The key as given.
        key: String,
    },
    /// A topic config value out of range or not parseable (Kafka's `INVALID_CONFIG`).
    #[error("invalid config {key} = {value:?}: {reason}")]
    InvalidConfig {
        /// The config key (Kafka's name).
        key: &'static str,
        /// The value given.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A persisted topic config file is larger than [`crate::MAX_CONFIG_FILE_BYTES`].
    #[error("topic config file is {size_bytes} bytes, more than the {max_bytes}-byte limit")]
    ConfigFileTooLarge {
        /// Size of the text given.
        size_bytes: usize,
        /// The limit.
        max_bytes: usize,
    },
    /// A line of a persisted topic config file is not `key=value`, or repeats a key.
    #[error("topic config file line {line_number}: {reason}")]
    MalformedConfigLine {
        /// 1-based line number.
        line_number: usize,
        /// What is wrong with the line.
        reason: &'static str,
    },
    /// A line of a persisted topic config file names an unknown key or holds a bad value.
    #[error("topic config file line {line_number}: {source}")]
    InvalidConfigLine {
        /// 1-based line number.
        line_number: usize,
        /// The [`BrokerError::UnknownConfig`] or [`BrokerError::InvalidConfig`] for the line.
        #[source]
        source: Box<BrokerError>,
    },
    /// The partition log failed; [`StorageError::kind`] says how.
    #[error(transparent)]
    Log(#[from] StorageError),
    /// No topic has that name (Kafka's `UNKNOWN_TOPIC_OR_PARTITION`).
    #[error("unknown topic {topic:?}")]
    UnknownTopic {
        /// The name asked for.
        topic: String,
    },
    /// The topic has no such partition (Kafka's `UNKNOWN_TOPIC_OR_PARTITION`).
    #[error("topic {topic:?} has no partition {partition} (it has {partition_count})")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i64,
        /// How many partitions the topic has.
        partition_count: u32,
    },
    /// A topic with that name exists (Kafka's `TOPIC_ALREADY_EXISTS`).
    #[error("topic {name:?} already exists")]
    TopicExists {
        /// The name.
        name: String,
    },
    /// A partition count is out of range (Kafka's `INVALID_PARTITIONS`).
    #[error("invalid partition count {requested} for topic {topic}: {reason}")]
    InvalidPartitions {
        /// The topic being created or grown: a client that creates or grows several at once
        /// must learn which one was refused.
        topic: String,
        /// The count asked for.
        requested: i64,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A create or partition increase would take this node past its limit on partitions
    /// (`--max-partitions`), which bounds the threads, files and maps partitions hold.
    #[error(
        "{requested} more partitions would exceed this node's limit of {limit} \
         (it holds {existing}, __consumer_offsets included)"
    )]
    TooManyPartitions {
        /// Partitions the request would add.
        requested: u32,
        /// Partitions the node holds now.
        existing: u64,
        /// The node's limit.
        limit: u32,
    },
    /// The data directory's filesystem has too little free space for the partitions a create
    /// would add ([`crate::PARTITION_DISK_BYTES`] each, plus [`crate::CREATE_MARGIN_BYTES`]).
    /// Nothing was created; retriable once space is freed.
    #[error(
        "not enough disk space in {data_dir} for {partition_count} partitions: \
         {needed_bytes} bytes needed (margin included), {available_bytes} free"
    )]
    InsufficientDiskSpace {
        /// The data directory.
        data_dir: std::path::PathBuf,
        /// Partitions the request would add.
        partition_count: u32,
        /// Bytes the create needs free.
        needed_bytes: u64,
        /// Bytes free.
        available_bytes: u64,
    },
    /// A topic's replication factor is below 1 or above the cluster's node count (Kafka's
    /// `INVALID_REPLICATION_FACTOR`).
    #[error(
        "invalid replication factor {requested}: the cluster has {node_count} node{} \
         (a replication factor must be from 1 to {node_count})",
        if *node_count == 1 { "" } else { "s" }
    )]
    InvalidReplicationFactor {
        /// The factor asked for.
        requested: i64,
        /// Nodes in the cluster.
        node_count: usize,
    },
    /// The data directory is not this node's, or its `node.meta` is unreadable (checked at
    /// open, before anything else in the directory is touched).
    #[error("{0}")]
    NodeMeta(#[from] NodeMetaError),
    /// A request is malformed (Kafka's `INVALID_REQUEST`).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A user name or password breaks the rules (`cairn user add`).
    #[error("user {name:?}: {reason}")]
    InvalidUser {
        /// The name as given.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// No such user.
    #[error("user {name:?} does not exist")]
    UnknownUser {
        /// The name.
        name: String,
    },
    /// An ACL with a malformed field (`cairn acl add`).
    #[error("ACL field {field}: {reason}")]
    InvalidAcl {
        /// `principal`, `host`, `resource_name`, ...
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A quota with a bad field (`cairn quota set`): a limit below 1, none set, or a
    /// principal not `User:NAME`.
    #[error("quota field {field}: {reason}")]
    InvalidQuota {
        /// `principal`, `producer_byte_rate`, ...
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// `cairn quota remove` for a principal (or the default) that has no quota.
    #[error("no quota for {entity}")]
    UnknownQuota {
        /// `User:NAME` or `<default>`.
        entity: String,
    },
    /// Creating a topic would take its creator past its `max_topics` or `max_partitions`
    /// quota (Kafka's `THROTTLING_QUOTA_EXCEEDED` for creations; refused, not delayed).
    #[error("quota {limit} of {principal} exceeded: {detail}")]
    CreationQuotaExceeded {
        /// `max_topics` or `max_partitions`.
        limit: String,
        /// `User:NAME`.
        principal: String,
        /// The count, the request and the limit.
        detail: String,
    },
    /// A broker metadata file could not be read or written.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The broker is shutting down.
    #[error("the broker is shutting down")]
    ShuttingDown,
    /// An admin operation a replicated topic does not take yet (its change must go through the
    /// controller so that every node applies it; issue 14 brings it). Nothing changed.
    #[error("{operation} is not supported yet for a replicated topic ({topic}); nothing changed")]
    NotYetReplicated {
        /// The operation.
        operation: &'static str,
        /// The topic.
        topic: String,
    },
    /// The cluster's controller did not take an admin command in time: no majority of the
    /// nodes is up, or an election is under way. Retriable; the command may still commit.
    #[error("the cluster controller is unavailable: {0}")]
    ControllerUnavailable(String),
    /// The partition takes no requests: its log would not open at start-up. It stays so until
    /// an operator repairs it and restarts the node; nothing was deleted.
    #[error("partition {topic}-{partition} is stopped: {reason}")]
    PartitionStopped {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// Why, as its log said at open.
        reason: String,
    },
    /// The append was proposed to the partition's Raft group, but this node lost the
    /// leadership (or stopped waiting) before learning whether it was committed: it may be in
    /// the log or not. Answered as `REQUEST_TIMED_OUT` (gRPC `DEADLINE_EXCEEDED`, which says
    /// the same: the change may have happened). Retriable: an idempotent producer's retry with
    /// the same sequence is answered with the original offsets if it was committed, and
    /// appended once if not; a producer must never give the batch's sequence numbers to other
    /// records, which a definitive refusal such as `NOT_LEADER` would allow.
    #[error("the append to {topic}-{partition} may or may not have been committed: {reason}")]
    AppendOutcomeUnknown {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// What cut the wait short.
        reason: String,
    },
    /// This node does not lead the partition, so it takes no produce or fetch for it (Kafka's
    /// `NOT_LEADER_OR_FOLLOWER`, error code 6). Retriable: the client refreshes its metadata,
    /// or goes straight to `leader` when given, and sends again. A single-node broker never
    /// answers it (it leads every partition it holds).
    #[error("this node does not lead {topic}-{partition}{}", leader_text(leader.as_ref()))]
    NotLeader {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The leader, when this node knows one; during an election, the candidate this
        /// node's vote names (`partition::likely_leader`).
        leader: Option<LeaderHint>,
    },
    /// In a cluster, this node does not coordinate the group: the leader of the group's
    /// partition of `__consumer_offsets` does. The client sends the call there (or asks which
    /// node that is) and retries.
    #[error("this node does not coordinate group {group:?}{}", leader_text(coordinator.as_ref()))]
    NotCoordinator {
        /// The group.
        group: String,
        /// The coordinator, when this node knows it.
        coordinator: Option<LeaderHint>,
    },
    /// No node coordinates the group right now: its offsets partition has no leader (an
    /// election is under way, or the cluster has not created `__consumer_offsets` yet).
    #[error(
        "no node coordinates group {group:?} right now: its offsets partition is electing a leader; retry shortly"
    )]
    CoordinatorNotAvailable {
        /// The group.
        group: String,
    },
    /// This node has just become the group's coordinator and is reading its committed offsets
    /// back from the replicated log.
    #[error("this node is loading the committed offsets of group {group:?}; retry shortly")]
    CoordinatorLoadInProgress {
        /// The group.
        group: String,
    },
    /// Clients may not write or administer an internal topic (Kafka's `INVALID_TOPIC_EXCEPTION`).
    #[error("topic {topic:?} is internal: only the broker writes it")]
    InternalTopic {
        /// The topic.
        topic: String,
    },
    /// A record without a key sent to a compacted topic, where it could never be compacted
    /// (Kafka's `INVALID_RECORD`).
    #[error(
        "topic {topic:?} is compacted (cleanup.policy includes compact): every record needs a key"
    )]
    KeylessRecordOnCompactedTopic {
        /// The topic.
        topic: String,
    },
    /// A request names one partition twice where each must be named once (a ListOffsets).
    #[error("partition {partition} of topic {topic} is asked for more than once: ask once")]
    DuplicatePartition {
        /// The topic.
        topic: String,
        /// The partition named twice.
        partition: i64,
    },
    /// A produced record's timestamp is below -1 (Kafka's `INVALID_TIMESTAMP`): Kafka's
    /// producer refuses any negative timestamp, and -1 is Kafka's "no timestamp".
    #[error(
        "record {record_idx} has timestamp {timestamp_ms}: use milliseconds since the Unix epoch, \
         0 for the broker's time now, or -1 for none"
    )]
    InvalidTimestamp {
        /// The record's position in the request, from 0.
        record_idx: usize,
        /// The timestamp it carried.
        timestamp_ms: i64,
    },
    /// A group id breaks the rules (Kafka's `INVALID_GROUP_ID`).
    #[error("invalid group id {group:?}: {reason}")]
    InvalidGroupId {
        /// The id as given.
        group: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// No group has that id (Kafka's `GROUP_ID_NOT_FOUND`).
    #[error("unknown group {group:?}")]
    UnknownGroup {
        /// The id asked for.
        group: String,
    },
    /// The member is not in the group: it left or its session timed out (Kafka's
    /// `UNKNOWN_MEMBER_ID`). It must rejoin.
    #[error("group {group:?} has no member {member:?} (it left or its session timed out)")]
    UnknownMember {
        /// The group.
        group: String,
        /// The member id given.
        member: String,
    },
    /// The member epoch is not one the coordinator gave this member (Kafka's
    /// `FENCED_MEMBER_EPOCH`): the member is a zombie and must rejoin.
    #[error(
        "member {member:?} of group {group:?} is fenced: epoch {epoch}, current epoch {current}"
    )]
    FencedMemberEpoch {
        /// The group.
        group: String,
        /// The member.
        member: String,
        /// The epoch given.
        epoch: i32,
        /// The member's epoch.
        current: i32,
    },
    /// The member epoch predates the epoch the partition was granted at (Kafka's
    /// `STALE_MEMBER_EPOCH`): heartbeat, then retry.
    #[error(
        "member {member:?} of group {group:?}: epoch {epoch} is stale, the partition needs epoch {required}"
    )]
    StaleMemberEpoch {
        /// The group.
        group: String,
        /// The member.
        member: String,
        /// The epoch given.
        epoch: i32,
        /// The epoch the partition was granted at.
        required: i32,
    },
    /// The member does not own the partition it commits or fetches for.
    #[error("member {member:?} of group {group:?} does not own {topic}-{partition}")]
    PartitionNotAssigned {
        /// The group.
        group: String,
        /// The member.
        member: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
    /// The operation needs a group with no members (Kafka's `NON_EMPTY_GROUP`).
    #[error("group {group:?} has {members} active member(s); stop them first")]
    NonEmptyGroup {
        /// The group.
        group: String,
        /// How many members it has.
        members: usize,
    },
    /// A reset or delete of the group is in progress; a join may retry at once.
    #[error("group {group:?} is being reset or deleted; retry")]
    GroupBusy {
        /// The group.
        group: String,
    },
    /// The metadata committed with an offset is too long (Kafka's `OFFSET_METADATA_TOO_LARGE`).
    #[error("offset metadata is {len} bytes, more than the {max}-byte limit")]
    OffsetMetadataTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An offset to commit or reset to lies outside the partition (Kafka's
    /// `OFFSET_OUT_OF_RANGE`).
    #[error(
        "offset {offset} is outside {topic}-{partition}'s range {log_start_offset}..={high_watermark}"
    )]
    OffsetNotInRange {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The offset given.
        offset: i64,
        /// The partition's log start offset.
        log_start_offset: i64,
        /// The partition's high watermark.
        high_watermark: i64,
    },
    /// A batch names a producer id this broker never issued (Kafka's `UNKNOWN_PRODUCER_ID`):
    /// idempotent producers get their id from `InitProducerId`.
    #[error("producer id {producer_id} was never issued by this broker: call InitProducerId")]
    UnknownProducerId {
        /// The id the batch carries.
        producer_id: i64,
    },
    /// A batch has the transactional bit set (attributes bit 4): Cairn has no transaction
    /// coordinator, so it refuses such batches rather than store records no one can commit.
    #[error(
        "transactional batches are not supported (attributes bit 4 is set): produce without a transactional id"
    )]
    TransactionsUnsupported,
    /// A stored batch passed its CRC but its records break the consumer's rule (a record that
    /// does not parse, or an offset delta outside the batch): corrupt data, never served.
    #[error("corrupt records in the stored batch at offset {base_offset}: {reason}")]
    CorruptRecords {
        /// The batch's base offset.
        base_offset: Offset,
        /// What is wrong.
        reason: BatchError,
    },
}

/// The end of a [`BrokerError::NotLeader`] message: who leads, as far as this node knows.
fn leader_text(leader: Option<&LeaderHint>) -> String {
    match leader {
        Some(LeaderHint {
            node_id,
            address: Some(address),
        }) => format!("; node {node_id} at {address} does"),
        Some(LeaderHint {
            node_id,
            address: None,
        }) => format!("; node {node_id} does"),
        None => "; no leader is known yet".to_string(),
    }
}

impl From<LogError> for BrokerError {
    fn from(err: LogError) -> BrokerError {
        BrokerError::Log(StorageError::from(err))
    }
}

impl BrokerError {
    /// The log's error inside, if this is one: for the broker's own decisions.
    pub(crate) fn log_error(&self) -> Option<&LogError> {
        match self {
            BrokerError::Log(storage) => Some(storage.log()),
            _ => None,
        }
    }

    /// An I/O error with its operation and path.
    pub fn io(op: &'static str, path: &std::path::Path, source: std::io::Error) -> BrokerError {
        BrokerError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_line_errors_name_the_line_and_keep_the_cause() {
        let err = BrokerError::InvalidConfigLine {
            line_number: 7,
            source: Box::new(BrokerError::UnknownConfig {
                key: "no.such".to_string(),
            }),
        };
        let text = err.to_string();
        assert!(
            text.contains("line 7") && text.contains("no.such"),
            "{text}"
        );
        let source = std::error::Error::source(&err).expect("the line error keeps its cause");
        assert!(source.to_string().contains("no.such"));
    }

    #[test]
    fn not_leader_names_the_leader_when_known() {
        let err = |leader| BrokerError::NotLeader {
            topic: "orders".into(),
            partition: 2,
            leader,
        };
        let known = err(Some(LeaderHint {
            node_id: 3,
            address: Some("10.0.0.3:7070".into()),
        }))
        .to_string();
        assert!(
            known.contains("orders-2") && known.contains("10.0.0.3:7070"),
            "{known}"
        );
        let unknown = err(None).to_string();
        assert!(unknown.contains("no leader"), "{unknown}");
    }
}

//! `cairn-broker`: topics and partitions over `cairn-log`. Knows nothing of tonic or sockets.
//!
//! Code map:
//! - The partitioner comes from `cairn-codec` and is re-exported: [`partition_for_key`] is
//!   Kafka's default (murmur2 of the key), so Cairn picks the partition a Kafka client (or the
//!   Cairn client, which partitions before batching) would; [`StickyPartitioner`] spreads
//!   keyless records a batch at a time (KIP-480).
//! - `topic_name`: Kafka's topic-name rules ([`TopicName`], [`validate_topic_name`]) and the
//!   internal-topic convention (`__consumer_offsets`).
//! - `topic_config`: [`TopicConfig`], the per-topic settings under Kafka's names: every
//!   [`cairn_log::LogConfig`] key plus `cleanup.policy`, `delete.retention.ms` and
//!   `message.timestamp.type`, and the `key=value` file they are persisted in;
//!   `topic_details`: what describe adds, each config's [`ConfigSource`] and partition sizes.
//! - `producer_state`: [`ProducerStates`], the idempotent-producer sequence rules (KIP-98) of
//!   one partition: retries answered with their original offsets, gaps and zombies refused.
//! - `broker`: [`Broker`], this node's topics and the admin operations on them;
//!   `node_identity`: [`NodeIdentity`], who this node is to clients (id and address), the source
//!   of every leader and node list the broker reports.
//! - `partition/`: the seam between the broker and a partition's log. `Partition`'s
//!   operations (append with an [`AckLevel`], read up to the high watermark, wait for it,
//!   offsets, leader and epoch, health) are all the rest of the broker uses; `local.rs` is the
//!   single-copy implementation (group-committing writer, idempotent-producer filter,
//!   sequencer), `replicated.rs` the Raft-replicated one, whose `heal.rs` rewrites damaged
//!   committed entries with a peer's copies (`heal_span.rs`) while the copy stands for no
//!   election. Reads come back as [`FetchedBatches`], zero-copy slices of the segments.
//! - `storage_error`: [`StorageError`], a log failure as the broker's API shows it (with a
//!   [`StorageErrorKind`] for callers to classify), so no `cairn-log` type crosses the API.
//! - `topic_store`: topic files on disk
//!   (`DATA/<topic>.topic`, logs in `DATA/<topic>-<partition>/`, Kafka's layout), and the
//!   removal of what a crash mid-create left; `disk_space`: the free-space check before a
//!   create.
//! - `sequencer`: queues an idempotent producer's batches for a partition's writer in
//!   sequence order, although gRPC may serve the requests carrying them out of order.
//! - `produce`: routing records to partitions, encoding them, appending; `fetch`: the fetch
//!   rules (the group-fencing check, long-poll reads with a max wait and min bytes), record
//!   decoding, offset lookups; `subscription`: [`Subscription`], the subscribe loop over the
//!   same long poll; `record_age`: the age of a group's next
//!   unconsumed record (lag in seconds), one batch read per call.
//! - `group`: consumer groups: the assignor, the membership state machine (KIP-848), and
//!   the coordinator that keeps committed offsets in `__consumer_offsets`.
//! - `producer_snapshot`: the idempotent-producer state saved every few megabytes and at close,
//!   so opening a partition reads a bounded tail of its log.
//! - `scrub`: one rate-limited pass over every log after start-up that finds damage at rest.
//! - `cluster_spec`: [`ClusterSpec`], the static cluster a node starts in (its id, the peer
//!   list, the Raft timings, the default replication factor), parsed and checked, pure;
//!   `node_meta`: `DATA/node.meta`, which node (and cluster) the data directory belongs to,
//!   checked at open before anything else in the directory is touched.
//! - `security_admin`: users and ACLs, in the cluster metadata or (a cluster of one) in
//!   `DATA/security.json` (`security_store`), read as a [`SecurityView`].
//! - `error`: [`BrokerError`], the crate's one error enum.
//! - `fuzzing` (hidden): entry points for `fuzz/` into private decoders (offset records, the
//!   text of a topic file). Not an API.
//!
//! Damage stays in its partition: a log that will not open leaves that partition stopped, a
//! damaged batch is stepped over when state is rebuilt and answered `CorruptBatch` when read,
//! and [`Broker::problems`] names every such partition. Nothing of it stops the node. A
//! replicated copy heals its damage from a peer and is then reported well again.
//!
//! Invariants across modules:
//! - The topic-name, topic-config and producer-state modules are pure: no I/O, no clock, no global random number generator.
//!   Randomness comes in through [`RandomSource`], text comes in as `&str`, so every decision
//!   can be replayed in a test.
//! - Names and values from outside (requests, files) are checked here and rejected with a
//!   [`BrokerError`] naming what is wrong; nothing on those paths panics.

mod broker;
pub mod cluster;
mod cluster_spec;
#[cfg(test)]
mod compaction_tests;
mod disk_space;
mod error;
mod fetch;
#[doc(hidden)]
pub mod fuzzing;
mod group;
mod node_identity;
pub mod node_meta;
mod partition;
mod produce;
mod producer_filter;
mod producer_ids;
mod producer_snapshot;
mod producer_state;
mod record_age;
mod scrub;
mod security_admin;
mod security_store;
mod sequencer;
mod storage_error;
mod subscription;
mod topic_config;
mod topic_details;
mod topic_name;
mod topic_open;
mod topic_store;

pub use broker::{
    Broker, BrokerConfig, DEFAULT_MAX_PARTITIONS, DEFAULT_OFFSETS_TOPIC_PARTITIONS,
    MAX_PARTITIONS_PER_TOPIC, PartitionInfo, TopicInfo,
};
pub use cairn_codec::{
    LeaderEpoch, Offset, RandomSource, StickyPartitioner, XorShift64, murmur2, partition_for_key,
    to_positive,
};
/// The clock the broker reads time from (`Broker::open` takes one), re-exported from
/// `cairn-log` so callers need no dependency on the log to give it.
pub use cairn_log::{Clock, ManualClock, SystemClock};
/// The process-wide histogram of segment `fdatasync` durations, re-exported from `cairn-log`
/// for the server's `/metrics` (the broker adds nothing to it).
pub use cairn_log::{FSYNC_BUCKET_UPPER_NANOS, FsyncLatency, FsyncSnapshot, fsync_latency};
pub use cluster::PartitionPlan;
pub use cluster_spec::{
    ClusterSpec, ClusterSpecError, DEFAULT_ELECTION_TIMEOUT_MAX_MS,
    DEFAULT_ELECTION_TIMEOUT_MIN_MS, DEFAULT_HEARTBEAT_MS, DEFAULT_LEADER_BALANCE_INTERVAL_MS,
    DEFAULT_MOVES_PER_PASS, DEFAULT_NODE_ID, DEFAULT_REPLICATION_FACTOR_CAP, LeaderBalanceSettings,
    MAX_ELECTION_TIMEOUT_MS, MAX_LEADER_BALANCE_INTERVAL_MS, MAX_NODE_ID, MAX_PEERS,
    OFFSETS_TOPIC_SEGMENT_BYTES, RaftTimings, SETTLE_INTERVALS, host_port_problem, parse_node_id,
    parse_peers, peers_from_entries,
};
pub use disk_space::{CREATE_MARGIN_BYTES, PARTITION_DISK_BYTES};
pub use error::BrokerError;
pub use fetch::{
    DEFAULT_FETCH_MAX_BYTES, FetchRequest, FetchedRecord, GroupFetch, MAX_FETCH_MAX_BYTES,
    MAX_FETCH_WAIT, OffsetQuery, PartitionOffsetLookup, decode_records,
};
pub use group::{
    CommittedOffset, DEFAULT_REBALANCE_TIMEOUT_MS, DEFAULT_SESSION_TIMEOUT_MS, GroupDescription,
    GroupListing, GroupState, HeartbeatInput, HeartbeatOutput, MAX_GROUP_ID_CHARS,
    MAX_OFFSET_METADATA_BYTES, MAX_SESSION_TIMEOUT_MS, MIN_SESSION_TIMEOUT_MS, MemberDescription,
    MemberSpec, OffsetCommit, OffsetValue, PartitionLag, ResetTo, TopicPartition, assign,
    validate_group_id,
};
pub use node_identity::NodeIdentity;
pub use partition::{
    Damage, FetchedBatches, LeaderHint, Leadership, PartitionCondition, PartitionProblem,
};
pub use produce::{
    AckLevel, PartitionProduced, ProducePayload, ProduceRecord, ProduceRequest, ProduceResult,
};
pub use producer_filter::{PRODUCER_SNAPSHOT_INTERVAL_BYTES, SequenceError};
pub use producer_ids::PRODUCER_ID_BLOCK;
pub use producer_state::{
    BATCHES_REMEMBERED, DEFAULT_PRODUCER_ID_EXPIRATION, ProducerBatch, ProducerExpiration,
    ProducerStates, SequenceCheck,
};
pub use scrub::{DEFAULT_SCRUB_BYTES_PER_SEC, ScrubReport};
pub use security_admin::SecurityView;
pub use sequencer::MAX_ORDERING_WAIT;
pub use storage_error::{StorageError, StorageErrorKind};
pub use subscription::{SUBSCRIBE_POLL, SubscribeRequest, Subscription};
pub use topic_config::{CleanupPolicy, MAX_CONFIG_FILE_BYTES, TimestampType, TopicConfig};
pub use topic_details::{ConfigSource, config_sources};
pub use topic_name::{
    CONSUMER_OFFSETS_TOPIC, INTERNAL_TOPIC_PREFIX, MAX_TOPIC_NAME_CHARS, TopicName, TopicNameError,
    collides_with, has_collision_chars, is_internal, validate_topic_name,
};

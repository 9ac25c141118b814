//! `cairn-client`: the Rust client of Cairn over the `cairn.v1` gRPC API. It depends on the
//! generated API types and on `cairn-codec` (the batch format and partitioner it shares with
//! the broker), never on the server crates.
//!
//! Code map:
//! - `connection`: reaching the first answering broker of a `host:port` list, under
//!   [`Timeouts`] (connect, and optionally every request: a broker that accepts and never
//!   answers then fails calls with `RequestTimedOut` instead of hanging them);
//! - `routing`: which node each call goes to in a cluster: a partition's calls to its leader
//!   (from `GetMetadata`, corrected by `NOT_LEADER` hints), a group's calls to its coordinator
//!   (from `FindCoordinator`, corrected by `NOT_COORDINATOR` hints), the rest to any node,
//!   failing over along the bootstrap list. Every client below is built on it;
//! - [`Admin`]: topic administration;
//! - [`Producer`]: batches records per partition (linger, size), partitions keys with Kafka's
//!   murmur2, retries with backoff under a delivery timeout, idempotent by default;
//! - [`Consumer`]: reads assigned partitions from a [`Seek`] position by long polls, as
//!   broker-decoded records or as raw batches decoded here ([`FetchedBatches`]);
//! - `fetch_ahead`: the one fetch each consumer sends before the poll that wants it;
//! - `batches`, `record_view`: checking and walking fetched RecordBatch v2 bytes in place, and
//!   the borrowed [`RecordView`] both consumers hand out;
//! - [`Replay`]: event-sourcing catch-up of a whole topic to the end offsets captured at start,
//!   with progress, a [`Checkpoint`] to resume from, and an optional follow mode;
//! - [`GroupConsumer`]: a consumer-group member: the broker assigns partitions, it commits
//!   what it polled (auto-commit on an interval, on revoke and on close), with rebalance
//!   callbacks ([`RebalanceListener`]);
//! - [`GroupAdmin`]: list, describe (with lag), reset offsets of, and delete groups;
//! - [`check_health`]: the standard gRPC health check of one broker; [`node_health`]: which of
//!   its partitions are stopped or damaged;
//! - [`ClientError`]: every failure, with the broker's stable error code when it sent one.
//!
//! The CLI's client commands are built on this crate.

mod admin;
mod batches;
mod connection;
mod consumer;
mod credentials;
mod dial;
mod error;
mod fetch_ahead;
mod group;
mod group_admin;
mod grpc_stream;
mod health;
mod produce_channel;
mod producer;
mod record_view;
mod replay;
mod routing;
mod stream_channel;
mod tls;

pub use admin::Admin;
pub use batches::{FetchedBatches, FetchedRecords};
pub use cairn_codec::batch::Compression;
pub use cairn_codec::batch::MAX_DECOMPRESSED_BATCH_BYTES;
pub use cairn_proto::v1::Acks;
pub use cairn_proto::v1::{
    Acl, BalanceLeadersResponse, ClusterNode, CommittedOffset, DescribeClusterResponse, ErrorCode,
    GroupDescription, GroupListing, GroupMember, GroupState, LeaderMoved, LeaderNotMoved,
    LeaderNotMovedReason, NodeReachability, PartitionDescription, PartitionLag, QuotaDescription,
    QuotaEntity, QuotaLimits, TopicDescription, UserDescription, quota_entity,
};
pub use connection::{CONNECT_TIMEOUT, DEFAULT_BROKER_PORT, Timeouts, connect, connect_with};
pub use consumer::{ConsumedRecord, Consumer, MAX_RESPONSE_BYTES, POLL_MAX_BYTES, Seek};
pub use credentials::Credentials;
pub use error::{ClientError, ConnectAttempt};
pub use group::{
    GroupConsumer, GroupConsumerConfig, NoopListener, OffsetReset, RebalanceListener,
    TopicPartition,
};
pub use group_admin::GroupAdmin;
pub use health::{
    HealthStatus, PartitionTrouble, check_health, check_health_with, node_health, node_health_with,
};
pub use producer::{
    DEFAULT_DELIVERY_TIMEOUT, DeliveryFuture, MAX_IN_FLIGHT_IDEMPOTENT, METADATA_MAX_AGE,
    OutgoingRecord, Placement, Producer, ProducerConfig, ProducerStats, RequestFailure,
};
pub use record_view::{RecordHeaders, RecordView};
pub use replay::{
    CHECKPOINT_FORMAT_LINE, Checkpoint, DEFAULT_FETCH_MAX_BYTES, DEFAULT_MAX_PARTITIONS_IN_FLIGHT,
    DEFAULT_PREFETCH_CHUNKS, MAX_CHECKPOINT_PARTITIONS, MAX_FETCH_MAX_BYTES, PartitionProgress,
    RETRY_ATTEMPTS, RETRY_BACKOFF_INITIAL, RETRY_BACKOFF_MAX, Replay, ReplayChunk, ReplayConfig,
    ReplayFormat, ReplayProgress,
};
pub use routing::{COORDINATOR_RETRY_TIMEOUT, METADATA_REFRESH_INTERVAL, METADATA_REQUEST_TIMEOUT};
pub use tls::ClientTls;

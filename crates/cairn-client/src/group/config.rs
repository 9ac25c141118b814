//! The settings of a group consumer, under Kafka's names, and the rebalance callbacks.

use std::time::Duration;

use crate::connection::Timeouts;

/// One partition of a topic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

/// Where to start a partition the group has no committed offset for (Kafka's
/// `auto.offset.reset`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OffsetReset {
    /// The log start offset.
    Earliest,
    /// The high watermark: only records produced from now on.
    #[default]
    Latest,
}

/// How a [`crate::GroupConsumer`] behaves.
#[derive(Clone, Debug)]
pub struct GroupConsumerConfig {
    /// The group (`group.id`).
    pub group_id: String,
    /// The client's name, shown by `cairn group describe` (`client.id`).
    pub client_id: String,
    /// Where to start partitions without a committed offset (`auto.offset.reset`).
    pub auto_offset_reset: OffsetReset,
    /// Commit the positions of what `poll` returned, every `auto_commit_interval` and on
    /// rebalance and close (`enable.auto.commit`). At-least-once: a crash replays at most the
    /// records polled since the last commit.
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms`.
    pub auto_commit_interval: Duration,
    /// How long the broker waits for a heartbeat before it gives this member's partitions to
    /// others (`session.timeout.ms`; the group adopts the newest join's value).
    pub session_timeout: Duration,
    /// How long this member may take to give up revoked partitions (`rebalance.timeout.ms`).
    pub rebalance_timeout: Duration,
    /// Bound on the bytes of one fetch per partition (`max.partition.fetch.bytes`).
    pub max_partition_fetch_bytes: i32,
    /// Deadlines on connecting and on each heartbeat, fetch and commit (`request.timeout.ms`;
    /// a request deadline must exceed the `max_wait` of every poll). Default: no request
    /// deadline.
    pub timeouts: Timeouts,
}

impl GroupConsumerConfig {
    /// Kafka's defaults for group `group_id`.
    pub fn new(group_id: impl Into<String>) -> GroupConsumerConfig {
        GroupConsumerConfig {
            group_id: group_id.into(),
            client_id: "cairn-client".to_string(),
            auto_offset_reset: OffsetReset::Latest,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            session_timeout: Duration::from_secs(45),
            rebalance_timeout: Duration::from_secs(60),
            max_partition_fetch_bytes: 1 << 20,
            timeouts: Timeouts::default(),
        }
    }
}

/// Told of every change of this member's partitions, inside `poll`, before records of a newly
/// assigned partition are returned and after the last records of a revoked one were (Kafka's
/// `ConsumerRebalanceListener`).
pub trait RebalanceListener: Send {
    /// Partitions this member now owns. Their positions are set (from the committed offsets,
    /// or `auto_offset_reset`).
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }

    /// Partitions this member gives up in an orderly rebalance; with auto-commit their
    /// positions were committed just before.
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }

    /// Partitions this member lost without a chance to commit (it was fenced: its session
    /// timed out, or the broker forgot it). Another member may already own them.
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }
}

/// A listener that does nothing.
#[derive(Debug, Default)]
pub struct NoopListener;

impl RebalanceListener for NoopListener {}

//! What the coordinator's operations take and answer: offsets to commit and as committed,
//! where a reset goes, group listings and descriptions with lag.

use super::assignor::TopicPartition;
use super::offset_record::OffsetValue;
use super::state::{GroupState, MemberDescription};

/// One offset to commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommit {
    /// The topic and partition.
    pub partition: TopicPartition,
    /// The next offset to consume.
    pub offset: i64,
    /// Text kept with it.
    pub metadata: String,
}

/// A committed offset as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The topic and partition.
    pub partition: TopicPartition,
    /// The committed offset and its metadata, or `None` when the group has none.
    pub committed: Option<OffsetValue>,
}

/// Where `reset_offsets` moves a group's offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetTo {
    /// The log start offset.
    Earliest,
    /// The high watermark.
    Latest,
    /// An offset within the partition's range.
    Offset(i64),
    /// The first offset at or after a timestamp (ms since the Unix epoch).
    Timestamp(i64),
}

/// A group in a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    /// The group id.
    pub group: String,
    /// Its state.
    pub state: GroupState,
    /// How many members it has.
    pub members: usize,
}

/// One partition's committed offset and lag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionLag {
    /// The topic and partition.
    pub partition: TopicPartition,
    /// The committed offset, if any.
    pub committed: Option<i64>,
    /// The partition's high watermark.
    pub end: i64,
    /// `end - committed`, or `end - log start` when nothing is committed.
    pub lag: i64,
}

/// A group, as `describe` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group id.
    pub group: String,
    /// Its state.
    pub state: GroupState,
    /// The group epoch.
    pub epoch: i32,
    /// The session timeout in milliseconds.
    pub session_timeout_ms: u32,
    /// Members, sorted by id.
    pub members: Vec<MemberDescription>,
    /// Committed offsets and the partitions of subscribed topics, sorted.
    pub offsets: Vec<PartitionLag>,
}

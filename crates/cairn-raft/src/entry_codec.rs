//! Raft entries as log batches and back. A normal entry is its record batch, stamped with the
//! entry's term as partitionLeaderEpoch; a blank entry (a new leader's no-op) and a membership
//! change are meta entries (no records, no offset) whose payload is a kind byte, then for a
//! membership the `serde_json` of openraft's `Membership` (`segments-format.md`, "Raft log
//! storage"). The entry index is never stored: it is the batch's place in the log.

use bytes::Bytes;
use cairn_log::batch::{Batch, encode_meta_entry};
use cairn_log::{LeaderEpoch, LogEntry};
use openraft::{Entry, EntryPayload, LogId, Membership, RaftTypeConfig};

use crate::error::RaftStorageError;
use crate::purge_file::log_id;
use crate::types::{BatchData, NodeId, PeerNode};

/// The type configs whose log a `cairn-log` log can store: entries are openraft's own, their
/// application data is a record batch, and nodes are Cairn peers. The partition groups
/// ([`crate::PartitionRaft`]) and the controller group each have one, with their own responses.
pub trait CairnRaftConfig:
    RaftTypeConfig<D = BatchData, NodeId = NodeId, Node = PeerNode, Entry = Entry<Self>>
{
}

impl<C> CairnRaftConfig for C where
    C: RaftTypeConfig<D = BatchData, NodeId = NodeId, Node = PeerNode, Entry = Entry<C>>
{
}

/// Meta entry payload kind of a blank entry.
const KIND_BLANK: u8 = 1;
/// Meta entry payload kind of a membership entry.
const KIND_MEMBERSHIP: u8 = 2;

/// The partitionLeaderEpoch that stands for `term`.
///
/// # Errors
/// [`RaftStorageError::TermTooLarge`] past 2^31 - 1.
pub fn epoch_of_term(term: u64) -> Result<LeaderEpoch, RaftStorageError> {
    i32::try_from(term)
        .map(LeaderEpoch)
        .map_err(|_| RaftStorageError::TermTooLarge { term })
}

/// The batch that stores `entry` (its term is stamped at append, see [`epoch_of_term`]).
///
/// # Errors
/// [`RaftStorageError::CorruptEntry`] when a normal entry's data is not a valid batch or a
/// membership does not encode.
pub fn encode_entry<C: CairnRaftConfig>(entry: &Entry<C>) -> Result<Batch, RaftStorageError> {
    let index = entry.log_id.index;
    let corrupt = |reason: String| RaftStorageError::CorruptEntry { index, reason };
    let bytes = match &entry.payload {
        EntryPayload::Normal(BatchData(bytes)) => bytes.clone(),
        EntryPayload::Blank => meta(&[KIND_BLANK]).map_err(corrupt)?,
        EntryPayload::Membership(membership) => {
            let mut payload = vec![KIND_MEMBERSHIP];
            serde_json::to_writer(&mut payload, membership)
                .map_err(|e| corrupt(format!("membership does not encode: {e}")))?;
            meta(&payload).map_err(corrupt)?
        }
    };
    let batch = Batch::validate(bytes).map_err(|e| corrupt(e.to_string()))?;
    if matches!(entry.payload, EntryPayload::Normal(_)) && batch.is_meta() {
        // A meta entry must mean what its payload says; data that merely looks like one would be
        // read back as a blank or membership entry.
        return Err(corrupt("a normal entry's batch must hold records".into()));
    }
    Ok(batch)
}

fn meta(payload: &[u8]) -> Result<Bytes, String> {
    // Timestamp 0: meta entries count toward no timestamp, and replicas then store the same bytes.
    encode_meta_entry(payload, 0).map_err(|e| e.to_string())
}

/// The entry stored as `stored`.
///
/// # Errors
/// [`RaftStorageError::CorruptEntry`] for a negative epoch or a meta entry that is not a Raft
/// blank or membership entry.
pub fn decode_entry<C: CairnRaftConfig>(stored: LogEntry) -> Result<Entry<C>, RaftStorageError> {
    let index = stored.header.entry.0;
    let corrupt = |reason: String| RaftStorageError::CorruptEntry { index, reason };
    let term = u64::try_from(stored.header.leader_epoch.0).map_err(|_| {
        corrupt(format!(
            "epoch {} is not a term",
            stored.header.leader_epoch.0
        ))
    })?;
    let log_id: LogId<NodeId> = log_id(term, index);
    if !stored.header.is_meta {
        return Ok(Entry {
            log_id,
            payload: EntryPayload::Normal(BatchData(stored.batch)),
        });
    }
    let batch = Batch::validate(stored.batch).map_err(|e| corrupt(e.to_string()))?;
    let payload = batch.meta_payload().unwrap_or_default();
    let payload = match payload.split_first() {
        Some((&KIND_BLANK, [])) => EntryPayload::Blank,
        Some((&KIND_MEMBERSHIP, json)) => {
            let membership: Membership<NodeId, PeerNode> = serde_json::from_slice(json)
                .map_err(|e| corrupt(format!("membership does not decode: {e}")))?;
            EntryPayload::Membership(membership)
        }
        _ => {
            return Err(corrupt(
                "a meta entry that is not a Raft blank or membership entry".into(),
            ));
        }
    };
    Ok(Entry { log_id, payload })
}

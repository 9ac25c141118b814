//! The applied state of a partition group: `raft-applied.checkpoint`, the last applied log id,
//! the offset after it (the high watermark it gave) and the last applied membership.
//!
//! Why a checkpoint and not a recovery from the log: the high watermark is not on disk (a
//! replica learns it from replication), so the log alone cannot say what was applied, and
//! openraft must never be told less was applied than was purged (it would try to re-apply purged
//! entries). Why lazily: writing it on every apply would double the fsyncs of a replica. It is
//! written when a snapshot is built or installed (so it is always at or past the purge point,
//! which never passes the last snapshot) and every [`APPLIED_CHECKPOINT_ENTRIES`] entries. After
//! a restart openraft re-learns the commit index from the leader and applies again from the
//! checkpoint on, which only moves the high watermark forward.

use std::path::Path;

use openraft::{LogId, StoredMembership};

use crate::checkpoint::{Kind, PayloadReader, read_verified, write_atomic};
use crate::error::RaftStorageError;
use crate::purge_file::log_id;
use crate::types::{NodeId, PeerNode};

/// File name of the applied state checkpoint.
pub const APPLIED_FILE: &str = "raft-applied.checkpoint";

/// Entries applied between two applied-state checkpoints, at most.
pub const APPLIED_CHECKPOINT_ENTRIES: u64 = 4096;

/// What a partition group's state machine has applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppliedState {
    /// The last applied log id.
    pub last_applied: Option<LogId<NodeId>>,
    /// The offset after the last applied entry: the high watermark it gave.
    pub next_offset: u64,
    /// The last applied membership.
    pub membership: StoredMembership<NodeId, PeerNode>,
}

/// Reads the applied state: `None` if none was saved.
///
/// # Errors
/// [`RaftStorageError::CorruptCheckpoint`] for a damaged file; I/O errors.
pub fn read_applied(dir: &Path) -> Result<Option<AppliedState>, RaftStorageError> {
    let Some(payload) = read_verified(dir, APPLIED_FILE, Kind::Applied)? else {
        return Ok(None);
    };
    decode(&payload)
        .map(Some)
        .ok_or_else(|| RaftStorageError::CorruptCheckpoint {
            path: dir.join(APPLIED_FILE),
            reason: "applied state payload does not decode".into(),
        })
}

/// Saves the applied state durably.
///
/// # Errors
/// I/O errors (the previous file is then still in place).
pub fn write_applied(dir: &Path, state: &AppliedState) -> Result<(), RaftStorageError> {
    let membership = serde_json::to_vec(&state.membership).map_err(|err| {
        RaftStorageError::CorruptCheckpoint {
            path: dir.join(APPLIED_FILE),
            reason: format!("membership does not encode: {err}"),
        }
    })?;
    let mut payload = Vec::with_capacity(25 + membership.len());
    let (term, index) = state
        .last_applied
        .map_or((0, 0), |id| (id.leader_id.term, id.index));
    payload.push(u8::from(state.last_applied.is_some()));
    payload.extend_from_slice(&term.to_be_bytes());
    payload.extend_from_slice(&index.to_be_bytes());
    payload.extend_from_slice(&state.next_offset.to_be_bytes());
    payload.extend_from_slice(&membership);
    write_atomic(dir, APPLIED_FILE, Kind::Applied, &payload)
}

fn decode(payload: &[u8]) -> Option<AppliedState> {
    let mut reader = PayloadReader::new(payload);
    let has_applied = reader.u8()?;
    let (term, index, next_offset) = (reader.u64()?, reader.u64()?, reader.u64()?);
    let last_applied = match has_applied {
        0 => None,
        1 => Some(log_id(term, index)),
        _ => return None,
    };
    let membership = serde_json::from_slice(reader.rest()).ok()?;
    Some(AppliedState {
        last_applied,
        next_offset,
        membership,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use openraft::Membership;

    use super::*;

    #[test]
    fn applied_state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_applied(dir.path()).unwrap(), None);
        let nodes = BTreeMap::from([
            (1, PeerNode { addr: "a:1".into() }),
            (2, PeerNode { addr: "b:2".into() }),
        ]);
        let membership = Membership::new(vec![nodes.keys().copied().collect()], nodes);
        let state = AppliedState {
            last_applied: Some(log_id(3, 40)),
            next_offset: 1234,
            membership: StoredMembership::new(Some(log_id(2, 7)), membership),
        };
        write_applied(dir.path(), &state).unwrap();
        assert_eq!(read_applied(dir.path()).unwrap(), Some(state));
    }
}

//! The purge point: `raft-purged.checkpoint`, the log id of the last entry Raft purged. It is
//! the logical start of the Raft log (entries at or below it are never read again, whatever is
//! still on disk) and carries the term of that entry, which the log cannot tell once the entry's
//! segment is gone. Written before any segment below it is deleted.

use std::path::Path;

use openraft::{CommittedLeaderId, LogId};

use crate::checkpoint::{Kind, PayloadReader, read_verified, write_atomic};
use crate::error::RaftStorageError;
use crate::types::NodeId;

/// File name of the purge point checkpoint.
pub const PURGED_FILE: &str = "raft-purged.checkpoint";

/// Reads the purge point: `None` if nothing was ever purged.
///
/// # Errors
/// [`RaftStorageError::CorruptCheckpoint`] for a damaged file; I/O errors.
pub fn read_purged(dir: &Path) -> Result<Option<LogId<NodeId>>, RaftStorageError> {
    let Some(payload) = read_verified(dir, PURGED_FILE, Kind::Purged)? else {
        return Ok(None);
    };
    let mut reader = PayloadReader::new(&payload);
    match (reader.u64(), reader.u64(), reader.rest().is_empty()) {
        (Some(term), Some(index), true) => Ok(Some(log_id(term, index))),
        _ => Err(RaftStorageError::CorruptCheckpoint {
            path: dir.join(PURGED_FILE),
            reason: "purge point payload is not 16 bytes of term and index".into(),
        }),
    }
}

/// Saves the purge point durably.
///
/// # Errors
/// I/O errors; the previous file is then still in place.
pub fn write_purged(dir: &Path, purged: LogId<NodeId>) -> Result<(), RaftStorageError> {
    let mut payload = Vec::with_capacity(16);
    payload.extend_from_slice(&purged.leader_id.term.to_be_bytes());
    payload.extend_from_slice(&purged.index.to_be_bytes());
    write_atomic(dir, PURGED_FILE, Kind::Purged, &payload)
}

/// A log id from a term and an index (with single-term leaders a term names its leader).
pub fn log_id(term: u64, index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

//! A state machine's snapshot kept on disk, for a group whose state machine lives in memory (the
//! controller's): `raft-snapshot.checkpoint` in the group's log directory holds openraft's
//! snapshot metadata (last log id, membership, id) and the state machine's own bytes. With it
//! the group may purge its log: a restarted node starts from the snapshot and applies only the
//! entries after it. Written atomically and sealed like the other Raft metadata files
//! (`segments-format.md`, "Raft metadata files"); a damaged one stops the group, never
//! silently starts it from nothing.

use std::path::Path;

use openraft::SnapshotMeta;

use crate::checkpoint::{Kind, PayloadReader, read_verified, write_atomic};
use crate::error::RaftStorageError;
use crate::types::{NodeId, PeerNode};

/// File name of a group's snapshot.
pub const SNAPSHOT_FILE: &str = "raft-snapshot.checkpoint";

/// Saves a snapshot durably, replacing the previous one.
///
/// # Errors
/// I/O errors (the previous file is then still in place); a snapshot too large for the file.
pub fn write_snapshot(
    dir: &Path,
    meta: &SnapshotMeta<NodeId, PeerNode>,
    data: &[u8],
) -> Result<(), RaftStorageError> {
    let meta = serde_json::to_vec(meta).map_err(|e| RaftStorageError::Snapshot {
        reason: format!("snapshot metadata does not encode: {e}"),
    })?;
    let meta_len = u32::try_from(meta.len()).map_err(|_| RaftStorageError::Snapshot {
        reason: "snapshot metadata over 4 GiB".into(),
    })?;
    let mut payload = Vec::with_capacity(4 + meta.len() + data.len());
    payload.extend_from_slice(&meta_len.to_be_bytes());
    payload.extend_from_slice(&meta);
    payload.extend_from_slice(data);
    write_atomic(dir, SNAPSHOT_FILE, Kind::Snapshot, &payload)
}

/// Reads the snapshot: `None` if none was ever saved.
///
/// # Errors
/// [`RaftStorageError::CorruptCheckpoint`] for a damaged file; I/O errors.
#[allow(clippy::type_complexity, reason = "a pair read together")]
pub fn read_snapshot(
    dir: &Path,
) -> Result<Option<(SnapshotMeta<NodeId, PeerNode>, Vec<u8>)>, RaftStorageError> {
    let Some(payload) = read_verified(dir, SNAPSHOT_FILE, Kind::Snapshot)? else {
        return Ok(None);
    };
    let corrupt = |reason: String| RaftStorageError::CorruptCheckpoint {
        path: dir.join(SNAPSHOT_FILE),
        reason,
    };
    let mut reader = PayloadReader::new(&payload);
    let meta_len = reader
        .u32()
        .ok_or_else(|| corrupt("no metadata length".into()))?;
    let meta = usize::try_from(meta_len)
        .ok()
        .and_then(|len| reader.bytes(len))
        .ok_or_else(|| corrupt("metadata length past the end".into()))?;
    let meta: SnapshotMeta<NodeId, PeerNode> = serde_json::from_slice(meta)
        .map_err(|e| corrupt(format!("snapshot metadata does not decode: {e}")))?;
    Ok(Some((meta, reader.rest().to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::purge_file::log_id;

    fn meta() -> SnapshotMeta<NodeId, PeerNode> {
        SnapshotMeta {
            last_log_id: Some(log_id(3, 41)),
            last_membership: openraft::StoredMembership::default(),
            snapshot_id: "41-1".into(),
        }
    }

    #[test]
    fn a_saved_snapshot_reads_back_and_damage_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(read_snapshot(dir.path()).expect("reads").is_none());
        write_snapshot(dir.path(), &meta(), b"state").expect("writes");
        let (read_meta, data) = read_snapshot(dir.path()).expect("reads").expect("present");
        assert_eq!(read_meta, meta());
        assert_eq!(data, b"state");

        let path = dir.path().join(SNAPSHOT_FILE);
        let mut bytes = std::fs::read(&path).expect("read");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(&path, &bytes).expect("write");
        assert!(matches!(
            read_snapshot(dir.path()),
            Err(RaftStorageError::CorruptCheckpoint { .. })
        ));
    }
}

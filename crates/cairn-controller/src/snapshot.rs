//! The controller group's snapshot: the whole [`ClusterMetadata`] as bytes and back.
//!
//! # Encoding (format version 1)
//!
//! UTF-8 JSON of one object: `"v"`, the format version (`1`), and `"metadata"`, the state with its
//! fields `cluster_id` (string or null), `nodes` (object keyed by node id), `topics` (object keyed
//! by name), `next_topic_id`, `next_group_id`, `next_producer_id` (integers) and
//! `producer_id_blocks` (object keyed by node id), and `security` (users with their SCRAM
//! credentials, and the ACLs; left out while both are empty, so snapshots written before users
//! existed still load, as the same state). Maps are sorted, so equal states give equal
//! bytes. Unknown fields are refused, and so is another version (as for commands). Where the
//! bytes live (a snapshot file next to the controller log) is the storage's concern and is
//! documented with it in `segments-format.md`.
//!
//! A decoded snapshot is checked against every invariant `apply` keeps before it is used, so a
//! damaged file is reported as such rather than becoming the state of a node.

use serde::{Deserialize, Serialize};

use crate::command::{check_version, decode_error};
use crate::error::{ControllerError, Encoded};
use crate::metadata::ClusterMetadata;

/// The snapshot format version this build writes and reads.
pub const SNAPSHOT_FORMAT_VERSION: u64 = 1;

#[derive(Serialize)]
struct SnapshotOut<'a> {
    v: u64,
    metadata: &'a ClusterMetadata,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotIn {
    #[serde(rename = "v")]
    _v: u64,
    metadata: ClusterMetadata,
}

impl ClusterMetadata {
    /// Encodes the whole state for a controller-group snapshot (see the module docs).
    pub fn to_snapshot(&self) -> Vec<u8> {
        let snapshot = SnapshotOut {
            v: SNAPSHOT_FORMAT_VERSION,
            metadata: self,
        };
        // Strings, integers and maps whose keys are strings or integers: JSON represents all of
        // them, so serialization has no failing case.
        serde_json::to_vec(&snapshot).expect("metadata always serializes to JSON")
    }

    /// Decodes bytes written by [`ClusterMetadata::to_snapshot`] and checks them.
    ///
    /// # Errors
    /// [`ControllerError::UnsupportedVersion`] for another format version,
    /// [`ControllerError::Decode`] for bytes of the wrong shape, and
    /// [`ControllerError::CorruptSnapshot`] for a state that breaks an invariant.
    pub fn from_snapshot(bytes: &[u8]) -> Result<ClusterMetadata, ControllerError> {
        check_version(bytes, Encoded::Snapshot, SNAPSHOT_FORMAT_VERSION)?;
        let snapshot: SnapshotIn =
            serde_json::from_slice(bytes).map_err(|e| decode_error(Encoded::Snapshot, &e))?;
        snapshot
            .metadata
            .check_invariants()
            .map_err(|reason| ControllerError::CorruptSnapshot { reason })?;
        Ok(snapshot.metadata)
    }
}

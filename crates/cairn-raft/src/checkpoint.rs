//! The small metadata files of a Raft group in its partition directory (vote, purge point,
//! applied state): written atomically (temporary file, fsync, rename, fsync of the directory)
//! and sealed with a CRC-32C, so a crash leaves the old file or the new one, and damage is
//! detected rather than believed. Layout: `segments-format.md`, "Raft metadata files".
//!
//! An unreadable file stops the group with [`RaftStorageError::CorruptCheckpoint`]; nothing is
//! ever deleted because of one. The temporary files end in `.checkpoint.tmp`, which the log's
//! open removes as leftovers of an interrupted write.

use std::path::Path;

use cairn_log::{SealedFormat, read_sealed, write_sealed};

use crate::error::RaftStorageError;

const MAGIC: &[u8; 8] = b"CAIRNRFT";
const VERSION: u16 = 1;
/// The largest payload: an applied state carries a membership as JSON, a few hundred bytes for
/// a realistic group; anything near this limit is damage, checked before allocating.
pub(crate) const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// What a file holds; stored in it so a file renamed to the wrong name is caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub(crate) enum Kind {
    Vote = 1,
    Purged = 2,
    Applied = 3,
    Snapshot = 4,
}

impl Kind {
    /// The family's layout with this kind's size bound: a state machine snapshot carries a
    /// whole cluster's metadata (about 150 bytes per partition), the rest a few hundred bytes.
    fn format(self) -> SealedFormat {
        SealedFormat {
            magic: MAGIC,
            version: VERSION,
            max_payload: match self {
                Kind::Snapshot => MAX_SNAPSHOT_PAYLOAD_BYTES,
                Kind::Vote | Kind::Purged | Kind::Applied => MAX_PAYLOAD_BYTES,
            },
        }
    }
}

/// The largest state machine snapshot file payload: room for hundreds of thousands of
/// partitions' metadata; a larger length is damage, refused before allocating.
pub(crate) const MAX_SNAPSHOT_PAYLOAD_BYTES: usize = 256 << 20;

/// Writes `payload` as file `name` of `dir`, atomically and durably.
pub(crate) fn write_atomic(
    dir: &Path,
    name: &str,
    kind: Kind,
    payload: &[u8],
) -> Result<(), RaftStorageError> {
    write_sealed(dir, name, kind.format(), kind as u16, payload).map_err(RaftStorageError::from)
}

/// Reads file `name` of `dir`: `None` if it does not exist, its payload if every check passes.
pub(crate) fn read_verified(
    dir: &Path,
    name: &str,
    kind: Kind,
) -> Result<Option<Vec<u8>>, RaftStorageError> {
    read_sealed(&dir.join(name), kind.format(), kind as u16).map_err(RaftStorageError::from)
}

/// A checked big-endian reader over a payload.
pub(crate) struct PayloadReader<'a> {
    rest: &'a [u8],
}

impl<'a> PayloadReader<'a> {
    pub(crate) fn new(payload: &'a [u8]) -> Self {
        PayloadReader { rest: payload }
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        let (&first, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(first)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.rest.split_first_chunk::<4>()?;
        self.rest = rest;
        Some(u32::from_be_bytes(*head))
    }

    /// The next `len` bytes.
    pub(crate) fn bytes(&mut self, len: usize) -> Option<&'a [u8]> {
        if self.rest.len() < len {
            return None;
        }
        let (head, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(head)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        let (head, rest) = self.rest.split_first_chunk::<8>()?;
        self.rest = rest;
        Some(u64::from_be_bytes(*head))
    }

    /// Everything not read yet.
    pub(crate) fn rest(self) -> &'a [u8] {
        self.rest
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn round_trips_and_every_flipped_bit_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            read_verified(dir.path(), "x.checkpoint", Kind::Vote).unwrap(),
            None
        );
        write_atomic(dir.path(), "x.checkpoint", Kind::Vote, b"hello").unwrap();
        assert_eq!(
            read_verified(dir.path(), "x.checkpoint", Kind::Vote).unwrap(),
            Some(b"hello".to_vec())
        );
        assert!(read_verified(dir.path(), "x.checkpoint", Kind::Purged).is_err());
        let path = dir.path().join("x.checkpoint");
        let mut bytes = fs::read(&path).unwrap();
        for idx in 0..bytes.len() * 8 {
            bytes[idx / 8] ^= 1 << (idx % 8);
            fs::write(&path, &bytes).unwrap();
            assert!(
                matches!(
                    read_verified(dir.path(), "x.checkpoint", Kind::Vote),
                    Err(RaftStorageError::CorruptCheckpoint { .. })
                ),
                "flip of bit {idx} went unnoticed"
            );
            bytes[idx / 8] ^= 1 << (idx % 8);
        }
        fs::write(&path, &bytes[..7]).unwrap();
        assert!(read_verified(dir.path(), "x.checkpoint", Kind::Vote).is_err());
        assert!(path.exists(), "a damaged file is never deleted");
    }
}

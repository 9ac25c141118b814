//! The small metadata files of a Raft group in its partition directory (vote, purge point,
//! applied state): written atomically (temporary file, fsync, rename, fsync of the directory)
//! and sealed with a CRC-32C, so a crash leaves the old file or the new one, and damage is
//! detected rather than believed. Layout: `segments-format.md`, "Raft metadata files".
//!
//! An unreadable file stops the group with [`RaftStorageError::CorruptCheckpoint`]; nothing is
//! ever deleted because of one. The temporary files end in `.checkpoint.tmp`, which the log's
//! open removes as leftovers of an interrupted write.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::RaftStorageError;

const MAGIC: &[u8; 8] = b"CAIRNRFT";
const VERSION: u16 = 1;
const HEADER_BYTES: usize = 8 + 2 + 2 + 4;
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
    /// The largest payload a file of this kind may hold: a state machine snapshot carries a
    /// whole cluster's metadata (about 150 bytes per partition), the rest a few hundred bytes.
    fn max_payload(self) -> usize {
        match self {
            Kind::Snapshot => MAX_SNAPSHOT_PAYLOAD_BYTES,
            Kind::Vote | Kind::Purged | Kind::Applied => MAX_PAYLOAD_BYTES,
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
    let path = dir.join(name);
    if payload.len() > kind.max_payload() {
        return Err(RaftStorageError::CorruptCheckpoint {
            path,
            reason: format!("payload of {} bytes is over the limit", payload.len()),
        });
    }
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len() + 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_be_bytes());
    bytes.extend_from_slice(&(kind as u16).to_be_bytes());
    bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    bytes.extend_from_slice(payload);
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());

    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|source| RaftStorageError::io("create checkpoint", &tmp, source))?;
    file.write_all(&bytes)
        .map_err(|source| RaftStorageError::io("write checkpoint", &tmp, source))?;
    file.sync_all()
        .map_err(|source| RaftStorageError::io("fsync checkpoint", &tmp, source))?;
    fs::rename(&tmp, &path)
        .map_err(|source| RaftStorageError::io("rename checkpoint", &path, source))?;
    // The rename is durable only once the directory entry is.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| RaftStorageError::io("fsync directory", dir, source))
}

/// Reads file `name` of `dir`: `None` if it does not exist, its payload if every check passes.
pub(crate) fn read_verified(
    dir: &Path,
    name: &str,
    kind: Kind,
) -> Result<Option<Vec<u8>>, RaftStorageError> {
    let path = dir.join(name);
    let corrupt = |reason: &str| RaftStorageError::CorruptCheckpoint {
        path: path.clone(),
        reason: reason.to_string(),
    };
    let len = match fs::metadata(&path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(RaftStorageError::io("stat checkpoint", &path, source)),
    };
    if len > (HEADER_BYTES + kind.max_payload() + 4) as u64 {
        return Err(corrupt("larger than any checkpoint"));
    }
    let bytes =
        fs::read(&path).map_err(|source| RaftStorageError::io("read checkpoint", &path, source))?;
    let (body, crc) = bytes
        .split_last_chunk::<4>()
        .filter(|(body, _)| body.len() >= HEADER_BYTES)
        .ok_or_else(|| corrupt("shorter than a checkpoint header"))?;
    if crc32c::crc32c(body) != u32::from_be_bytes(*crc) {
        return Err(corrupt("checksum mismatch"));
    }
    if &body[..8] != MAGIC {
        return Err(corrupt("bad magic"));
    }
    if u16::from_be_bytes([body[8], body[9]]) != VERSION {
        return Err(corrupt("unknown version"));
    }
    if u16::from_be_bytes([body[10], body[11]]) != kind as u16 {
        return Err(corrupt("wrong kind of checkpoint"));
    }
    let length = u32::from_be_bytes([body[12], body[13], body[14], body[15]]) as usize;
    if length > kind.max_payload() || body.len() != HEADER_BYTES + length {
        return Err(corrupt("payload length does not match the file"));
    }
    Ok(Some(body[HEADER_BYTES..].to_vec()))
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

//! Small metadata files of a partition directory, written atomically (temporary file, fsync,
//! rename, fsync of the directory) and sealed with a CRC-32C, so a crash leaves either the old
//! file or the new one and damage is detected rather than believed. Layout:
//! `segments-format.md`, "Checkpoint files".
//!
//! An unreadable checkpoint is an operator error: the log refuses to open rather than guess,
//! and never deletes data because of it.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::LogError;
use crate::types::{EntryIndex, Offset};

const MAGIC: &[u8; 8] = b"CAIRNCKP";
const VERSION: u16 = 1;
const HEADER_BYTES: usize = 8 + 2 + 2 + 4;
/// No checkpoint payload is anywhere near this; a larger length field is damage.
const MAX_PAYLOAD_BYTES: usize = 4096;

/// File name of the log start checkpoint.
pub(crate) const LOG_START_FILE: &str = "log-start.checkpoint";
/// File name of the clean shutdown marker.
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown.checkpoint";
/// File name of the cleaner checkpoint (Kafka's `cleaner-offset-checkpoint`, one partition).
pub(crate) const CLEANER_FILE: &str = "cleaner-offset.checkpoint";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
enum Kind {
    LogStart = 1,
    CleanShutdown = 2,
    Cleaner = 3,
}

/// Where the log starts: its first offset and first entry index. Written before retention
/// deletes segments, so the first remaining segment's entry numbering never depends on a cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LogStart {
    pub(crate) offset: Offset,
    pub(crate) entry: EntryIndex,
}

/// Written by a clean close: the active segment and its size when the log closed. Its presence
/// (with a matching size) lets open skip scanning the active segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CleanShutdown {
    pub(crate) active_base: Offset,
    pub(crate) active_bytes: u64,
}

/// How far compaction has cleaned the log: every segment whose base offset is below
/// `first_dirty` was rewritten by the cleaner (and may hold offset gaps); `first_dirty` is a
/// segment boundary, and `first_dirty_entry` that segment's base entry index. Recovery needs the
/// latter because cleaning drops entries, so counting the cleaned segments' batches no longer
/// reaches it (`segments-format.md`, "Compaction").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CleanerCheckpoint {
    pub(crate) first_dirty: Offset,
    pub(crate) first_dirty_entry: EntryIndex,
}

impl CleanerCheckpoint {
    /// Writes the checkpoint atomically into `dir` (the partition directory, or the staging
    /// directory of a clean, which moves it into place when the clean commits).
    pub(crate) fn write(self, dir: &Path) -> Result<(), LogError> {
        let mut payload = Vec::with_capacity(16);
        payload.extend_from_slice(&self.first_dirty.0.to_be_bytes());
        payload.extend_from_slice(&self.first_dirty_entry.0.to_be_bytes());
        write_atomic(dir, CLEANER_FILE, Kind::Cleaner, &payload)
    }

    /// Reads the checkpoint; `None` if the log was never cleaned.
    pub(crate) fn read(dir: &Path) -> Result<Option<CleanerCheckpoint>, LogError> {
        let path = dir.join(CLEANER_FILE);
        let Some(payload) = read_verified(&path, Kind::Cleaner)? else {
            return Ok(None);
        };
        let (offset, entry) =
            two_u64(&payload).ok_or_else(|| corrupt(&path, "payload is not 16 bytes"))?;
        Ok(Some(CleanerCheckpoint {
            first_dirty: Offset(offset),
            first_dirty_entry: EntryIndex(entry),
        }))
    }
}

impl LogStart {
    pub(crate) fn write(self, dir: &Path) -> Result<(), LogError> {
        let mut payload = Vec::with_capacity(16);
        payload.extend_from_slice(&self.offset.0.to_be_bytes());
        payload.extend_from_slice(&self.entry.0.to_be_bytes());
        write_atomic(dir, LOG_START_FILE, Kind::LogStart, &payload)
    }

    pub(crate) fn read(dir: &Path) -> Result<Option<LogStart>, LogError> {
        let path = dir.join(LOG_START_FILE);
        let Some(payload) = read_verified(&path, Kind::LogStart)? else {
            return Ok(None);
        };
        let (offset, entry) =
            two_u64(&payload).ok_or_else(|| corrupt(&path, "payload is not 16 bytes"))?;
        Ok(Some(LogStart {
            offset: Offset(offset),
            entry: EntryIndex(entry),
        }))
    }
}

impl CleanShutdown {
    pub(crate) fn write(self, dir: &Path) -> Result<(), LogError> {
        let mut payload = Vec::with_capacity(16);
        payload.extend_from_slice(&self.active_base.0.to_be_bytes());
        payload.extend_from_slice(&self.active_bytes.to_be_bytes());
        write_atomic(dir, CLEAN_SHUTDOWN_FILE, Kind::CleanShutdown, &payload)
    }

    /// Reads and removes the marker: it vouches for one open only. A damaged marker is treated
    /// as absent, which is safe (the active segment is then scanned).
    pub(crate) fn take(dir: &Path) -> Result<Option<CleanShutdown>, LogError> {
        let path = dir.join(CLEAN_SHUTDOWN_FILE);
        let marker = match read_verified(&path, Kind::CleanShutdown) {
            Ok(Some(payload)) => two_u64(&payload).map(|(base, bytes)| CleanShutdown {
                active_base: Offset(base),
                active_bytes: bytes,
            }),
            Ok(None) => return Ok(None),
            Err(err) => {
                tracing::warn!(%err, "ignoring damaged clean-shutdown marker; the active segment will be scanned");
                None
            }
        };
        fs::remove_file(&path).map_err(|source| LogError::io("remove marker", &path, source))?;
        fsync_dir(dir)?;
        Ok(marker)
    }
}

fn two_u64(payload: &[u8]) -> Option<(u64, u64)> {
    let first: [u8; 8] = payload.get(0..8)?.try_into().ok()?;
    let second: [u8; 8] = payload.get(8..16)?.try_into().ok()?;
    (payload.len() == 16).then(|| (u64::from_be_bytes(first), u64::from_be_bytes(second)))
}

fn write_atomic(dir: &Path, name: &str, kind: Kind, payload: &[u8]) -> Result<(), LogError> {
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len() + 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_be_bytes());
    bytes.extend_from_slice(&(kind as u16).to_be_bytes());
    bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    bytes.extend_from_slice(payload);
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());

    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|source| LogError::io("create checkpoint", &tmp, source))?;
    file.write_all(&bytes)
        .map_err(|source| LogError::io("write checkpoint", &tmp, source))?;
    file.sync_all()
        .map_err(|source| LogError::io("fsync checkpoint", &tmp, source))?;
    fs::rename(&tmp, &path).map_err(|source| LogError::io("rename checkpoint", &path, source))?;
    fsync_dir(dir)
}

fn read_verified(path: &Path, kind: Kind) -> Result<Option<Vec<u8>>, LogError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LogError::io("read checkpoint", path, source)),
    };
    let (body, crc) = bytes
        .split_last_chunk::<4>()
        .filter(|(body, _)| body.len() >= HEADER_BYTES)
        .ok_or_else(|| corrupt(path, "shorter than a checkpoint header"))?;
    if crc32c::crc32c(body) != u32::from_be_bytes(*crc) {
        return Err(corrupt(path, "checksum mismatch"));
    }
    if &body[..8] != MAGIC {
        return Err(corrupt(path, "bad magic"));
    }
    let version = u16::from_be_bytes([body[8], body[9]]);
    if version != VERSION {
        return Err(corrupt(path, "unknown version"));
    }
    if u16::from_be_bytes([body[10], body[11]]) != kind as u16 {
        return Err(corrupt(path, "wrong checkpoint kind"));
    }
    let length = u32::from_be_bytes([body[12], body[13], body[14], body[15]]) as usize;
    if length > MAX_PAYLOAD_BYTES || body.len() != HEADER_BYTES + length {
        return Err(corrupt(path, "payload length does not match the file"));
    }
    Ok(Some(body[HEADER_BYTES..].to_vec()))
}

fn corrupt(path: &Path, reason: &str) -> LogError {
    LogError::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// fsyncs a directory, making the creation, rename or removal of its entries durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| LogError::io("fsync directory", dir, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_start_round_trips_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(LogStart::read(dir.path()).unwrap(), None);
        let start = LogStart {
            offset: Offset(42),
            entry: EntryIndex(45),
        };
        start.write(dir.path()).unwrap();
        assert_eq!(LogStart::read(dir.path()).unwrap(), Some(start));
        let path = dir.path().join(LOG_START_FILE);
        let mut bytes = fs::read(&path).unwrap();
        for idx in 0..bytes.len() {
            bytes[idx] ^= 0x01;
            fs::write(&path, &bytes).unwrap();
            assert!(
                LogStart::read(dir.path()).is_err(),
                "flip at {idx} went unnoticed"
            );
            bytes[idx] ^= 0x01;
        }
        fs::write(&path, &bytes[..10]).unwrap();
        assert!(matches!(
            LogStart::read(dir.path()),
            Err(LogError::CorruptCheckpoint { .. })
        ));
    }

    #[test]
    fn cleaner_checkpoint_round_trips_and_is_not_a_log_start() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(CleanerCheckpoint::read(dir.path()).unwrap(), None);
        let cleaner = CleanerCheckpoint {
            first_dirty: Offset(300),
            first_dirty_entry: EntryIndex(280),
        };
        cleaner.write(dir.path()).unwrap();
        assert_eq!(CleanerCheckpoint::read(dir.path()).unwrap(), Some(cleaner));
        fs::rename(
            dir.path().join(CLEANER_FILE),
            dir.path().join(LOG_START_FILE),
        )
        .unwrap();
        assert!(LogStart::read(dir.path()).is_err(), "kinds are checked");
    }

    #[test]
    fn clean_shutdown_marker_is_consumed_once() {
        let dir = tempfile::tempdir().unwrap();
        let marker = CleanShutdown {
            active_base: Offset(7),
            active_bytes: 1234,
        };
        marker.write(dir.path()).unwrap();
        assert_eq!(CleanShutdown::take(dir.path()).unwrap(), Some(marker));
        assert_eq!(CleanShutdown::take(dir.path()).unwrap(), None);
    }
}

//! Small metadata files of a partition directory, written atomically (temporary file, fsync,
//! rename, fsync of the directory) and sealed with a CRC-32C, so a crash leaves either the old
//! file or the new one and damage is detected rather than believed. Layout:
//! `segments-format.md`, "Checkpoint files".
//!
//! An unreadable checkpoint is an operator error: the log refuses to open rather than guess,
//! and never deletes data because of it.

use std::fs::{self, File};
use std::path::Path;

use crate::error::LogError;
use crate::sealed_file::{SealedFormat, read_sealed, write_sealed};
use crate::types::{EntryIndex, Offset};

/// The log's checkpoints: magic `CAIRNCKP`, version 1; no payload is anywhere near 4 KiB, so a
/// larger length field is damage.
const FORMAT: SealedFormat = SealedFormat {
    magic: b"CAIRNCKP",
    version: 1,
    max_payload: 4096,
};

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
    write_sealed(dir, name, FORMAT, kind as u16, payload).map_err(LogError::from)
}

fn read_verified(path: &Path, kind: Kind) -> Result<Option<Vec<u8>>, LogError> {
    read_sealed(path, FORMAT, kind as u16).map_err(LogError::from)
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

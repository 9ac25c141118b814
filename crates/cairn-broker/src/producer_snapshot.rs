//! Producer-state snapshots: `<20-digit offset>.snapshot` files in a partition directory (as
//! Kafka keeps them), each holding the idempotent-producer state as of an offset, so that opening
//! a partition reads only the log after the newest snapshot instead of the whole log.
//!
//! A snapshot is a cache, never the only copy of anything: the state is a pure function of the
//! log's batch headers. So a snapshot that fails its checksum, or lies beyond the recovered log
//! end (written from the page cache before a power loss cut the log shorter), is skipped and
//! removed, and the next older one (or the log from its start) is used instead. Interval snapshots
//! are therefore not fsynced (that would cost the writer thread an fsync every few megabytes);
//! the one written at a clean close is. Layout: `segments-format.md`, "Producer snapshots".

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use cairn_log::Offset;

use crate::producer_state::{BATCHES_REMEMBERED, ProducerEntry, ProducerStates, Written};

const MAGIC: &[u8; 8] = b"CAIRNPST";
/// Version 2 adds each producer's last write time (for expiration); version 1 files, written
/// before it, are still read.
const VERSION: u16 = 2;
/// Magic, version, reserved, CRC-32C, snapshot offset, producer count.
const HEADER_BYTES: usize = 8 + 2 + 2 + 4 + 8 + 4;
/// Producer id, epoch, last write time (version 2), batch count.
const PRODUCER_BYTES: usize = 8 + 2 + 8 + 1;
/// The same in version 1, without the last write time.
const PRODUCER_BYTES_V1: usize = 8 + 2 + 1;
/// First and last sequence, base and last offset.
const WRITTEN_BYTES: usize = 4 + 4 + 8 + 8;
/// Largest snapshot read: far above any real producer population (a million producers with
/// five batches each is ~131 MB), so a larger file is damage, not data.
const MAX_SNAPSHOT_BYTES: u64 = 256 << 20;
/// How many snapshots a partition keeps: the newest, and one older in case the newest was cut
/// by a crash before the page cache reached the disk.
pub(crate) const SNAPSHOTS_KEPT: usize = 2;
const SUFFIX: &str = ".snapshot";
const TMP_SUFFIX: &str = ".snapshot.tmp";

/// Why a snapshot file was not used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotError {
    /// Reading, writing or listing failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a snapshot Cairn wrote, or was damaged.
    #[error("unreadable producer snapshot {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// The state as of `offset`: every batch below it is accounted for, none at or after it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) offset: Offset,
    pub(crate) states: ProducerStates,
}

/// The file name of the snapshot at `offset`.
fn file_name(offset: Offset) -> String {
    format!("{:020}{SUFFIX}", offset.0)
}

fn parse_name(name: &str) -> Option<Offset> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Offset)
}

/// Encodes `states` as of `offset`.
pub(crate) fn encode(offset: Offset, states: &ProducerStates) -> Vec<u8> {
    let mut body = Vec::new();
    let mut count: u32 = 0;
    for (id, entry) in states.entries() {
        count += 1;
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(&entry.epoch.to_be_bytes());
        body.extend_from_slice(&entry.last_write_ms.to_be_bytes());
        // At most BATCHES_REMEMBERED, which fits a byte (checked at compile time below).
        body.push(entry.batches.len() as u8);
        for w in &entry.batches {
            body.extend_from_slice(&w.first_sequence.to_be_bytes());
            body.extend_from_slice(&w.last_sequence.to_be_bytes());
            body.extend_from_slice(&w.base_offset.to_be_bytes());
            body.extend_from_slice(&w.last_offset.to_be_bytes());
        }
    }
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&offset.0.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&body);
    let crc = sealed_crc(VERSION, &out);
    out[12..16].copy_from_slice(&crc.to_be_bytes());
    out
}

/// The CRC-32C a snapshot of `version` stores for its bytes `file` (whole, the CRC field
/// included and skipped). Version 2 covers the version and reserved fields too, so that a
/// damaged version cannot make a file of one layout read as the other; version 1 covered the
/// bytes after the CRC only.
fn sealed_crc(version: u16, file: &[u8]) -> u32 {
    let rest = file.get(16..).unwrap_or_default();
    match version {
        1 => crc32c::crc32c(rest),
        _ => crc32c::crc32c_append(crc32c::crc32c(file.get(8..12).unwrap_or_default()), rest),
    }
}

const _: () = assert!(BATCHES_REMEMBERED <= u8::MAX as usize);

/// A cursor over a snapshot's bytes whose reads fail instead of panicking past the end.
struct Cursor<'a> {
    bytes: &'a [u8],
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let (head, rest) = self
            .bytes
            .split_first_chunk::<N>()
            .ok_or_else(|| "truncated".to_string())?;
        self.bytes = rest;
        Ok(*head)
    }
}

/// Decodes a snapshot file's bytes. A version 1 file does not say when its producers last
/// wrote: they are taken as having written at `now_ms`, so each is kept a whole expiration from
/// the upgrade.
///
/// # Errors
/// A description of what is wrong: bad magic, version, checksum, counts or lengths.
pub(crate) fn decode(bytes: &[u8], now_ms: i64) -> Result<Snapshot, String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!("{} bytes is shorter than the header", bytes.len()));
    }
    let mut cur = Cursor { bytes };
    if &cur.take::<8>()? != MAGIC {
        return Err("bad magic".to_string());
    }
    let version = u16::from_be_bytes(cur.take()?);
    let producer_bytes = match version {
        1 => PRODUCER_BYTES_V1,
        VERSION => PRODUCER_BYTES,
        _ => return Err(format!("unknown version {version}")),
    };
    if cur.take::<2>()? != [0, 0] {
        return Err("reserved bytes are not zero".to_string());
    }
    let stored_crc = u32::from_be_bytes(cur.take()?);
    let computed = sealed_crc(version, bytes);
    if stored_crc != computed {
        return Err(format!(
            "CRC-32C mismatch: stored {stored_crc:#010x}, computed {computed:#010x}"
        ));
    }
    let offset = Offset(u64::from_be_bytes(cur.take()?));
    let count = u32::from_be_bytes(cur.take()?);
    // Each producer takes at least PRODUCER_BYTES, so a count the file cannot hold is damage;
    // checking first keeps a bad count from sizing an allocation.
    if (count as usize).saturating_mul(producer_bytes) > cur.bytes.len() {
        return Err(format!("{count} producers do not fit the file"));
    }
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let id = i64::from_be_bytes(cur.take()?);
        let epoch = i16::from_be_bytes(cur.take()?);
        let last_write_ms = match version {
            1 => now_ms,
            _ => i64::from_be_bytes(cur.take()?),
        };
        let [batch_count] = cur.take::<1>()?;
        if usize::from(batch_count) > BATCHES_REMEMBERED {
            return Err(format!("producer {id} has {batch_count} batches"));
        }
        let mut batches = VecDeque::with_capacity(usize::from(batch_count));
        for _ in 0..batch_count {
            batches.push_back(Written {
                first_sequence: i32::from_be_bytes(cur.take()?),
                last_sequence: i32::from_be_bytes(cur.take()?),
                base_offset: u64::from_be_bytes(cur.take()?),
                last_offset: u64::from_be_bytes(cur.take()?),
            });
        }
        entries.push((
            id,
            ProducerEntry {
                epoch,
                batches,
                last_write_ms,
            },
        ));
    }
    if !cur.bytes.is_empty() {
        return Err(format!("{} bytes after the last producer", cur.bytes.len()));
    }
    const _: () = assert!(WRITTEN_BYTES == 24);
    Ok(Snapshot {
        offset,
        states: ProducerStates::from_entries(entries),
    })
}

/// Writes the snapshot of `states` at `offset` into `dir` (temporary file, then rename), fsyncing
/// it only when `durable`, and removes all but the newest [`SNAPSHOTS_KEPT`].
///
/// # Errors
/// I/O errors; nothing that was there before is removed then.
pub(crate) fn write(
    dir: &Path,
    offset: Offset,
    states: &ProducerStates,
    durable: bool,
) -> Result<(), SnapshotError> {
    let path = dir.join(file_name(offset));
    let tmp = dir.join(format!("{:020}{TMP_SUFFIX}", offset.0));
    let io = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| SnapshotError::Io { op, path, source }
    };
    let mut file = File::create(&tmp).map_err(io("create", &tmp))?;
    file.write_all(&encode(offset, states))
        .map_err(io("write", &tmp))?;
    if durable {
        file.sync_data().map_err(io("fsync", &tmp))?;
    }
    drop(file);
    fs::rename(&tmp, &path).map_err(io("rename", &tmp))?;
    if durable {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync directory", dir))?;
    }
    for (_, old) in list(dir)?.into_iter().rev().skip(SNAPSHOTS_KEPT) {
        fs::remove_file(&old).map_err(io("remove", &old))?;
    }
    Ok(())
}

/// The snapshot files in `dir`, oldest first; leftover temporary files are removed.
fn list(dir: &Path) -> Result<Vec<(Offset, PathBuf)>, SnapshotError> {
    let io = |source| SnapshotError::Io {
        op: "list",
        path: dir.to_path_buf(),
        source,
    };
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(offset) = parse_name(name) {
            found.push((offset, entry.path()));
        } else if name.ends_with(TMP_SUFFIX) {
            let path = entry.path();
            fs::remove_file(&path).map_err(|source| SnapshotError::Io {
                op: "remove",
                path,
                source,
            })?;
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// The newest usable snapshot in `dir` at or below `log_end`. Snapshots beyond the log end are
/// removed (the log they described was cut by a crash); unreadable ones are reported through
/// `skipped`, removed, and the next older one is tried. `now_ms` is the broker's clock, for a
/// version 1 file (see [`decode`]).
///
/// # Errors
/// I/O errors listing the directory or removing a file.
pub(crate) fn load_newest(
    dir: &Path,
    log_end: Offset,
    now_ms: i64,
    mut skipped: impl FnMut(&SnapshotError),
) -> Result<Option<Snapshot>, SnapshotError> {
    for (offset, path) in list(dir)?.into_iter().rev() {
        let remove = |path: &Path| {
            fs::remove_file(path).map_err(|source| SnapshotError::Io {
                op: "remove",
                path: path.to_path_buf(),
                source,
            })
        };
        if offset > log_end {
            remove(&path)?;
            continue;
        }
        match read(&path, offset, now_ms) {
            Ok(snapshot) => return Ok(Some(snapshot)),
            Err(err) => {
                skipped(&err);
                remove(&path)?;
            }
        }
    }
    Ok(None)
}

fn read(path: &Path, named: Offset, now_ms: i64) -> Result<Snapshot, SnapshotError> {
    let corrupt = |reason: String| SnapshotError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let io = |source| SnapshotError::Io {
        op: "read",
        path: path.to_path_buf(),
        source,
    };
    let len = fs::metadata(path).map_err(io)?.len();
    if len > MAX_SNAPSHOT_BYTES {
        return Err(corrupt(format!("{len} bytes is larger than any snapshot")));
    }
    let snapshot = decode(&fs::read(path).map_err(io)?, now_ms).map_err(corrupt)?;
    if snapshot.offset != named {
        return Err(corrupt(format!(
            "holds offset {} but is named for {}",
            snapshot.offset.0, named.0
        )));
    }
    Ok(snapshot)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;
    use crate::producer_state::ProducerBatch;

    fn states(producers: i64) -> ProducerStates {
        let mut states = ProducerStates::default();
        for id in 0..producers {
            for seq in 0..(id as i32 % 7) {
                let batch = ProducerBatch {
                    producer_id: id,
                    producer_epoch: (id % 3) as i16,
                    base_sequence: seq * 2,
                    record_count: 2,
                };
                states.record(&batch, seq as u64 * 10, seq as u64 * 10 + 1, id * 1_000);
            }
        }
        states
    }

    #[test]
    fn a_snapshot_round_trips() {
        let states = states(40);
        let decoded = decode(&encode(Offset(1234), &states), 0).unwrap();
        assert_eq!(decoded.offset, Offset(1234));
        assert_eq!(decoded.states, states);
    }

    /// The version 1 layout (before last write times), as Cairn wrote it until 2026-12-07.
    fn encode_v1(offset: Offset, states: &ProducerStates) -> Vec<u8> {
        let mut body = Vec::new();
        let mut count: u32 = 0;
        for (id, entry) in states.entries() {
            count += 1;
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&entry.epoch.to_be_bytes());
            body.push(entry.batches.len() as u8);
            for w in &entry.batches {
                for field in [
                    w.first_sequence.to_be_bytes(),
                    w.last_sequence.to_be_bytes(),
                ] {
                    body.extend_from_slice(&field);
                }
                for field in [w.base_offset.to_be_bytes(), w.last_offset.to_be_bytes()] {
                    body.extend_from_slice(&field);
                }
            }
        }
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&[0; 6]);
        out.extend_from_slice(&offset.0.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(&body);
        let crc = crc32c::crc32c(&out[16..]);
        out[12..16].copy_from_slice(&crc.to_be_bytes());
        out
    }

    #[test]
    fn a_version_1_snapshot_is_read_with_its_producers_written_now() {
        let states = states(40);
        let decoded = decode(&encode_v1(Offset(77), &states), 5_000).unwrap();
        assert_eq!(decoded.offset, Offset(77));
        let mut expected: Vec<_> = states.entries().map(|(id, e)| (id, e.clone())).collect();
        for (_, entry) in &mut expected {
            entry.last_write_ms = 5_000;
        }
        assert_eq!(decoded.states, ProducerStates::from_entries(expected));
        let bytes = encode_v1(Offset(77), &states);
        for idx in 0..bytes.len() {
            assert!(decode(&bytes[..idx], 0).is_err(), "cut at {idx} accepted");
        }
    }

    #[test]
    fn a_version_changed_between_1_and_2_is_refused_both_ways() {
        let states = states(6);
        for (bytes, other) in [
            (encode(Offset(9), &states), 1u16),
            (encode_v1(Offset(9), &states), 2u16),
        ] {
            let mut changed = bytes.clone();
            changed[8..10].copy_from_slice(&other.to_be_bytes());
            assert!(decode(&changed, 0).is_err(), "read as version {other}");
        }
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_refused() {
        let bytes = encode(Offset(99), &states(5));
        for idx in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[idx] ^= 0x40;
            assert!(decode(&damaged, 0).is_err(), "flip at {idx} accepted");
            assert!(decode(&bytes[..idx], 0).is_err(), "cut at {idx} accepted");
        }
    }

    #[test]
    fn the_newest_readable_snapshot_at_or_below_the_log_end_is_used() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), Offset(10), &states(2), false).unwrap();
        write(dir.path(), Offset(20), &states(3), true).unwrap();
        // A third write keeps only the newest two.
        write(dir.path(), Offset(30), &states(4), false).unwrap();
        assert!(!dir.path().join(file_name(Offset(10))).exists());
        // Beyond the log end: removed, the older one is used.
        let loaded = load_newest(dir.path(), Offset(25), 0, |_| panic!("nothing is damaged"))
            .unwrap()
            .unwrap();
        assert_eq!(loaded.offset, Offset(20));
        assert_eq!(loaded.states, states(3));
        assert!(!dir.path().join(file_name(Offset(30))).exists());
        // A damaged one is reported, removed, and nothing older is left.
        let path = dir.path().join(file_name(Offset(20)));
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        let mut reported = 0;
        let loaded = load_newest(dir.path(), Offset(25), 0, |_| reported += 1).unwrap();
        assert!(loaded.is_none());
        assert_eq!(reported, 1);
        assert!(!path.exists());
    }

    #[test]
    fn leftover_temporary_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(format!("{:020}{TMP_SUFFIX}", 5));
        fs::write(&tmp, b"half").unwrap();
        assert!(
            load_newest(dir.path(), Offset(100), 0, |_| {})
                .unwrap()
                .is_none()
        );
        assert!(!tmp.exists());
    }
}

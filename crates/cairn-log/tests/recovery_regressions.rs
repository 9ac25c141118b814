//! Regression tests for recovery bugs found by reading the code against its spec. Each test
//! damages real files the way the bug needed, then checks what recovery keeps.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use cairn_log::batch::{Batch, encode_meta_entry};
use cairn_log::{EntryIndex, Log, LogConfig, LogError, Offset};
use common::{batch, read_all, small_config};

/// (position, length) of every batch in a segment file, by following the length fields.
fn batch_spans(path: &Path) -> Vec<(usize, usize)> {
    let bytes = fs::read(path).unwrap();
    let mut spans = Vec::new();
    let mut pos = 0;
    while pos + 12 <= bytes.len() {
        let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize + 12;
        spans.push((pos, len));
        pos += len;
    }
    spans
}

fn segment_files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

fn flip(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

fn one_segment_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 256,
        retention_ms: None,
        ..LogConfig::default()
    }
}

#[test]
fn recovery_keeps_valid_batches_after_two_consecutive_damaged_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), one_segment_config(), 0).unwrap();
    for tag in 0..8 {
        log.append(&[batch(tag, 2, 50, 0)], None, 0).unwrap();
    }
    drop(log); // crash: the active segment is scanned on open
    let path = &segment_files(dir.path(), "log")[0];
    let spans = batch_spans(path);
    flip(path, spans[3].0 + spans[3].1 - 5); // inside the records: length intact, CRC broken
    flip(path, spans[4].0 + spans[4].1 - 5);
    let log = Log::open(dir.path(), one_segment_config(), 0).unwrap();
    assert_eq!(
        log.log_end_offset(),
        Offset(16),
        "valid batches after the damage must stay"
    );
    assert_eq!(log.next_entry(), EntryIndex(8));
    let reader = log.reader();
    assert!(matches!(
        reader.read(6, 1 << 20),
        Err(LogError::CorruptBatch { .. })
    ));
    assert!(matches!(
        reader.read(8, 1 << 20),
        Err(LogError::CorruptBatch { .. })
    ));
    let after = reader.read(10, 1 << 20).unwrap();
    assert_eq!(after.batches().next().unwrap().base_offset(), Offset(10));
}

#[test]
fn recovery_never_accepts_a_base_offset_that_goes_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), one_segment_config(), 0).unwrap();
    for tag in 0..8 {
        log.append(&[batch(tag, 2, 50, 0)], None, 0).unwrap();
    }
    drop(log);
    let path = &segment_files(dir.path(), "log")[0];
    let spans = batch_spans(path);
    flip(path, spans[3].0 + spans[3].1 - 5);
    // Batch 4 claims base offset 1: below what batch 3 implied. Its CRC does not cover it.
    let mut bytes = fs::read(path).unwrap();
    bytes[spans[4].0..spans[4].0 + 8].copy_from_slice(&1i64.to_be_bytes());
    fs::write(path, bytes).unwrap();
    let log = Log::open(dir.path(), one_segment_config(), 0).unwrap();
    assert_eq!(log.log_end_offset(), Offset(16));
    assert_eq!(log.next_entry(), EntryIndex(8));
    for offset in [6i64, 8] {
        assert!(
            matches!(
                log.reader().read(offset, 1 << 20),
                Err(LogError::CorruptBatch { .. })
            ),
            "offset {offset}"
        );
    }
    assert_eq!(
        log.reader().read(0, 1 << 20).unwrap().batches().count(),
        3,
        "reads stop before damage"
    );
}

#[test]
fn a_damaged_meta_entry_ending_a_sealed_segment_keeps_its_entry_index() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 1024,
        ..small_config()
    };
    let mut log = Log::open(dir.path(), cfg.clone(), 0).unwrap();
    log.append(&[batch(0, 4, 200, 0)], None, 0).unwrap();
    let meta = Batch::validate(encode_meta_entry(b"membership", 0).unwrap()).unwrap();
    log.append(&[meta], None, 0).unwrap();
    log.append(&[batch(1, 4, 200, 0)], None, 0).unwrap(); // rolls: the meta ends segment 0
    assert_eq!(log.segment_count(), 2);
    log.close().unwrap();
    let first = &segment_files(dir.path(), "log")[0];
    let spans = batch_spans(first);
    assert_eq!(spans.len(), 2);
    flip(first, spans[1].0 + spans[1].1 - 1); // damage the meta entry's payload
    fs::remove_file(first.with_extension("index")).unwrap(); // force a rebuild of segment 0
    let log = Log::open(dir.path(), cfg, 0).unwrap();
    assert_eq!(
        log.next_entry(),
        EntryIndex(3),
        "entry numbering must not shift"
    );
    assert_eq!(log.log_end_offset(), Offset(8));
    assert_eq!(read_all(&log.reader()).len(), 2);
}

#[test]
fn untrimmed_zeroed_index_files_are_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    for tag in 0..60 {
        log.append(&[batch(tag, 2, 60, 0)], None, 0).unwrap();
    }
    let (end, entries) = (log.log_end_offset(), log.next_entry());
    log.close().unwrap();
    // A crash between creating a segment and trimming the previous one's indexes leaves them
    // at their preallocated size, zero-filled after the real entries.
    for extension in ["index", "timeindex", "entryindex"] {
        let path = &segment_files(dir.path(), extension)[0];
        let file = fs::OpenOptions::new().write(true).open(path).unwrap();
        file.set_len(file.metadata().unwrap().len() + 48 * 10)
            .unwrap();
    }
    let log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!((log.log_end_offset(), log.next_entry()), (end, entries));
    assert_eq!(read_all(&log.reader()).len(), 60);
}

#[test]
fn largest_timestamp_survives_reopen_when_the_last_index_point_is_a_meta_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        index_interval_bytes: 0,
        ..one_segment_config()
    };
    let mut log = Log::open(dir.path(), cfg.clone(), 0).unwrap();
    log.append(&[batch(0, 1, 10, 100)], None, 0).unwrap();
    log.append(&[batch(1, 1, 10, 200)], None, 0).unwrap();
    let meta = Batch::validate(encode_meta_entry(b"noop", 0).unwrap()).unwrap();
    log.append(&[meta], None, 0).unwrap();
    assert_eq!(
        log.reader().offset_for_timestamp(150).unwrap(),
        Some(Offset(1))
    );
    log.roll(0).unwrap();
    log.append(&[batch(2, 1, 10, 50)], None, 0).unwrap();
    log.close().unwrap();
    let log = Log::open(dir.path(), cfg, 0).unwrap();
    assert_eq!(
        log.reader().offset_for_timestamp(150).unwrap(),
        Some(Offset(1))
    );
    assert_eq!(log.reader().offset_for_timestamp(201).unwrap(), None);
}

/// Review finding: under a single replica, meta entries at the high watermark are already
/// visible; truncating them would cut bytes a reader may hold.
#[test]
fn visible_meta_entries_cannot_be_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), one_segment_config(), 0).unwrap();
    log.append(&[batch(0, 2, 10, 0)], None, 0).unwrap();
    let meta = Batch::validate(encode_meta_entry(b"noop", 0).unwrap()).unwrap();
    log.append(&[meta], None, 0).unwrap();
    assert_eq!(log.high_watermark(), Offset(2));
    let err = log.truncate_to(Offset(2)).unwrap_err();
    assert!(
        matches!(err, LogError::TruncateBelowHighWatermark { .. }),
        "{err}"
    );
    let err = log.truncate_entries_from(EntryIndex(1)).unwrap_err();
    assert!(
        matches!(err, LogError::TruncateBelowHighWatermark { .. }),
        "{err}"
    );
    assert_eq!(log.next_entry(), EntryIndex(2));
}

/// Review finding: two logs on one directory would cut and remap each other's files.
#[test]
fn a_directory_can_be_open_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), one_segment_config(), 0).unwrap();
    let err = Log::open(dir.path(), one_segment_config(), 0).unwrap_err();
    assert!(matches!(err, LogError::Locked { .. }), "{err}");
    drop(log);
    Log::open(dir.path(), one_segment_config(), 0).unwrap();
}

/// Review finding: a segment file name whose base offset would overflow offset arithmetic is
/// not taken for a segment.
#[test]
fn absurd_segment_names_are_not_segments() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("18446744073709551615.log"), b"garbage").unwrap();
    fs::write(dir.path().join("09223372036854775807.log"), b"garbage").unwrap();
    let mut log = Log::open(dir.path(), one_segment_config(), 0).unwrap();
    assert_eq!(log.log_end_offset(), Offset(0));
    log.append(&[batch(0, 1, 10, 0)], None, 0).unwrap();
}

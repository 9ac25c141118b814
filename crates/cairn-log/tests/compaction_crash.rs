//! Crash safety of compaction: a clean stopped at every step of its file protocol (an injected
//! fault there, then the process "dies": the log is dropped without closing) reopens to exactly
//! the records before the clean or exactly the records after it, never a mix and never a loss.
//! Also: a clean that fails while writing its staged segments changes nothing, and leftover
//! staging files from a crash are removed at open.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::path::Path;

use cairn_log::batch::Compression;
use cairn_log::fault::{self, FaultPoint};
use cairn_log::{Log, LogError};
use common::damage::copy_dir;
use common::keyed::{Keyed, compact_config, keyed_batch, read_records};

/// A log of three sealed segments and an active one, where cleaning removes superseded values
/// in every sealed segment and an expired tombstone.
fn build(dir: &Path) {
    let mut log = Log::open(dir, compact_config(), 0).unwrap();
    let mut now = 0;
    for round in 0..3 {
        for key in ["a", "b", "c", "d"] {
            let value = format!("{key}{round}");
            let value = (key != "d" || round < 2).then_some(value.as_str());
            let batch = keyed_batch(&[(Some(key), value)], Compression::Lz4, now, None);
            log.append(&[batch], None, now).unwrap();
            now += 1;
        }
        log.roll(now).unwrap();
    }
    let batch = keyed_batch(&[(Some("e"), Some("e0"))], Compression::None, now, None);
    log.append(&[batch], None, now).unwrap();
    // A first clean sets the tombstone's delete horizon (now + 1000).
    log.clean(now).unwrap();
    log.close().unwrap();
}

const CLEAN_AT_MS: i64 = 10_000;

fn records_after_clean(original: &Path) -> Vec<Keyed> {
    let copy = copy_dir(original);
    let mut log = Log::open(copy.path(), compact_config(), CLEAN_AT_MS).unwrap();
    let outcome = log.clean(CLEAN_AT_MS).unwrap();
    assert_eq!(outcome.tombstones_removed, 1);
    read_records(&log.reader())
}

#[test]
fn a_crash_at_every_step_of_the_swap_reopens_before_or_after_the_clean() {
    let original = tempfile::tempdir().unwrap();
    build(original.path());
    let before = read_records(
        &Log::open(original.path(), compact_config(), 0)
            .unwrap()
            .reader(),
    );
    let after = records_after_clean(original.path());
    assert_ne!(before, after, "the clean must change something");
    let (mut saw_before, mut saw_after) = (false, false);
    for step in 0.. {
        let copy = copy_dir(original.path());
        let dir = copy.path();
        let mut log = Log::open(dir, compact_config(), CLEAN_AT_MS).unwrap();
        fault::arm_after(dir, FaultPoint::CleanStep, libc::EIO, step, 1);
        let result = log.clean(CLEAN_AT_MS);
        fault::disarm(dir);
        if result.is_ok() {
            assert!(step > 3, "the protocol has more than {step} steps");
            assert_eq!(read_records(&log.reader()), after);
            break;
        }
        assert!(
            matches!(result, Err(LogError::Poisoned { .. })),
            "step {step}: {result:?}"
        );
        // The process dies here: no close, no clean-shutdown marker.
        drop(log);
        let mut reopened = Log::open(dir, compact_config(), CLEAN_AT_MS).unwrap();
        let records = read_records(&reopened.reader());
        if records == before {
            saw_before = true;
        } else {
            assert_eq!(records, after, "step {step}: neither before nor after");
            saw_after = true;
        }
        // Whatever state it reopened in, the log appends and cleans again to the same result.
        let now = CLEAN_AT_MS + 1;
        reopened.clean(now).unwrap();
        assert_eq!(read_records(&reopened.reader()), after, "step {step}");
        let batch = keyed_batch(&[(Some("f"), Some("f0"))], Compression::None, now, None);
        reopened.append(&[batch], None, now).unwrap();
        reopened.close().unwrap();
        let reopened = Log::open(dir, compact_config(), now).unwrap();
        assert_eq!(read_records(&reopened.reader()).len(), after.len() + 1);
    }
    assert!(
        saw_before && saw_after,
        "steps reached both sides of the commit"
    );
}

#[test]
fn a_clean_that_fails_while_staging_changes_nothing() {
    let original = tempfile::tempdir().unwrap();
    build(original.path());
    for errno in [libc::EIO, libc::ENOSPC] {
        let copy = copy_dir(original.path());
        let dir = copy.path();
        let mut log = Log::open(dir, compact_config(), CLEAN_AT_MS).unwrap();
        let before = read_records(&log.reader());
        fault::arm(dir, FaultPoint::Write, errno, 1);
        let err = log.clean(CLEAN_AT_MS).unwrap_err();
        fault::disarm(dir);
        assert!(matches!(err, LogError::Io { .. }), "{err}");
        assert!(
            log.poisoned().is_none(),
            "a failed stage is not an I/O failure of the log"
        );
        assert_eq!(read_records(&log.reader()), before);
        assert!(
            !dir.join("compaction.cleaned").exists(),
            "the staging directory is removed"
        );
        // The log still appends, and cleans once the fault is gone.
        let batch = keyed_batch(&[(Some("f"), Some("f0"))], Compression::None, 1, None);
        log.append(&[batch], None, CLEAN_AT_MS).unwrap();
        assert!(log.clean(CLEAN_AT_MS).unwrap().ran);
    }
}

#[test]
fn staging_left_by_a_crash_mid_clean_is_removed_at_open() {
    let original = tempfile::tempdir().unwrap();
    build(original.path());
    let before = read_records(
        &Log::open(original.path(), compact_config(), 0)
            .unwrap()
            .reader(),
    );
    let copy = copy_dir(original.path());
    let dir = copy.path();
    // A crash while the job wrote: a staging directory with a torn segment in it.
    let staging = dir.join("compaction.cleaned");
    std::fs::create_dir(&staging).unwrap();
    std::fs::write(staging.join("00000000000000000000.log"), b"torn").unwrap();
    let log = Log::open(dir, compact_config(), 0).unwrap();
    assert_eq!(read_records(&log.reader()), before);
    assert!(!staging.exists());
}

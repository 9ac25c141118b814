//! Corruption tests for the index files (`.index`, `.timeindex`, `.entryindex`), on real files.
//! The indexes are caches of the segment files, so each test damages one index of one segment
//! in one of several ways (deleted, cut, overwritten, copied from another segment), reopens a
//! copy of the log and checks what recovery promises: the index is rebuilt, every batch reads
//! back byte for byte at every offset, timestamp lookups answer as before the damage, and the log
//! takes appends again at the right offset.
//!
//! Logs are built under `flush.policy = os` (see [`common::damage::config`]): dropping a `Log`
//! without `close` models a process crash.
//!
//! Tests that try many cases run them all and then fail once, listing each failing case with
//! what replays it.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use std::fs;
use std::path::Path;

use cairn_log::{Log, Offset};
use common::damage::{
    Cases, Rng, Shutdown, append_data, assert_log_matches, assert_readable,
    assert_timestamps_match, copy_dir, layout, model_end, roll_by_hand_config, rolled_log, shut,
    truncate_file,
};

#[derive(Clone, Copy, Debug)]
enum IndexDamage {
    Deleted,
    /// An odd length: no whole number of entries of any index.
    TruncatedOdd,
    TruncatedEmpty,
    Zeros,
    Ones,
    RandomBytes,
    RandomLength,
    /// The same index of another segment: well formed, but about other batches.
    OtherSegments,
}

const INDEX_DAMAGE: [IndexDamage; 8] = [
    IndexDamage::Deleted,
    IndexDamage::TruncatedOdd,
    IndexDamage::TruncatedEmpty,
    IndexDamage::Zeros,
    IndexDamage::Ones,
    IndexDamage::RandomBytes,
    IndexDamage::RandomLength,
    IndexDamage::OtherSegments,
];

/// Damages the index file `path`; `other` is the same index of another segment.
fn damage_index(path: &Path, other: &Path, damage: IndexDamage, rng: &mut Rng) {
    let len = fs::metadata(path).unwrap().len() as usize;
    match damage {
        IndexDamage::Deleted => fs::remove_file(path).unwrap(),
        IndexDamage::TruncatedOdd => truncate_file(path, (len / 2) | 1),
        IndexDamage::TruncatedEmpty => truncate_file(path, 0),
        IndexDamage::Zeros => fs::write(path, vec![0u8; len]).unwrap(),
        IndexDamage::Ones => fs::write(path, vec![0xFFu8; len]).unwrap(),
        IndexDamage::RandomBytes => fs::write(path, rng.bytes(len)).unwrap(),
        IndexDamage::RandomLength => {
            let garbage_len = 1 + rng.below(2 * len + 64);
            fs::write(path, rng.bytes(garbage_len)).unwrap();
        }
        IndexDamage::OtherSegments => {
            fs::copy(other, path).unwrap();
        }
    }
}

#[test]
fn recovery_rebuilds_damaged_index_files() {
    let mut cases = Cases::default();
    for shutdown in [Shutdown::Clean, Shutdown::Crash] {
        let pristine = tempfile::tempdir().unwrap();
        let (log, model) = rolled_log(pristine.path(), 4, 15);
        shut(log, pristine.path(), shutdown);
        let segments = layout(pristine.path(), &model);
        // The first segment (its base entry comes from the log start checkpoint), a middle one
        // and the active one.
        for target in [0, 2, segments.len() - 1] {
            for extension in ["index", "timeindex", "entryindex"] {
                for (damage_idx, damage) in INDEX_DAMAGE.into_iter().enumerate() {
                    let seed = (target * 100 + damage_idx) as u64;
                    let context = format!(
                        "{shutdown:?}: {damage:?} .{extension} of segment {target} (seed {seed})"
                    );
                    cases.run(&context, || {
                        let dir = copy_dir(pristine.path());
                        let path = segments[target].sibling_in(dir.path(), extension);
                        let other = segments[(target + 1) % segments.len()]
                            .sibling_in(dir.path(), extension);
                        damage_index(&path, &other, damage, &mut Rng::new(seed));
                        let mut log = Log::open(dir.path(), roll_by_hand_config(), 0).unwrap();
                        assert_log_matches(&log, &model, Offset(0));
                        assert_timestamps_match(&log.reader(), &model);
                        let mut grown = model.clone();
                        let base = append_data(&mut log, &mut grown, 7777, 2, 10, 99_999);
                        assert_eq!(base, model_end(&model), "first append after the damage");
                        assert_readable(&log.reader(), base, 1, &grown);
                    });
                }
            }
        }
    }
    cases.finish();
}

//! Corruption tests for the log start checkpoint, on real files. The checkpoint is not a cache:
//! recovery cannot rebuild the log start offset from the segments, so each test damages the
//! checkpoint of a copy of the log (flipped bytes, cut, lengthened, overwritten), opens it as a
//! leader and as a replica, and checks that the open stops with `CorruptCheckpoint` naming the
//! file, without changing, creating or deleting a file.
//!
//! Logs are built under `flush.policy = os` (see [`common::damage::config`]): dropping a `Log`
//! without `close` models a process crash.
//!
//! Tests that try many cases run them all and then fail once, listing each failing case with
//! what replays it.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use std::fs;

use cairn_log::{Log, LogError};
use common::damage::{
    Cases, LOG_START_FILE, Rng, Shutdown, config, copy_dir, fill, shut, snapshot,
};

#[test]
fn a_damaged_log_start_checkpoint_stops_the_open_and_changes_nothing() {
    let mut cases = Cases::default();
    for shutdown in [Shutdown::Clean, Shutdown::Crash] {
        let pristine = tempfile::tempdir().unwrap();
        let mut log = Log::open(pristine.path(), config(), 0).unwrap();
        let mut model = Vec::new();
        fill(&mut log, &mut model, 2, 2, |tag| 1000 + tag as i64);
        shut(log, pristine.path(), shutdown);
        let original = fs::read(pristine.path().join(LOG_START_FILE)).unwrap();
        let mut rng = Rng::new(6);
        let mut damaged: Vec<(String, Vec<u8>)> = Vec::new();
        for at in 0..original.len() {
            for mask in [0x01, 0x80, rng.nonzero_byte()] {
                let mut bytes = original.clone();
                bytes[at] ^= mask;
                damaged.push((format!("byte {at} ^ {mask:#04x}"), bytes));
            }
        }
        for len in 0..original.len() {
            damaged.push((format!("cut to {len} bytes"), original[..len].to_vec()));
        }
        let mut longer = original.clone();
        longer.push(0);
        damaged.push(("one byte appended".to_string(), longer));
        damaged.push(("random bytes".to_string(), rng.bytes(original.len())));
        for (what, bytes) in &damaged {
            cases.run(&format!("{shutdown:?}: checkpoint {what}"), || {
                let dir = copy_dir(pristine.path());
                let path = dir.path().join(LOG_START_FILE);
                fs::write(&path, bytes).unwrap();
                let before = snapshot(dir.path());
                for replica in [false, true] {
                    let opened = if replica {
                        Log::open_replica(dir.path(), config(), 0)
                    } else {
                        Log::open(dir.path(), config(), 0)
                    };
                    match opened {
                        Err(LogError::CorruptCheckpoint { path: named, .. }) => {
                            assert_eq!(named, path, "CorruptCheckpoint names the wrong file");
                        }
                        Err(other) => panic!("open failed with {other}, not CorruptCheckpoint"),
                        Ok(_) => panic!("open succeeded over a damaged checkpoint"),
                    }
                    assert!(
                        snapshot(dir.path()) == before,
                        "a refused open changed, created or deleted a file"
                    );
                }
            });
        }
    }
    cases.finish();
}

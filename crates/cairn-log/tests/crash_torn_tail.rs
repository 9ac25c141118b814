//! Crash tests for the tail of the active segment, on real files. A crash (or a power loss) can
//! leave the last batches half written, or leave bytes after the last whole batch that were never
//! a batch at all. Each test builds a log, cuts the active segment at every byte of its last
//! batches or appends garbage to it, reopens it and checks what recovery promises: every whole
//! batch before the cut survives byte for byte, the torn or trailing bytes are cut from the file,
//! and the log takes appends again at the right offset.
//!
//! Logs are built under `flush.policy = os` (see [`common::damage::config`]): dropping a `Log`
//! without `close` models a process crash. What a power loss can do to the files is modelled by
//! cutting them directly.
//!
//! Tests that try many cases run them all and then fail once, listing each failing case with
//! what replays it.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use std::fs;
use std::path::Path;

use cairn_log::{EntryIndex, Log};
use common::damage::{
    Cases, Placed, Rng, SegmentFile, Shutdown, Stored, append_data, append_meta,
    assert_log_matches, config, copy_dir, fill, layout, model_end, shut, truncate_file,
};

fn append_bytes(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Torn tail
// ---------------------------------------------------------------------------------------------

/// Three segments; the active one ends with data, a meta entry and two more data batches, so
/// the cuts land in and around an entry that takes no offset.
fn torn_tail_log(dir: &Path, shutdown: Shutdown) -> Vec<Stored> {
    let mut log = Log::open(dir, config(), 0).unwrap();
    let mut model = Vec::new();
    fill(&mut log, &mut model, 3, 3, |tag| 1000 + tag as i64);
    append_meta(&mut log, &mut model);
    append_data(&mut log, &mut model, 900, 3, 20, 5000);
    append_data(&mut log, &mut model, 901, 1, 40, 5001);
    assert_eq!(log.segment_count(), 3);
    shut(log, dir, shutdown);
    model
}

#[test]
fn recovery_cuts_torn_tail_at_every_byte() {
    let mut cases = Cases::default();
    // `Clean` keeps the marker, which then names a size the cut file no longer has: the marker
    // must not vouch for a file that changed after it was written.
    for shutdown in [
        Shutdown::Crash,
        Shutdown::CleanMarkerDeleted,
        Shutdown::Clean,
    ] {
        let pristine = tempfile::tempdir().unwrap();
        let model = torn_tail_log(pristine.path(), shutdown);
        let segments = layout(pristine.path(), &model);
        let active = segments.last().unwrap();
        assert!(active.batches.len() >= 6, "active segment too short");
        let from = active.batches[active.batches.len() - 3].position;
        for cut in from..=active.size {
            let context = format!(
                "{shutdown:?}: active segment cut to {cut} of {} bytes",
                active.size
            );
            cases.run(&context, || {
                check_torn_tail(pristine.path(), &model, active, cut);
            });
        }
    }
    cases.finish();
}

fn check_torn_tail(pristine: &Path, model: &[Stored], active: &SegmentFile, cut: usize) {
    let dir = copy_dir(pristine);
    let path = active.path_in(dir.path());
    truncate_file(&path, cut);
    let whole: Vec<&Placed> = active.batches.iter().filter(|p| p.end() <= cut).collect();
    let kept = active.batches[0].idx + whole.len();
    let survivors = &model[..kept];

    let log = Log::open(dir.path(), config(), 0).unwrap();
    assert_log_matches(&log, survivors, active.base);
    let durable_end = whole.last().map_or(0, |p| p.end());
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        durable_end as u64,
        "the torn bytes are still in the file"
    );
    drop(log);

    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    assert_log_matches(&log, survivors, active.base);
    let mut grown = survivors.to_vec();
    let base = append_data(&mut log, &mut grown, 999, 2, 16, 6000);
    assert_eq!(base, model_end(survivors), "first append after recovery");
    assert_eq!(grown.last().unwrap().entry, EntryIndex(kept as u64));
    drop(log);
    let log = Log::open(dir.path(), config(), 0).unwrap();
    assert_log_matches(&log, &grown, active.base);
}

// ---------------------------------------------------------------------------------------------
// Garbage after the last batch
// ---------------------------------------------------------------------------------------------

#[test]
fn recovery_cuts_garbage_appended_to_the_active_segment() {
    let mut cases = Cases::default();
    for shutdown in [Shutdown::Clean, Shutdown::Crash] {
        let pristine = tempfile::tempdir().unwrap();
        let mut log = Log::open(pristine.path(), config(), 0).unwrap();
        let mut model = Vec::new();
        fill(&mut log, &mut model, 2, 6, |tag| 1000 + tag as i64);
        shut(log, pristine.path(), shutdown);
        let segments = layout(pristine.path(), &model);
        let active = segments.last().unwrap();
        let last = &model.last().unwrap().bytes;
        let mut rng = Rng::new(4);
        let mut garbage: Vec<(String, Vec<u8>)> = Vec::new();
        for len in [1, 11, 12, 17, 61, 300, 5000] {
            garbage.push((format!("{len} random bytes"), rng.bytes(len)));
        }
        for len in [1, 12, 61, 4096] {
            garbage.push((format!("{len} zero bytes"), vec![0; len]));
        }
        for len in [12, 17, 21, 61, last.len() / 2, last.len() - 1] {
            garbage.push((
                format!("the first {len} bytes of a valid batch"),
                last[..len].to_vec(),
            ));
        }
        for (what, bytes) in &garbage {
            cases.run(&format!("{shutdown:?}: {what} appended"), || {
                let dir = copy_dir(pristine.path());
                let path = active.path_in(dir.path());
                append_bytes(&path, bytes);
                let mut log = Log::open(dir.path(), config(), 0).unwrap();
                assert_log_matches(&log, &model, active.base);
                assert_eq!(
                    fs::metadata(&path).unwrap().len(),
                    active.size as u64,
                    "the garbage is still in the file"
                );
                let mut grown = model.clone();
                let base = append_data(&mut log, &mut grown, 7777, 2, 10, 99_999);
                assert_eq!(base, model_end(&model), "first append after recovery");
                drop(log);
                let log = Log::open(dir.path(), config(), 0).unwrap();
                assert_log_matches(&log, &grown, active.base);
            });
        }
    }
    cases.finish();
}

//! Corruption tests that damage chosen batches of a segment file, on real files: the records of
//! one batch or of two neighbours, the length field (so the framing is lost), or the base offset
//! of the batch after a damaged one (backwards, beyond the segment, or contradicting the intact
//! batches after it). Each test reopens a copy of the log and checks what recovery promises:
//! the damaged batches are kept but never served, their intact neighbours are served byte for
//! byte, recovery never cuts an intact batch that may have been acknowledged, never hands out an
//! offset twice, and damage recovery will not cut stops the open without touching a file.
//!
//! Logs are built under `flush.policy = os` (see [`common::damage::config`]): dropping a `Log`
//! without `close` models a process crash.
//!
//! Known limit: `baseOffset`, `batchLength` and `partitionLeaderEpoch` (bytes 0..16 of a batch)
//! are outside the CRC. Damage to the base offset is caught by the offset-continuity check and
//! damage to the length by framing, but a changed leader epoch cannot be detected at all, so no
//! test here touches bytes 12..16. A second blind spot: right after a damaged batch, whose offset
//! count is unknown, a small increase in the next batch's base offset cannot be told from a
//! larger damaged batch, so the test that raises one may see the open refused instead.
//!
//! Tests that try many cases run them all and then fail once, listing each failing case with
//! what replays it.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use std::fs;
use std::path::Path;

use cairn_log::batch::field;
use cairn_log::{EntryIndex, Log, LogConfig, LogError, Offset};
use common::damage::{
    Cases, Outcome, Placed, SegmentFile, Shutdown, Stored, append_data, assert_readable,
    assert_unchanged, config, copy_dir, flip_byte, holder, layout, model_end, read_at,
    roll_by_hand_config, rolled_log, shut,
};

/// One active segment of 14 batches, left as `shutdown` says. Returns the model and the layout
/// of its only segment.
fn one_segment_log(dir: &Path, shutdown: Shutdown) -> (Vec<Stored>, SegmentFile) {
    let (log, model) = rolled_log(dir, 1, 14);
    shut(log, dir, shutdown);
    let mut segments = layout(dir, &model);
    (model, segments.pop().unwrap())
}

/// The position of a byte in the middle of the records of `placed` (inside the CRC range).
fn middle_of_records(placed: &Placed) -> usize {
    placed.position + field::RECORDS + (placed.len - field::RECORDS) / 2
}

/// Checks a log whose batches `damaged` (model indexes) are unreadable: each of their offsets
/// fails with `CorruptBatch` naming `path`, every other offset reads back exactly, and the ends
/// are those of the whole model.
fn assert_only_damaged_unreadable(log: &Log, path: &Path, model: &[Stored], damaged: &[usize]) {
    let reader = log.reader();
    assert_eq!(log.log_end_offset(), model_end(model), "log end offset");
    assert_eq!(
        log.next_entry(),
        EntryIndex(model.len() as u64),
        "next entry"
    );
    for offset in (0..model_end(model).0).map(Offset) {
        let idx = holder(model, offset);
        if !damaged.contains(&idx) {
            assert_readable(&reader, offset, 1, model);
            assert_readable(&reader, offset, 1 << 20, model);
            continue;
        }
        match read_at(&reader, offset, 1 << 20, model) {
            Outcome::Corrupt(named) => assert_eq!(named, path, "CorruptBatch names the wrong file"),
            Outcome::Served(idxs) => {
                panic!("offset {offset} of damaged batch {idx} served {idxs:?}")
            }
        }
    }
}

#[test]
fn recovery_keeps_a_damaged_batch_in_the_active_segment_and_serves_its_neighbours() {
    let mut cases = Cases::default();
    for shutdown in [Shutdown::Crash, Shutdown::Clean] {
        cases.run(&format!("{shutdown:?}"), || {
            let pristine = tempfile::tempdir().unwrap();
            let (model, active) = one_segment_log(pristine.path(), shutdown);
            let dir = copy_dir(pristine.path());
            let path = active.path_in(dir.path());
            let victim = active.batches[5];
            flip_byte(&path, middle_of_records(&victim), 0x40);
            let damaged = fs::read(&path).unwrap();

            let mut log = Log::open(dir.path(), config(), 0).unwrap();
            // Only the zeros reserved past the data end (after a crash) may go.
            assert_unchanged(
                &path,
                &damaged[..active.size],
                "recovery changed the segment",
            );
            assert_only_damaged_unreadable(&log, &path, &model, &[victim.idx]);
            let mut grown = model.clone();
            let base = append_data(&mut log, &mut grown, 7777, 2, 10, 99_999);
            assert_eq!(base, model_end(&model), "first append after recovery");
            drop(log);

            let log = Log::open(dir.path(), config(), 0).unwrap();
            assert_only_damaged_unreadable(&log, &path, &grown, &[victim.idx]);
        });
    }
    cases.finish();
}

#[test]
fn recovery_refuses_to_cut_a_segment_whose_framing_is_lost() {
    let mut cases = Cases::default();
    for shutdown in [Shutdown::Crash, Shutdown::CleanMarkerDeleted] {
        let pristine = tempfile::tempdir().unwrap();
        let (_, active) = one_segment_log(pristine.path(), shutdown);
        let victim = active.batches[5];
        let next = active.batches[6];
        let length = (victim.len - 12) as u32;
        // Lengths that lose the framing: impossible ones, and plausible ones that point into
        // the middle of a later batch or at the end of the file. (A length that lands exactly
        // on a later batch boundary is indistinguishable from framing, so it is not here.)
        let boundaries: Vec<usize> = active.batches.iter().map(Placed::end).collect();
        let mut lengths = vec![u32::MAX, 0, 48, 0x7FFF_FFFF, 0x0100_0000 | length];
        for candidate in [
            length + 1,
            length - 1,
            length + 7,
            length - 7,
            length * 2 + 3,
        ] {
            lengths.push(candidate);
        }
        lengths.push((active.size - victim.position - 12) as u32);
        lengths.retain(|&l| {
            let end = victim.position + 12 + l as usize;
            l != length && (end == active.size || !boundaries.contains(&end))
        });
        for bad in lengths {
            cases.run(
                &format!("{shutdown:?}: batch length {length} -> {bad}"),
                || {
                    let dir = copy_dir(pristine.path());
                    let path = active.path_in(dir.path());
                    let mut bytes = fs::read(&path).unwrap();
                    let at = victim.position + field::BATCH_LENGTH;
                    bytes[at..at + 4].copy_from_slice(&bad.to_be_bytes());
                    fs::write(&path, &bytes).unwrap();
                    match Log::open(dir.path(), config(), 0) {
                        Err(LogError::DamagedSegment {
                            path: named,
                            position,
                            next_valid,
                        }) => {
                            assert_eq!(named, path);
                            assert_eq!(position.as_usize(), victim.position, "damage position");
                            assert_eq!(next_valid.as_usize(), next.position, "next valid batch");
                        }
                        Err(other) => panic!("open failed with {other}, not DamagedSegment"),
                        Ok(log) => panic!(
                            "open succeeded with log end {} (the segment is now {} of {} bytes)",
                            log.log_end_offset(),
                            fs::metadata(&path).unwrap().len(),
                            bytes.len()
                        ),
                    }
                    assert_unchanged(&path, &bytes, "a refused open changed the segment");
                },
            );
        }
    }
    cases.finish();
}

#[test]
fn recovery_steps_over_consecutive_damaged_batches_in_the_active_segment() {
    // Two neighbouring batches damaged inside their records, lengths intact: the framing still
    // leads to the valid batches after them, which may have been acknowledged.
    let pristine = tempfile::tempdir().unwrap();
    let (model, active) = one_segment_log(pristine.path(), Shutdown::Crash);
    let dir = copy_dir(pristine.path());
    let path = active.path_in(dir.path());
    let victims = [active.batches[5], active.batches[6]];
    for victim in &victims {
        flip_byte(&path, middle_of_records(victim), 0x40);
    }
    let damaged = fs::read(&path).unwrap();
    let log = Log::open(dir.path(), config(), 0).unwrap();
    // Only the zeros reserved past the data end may go.
    assert_unchanged(
        &path,
        &damaged[..active.size],
        "recovery cut valid batches after the damage",
    );
    assert_only_damaged_unreadable(&log, &path, &model, &[victims[0].idx, victims[1].idx]);
}

#[test]
fn recovery_rejects_a_base_offset_that_goes_backwards_after_a_damaged_batch() {
    // Batch 5 is damaged in its records; batch 6's base offset (outside the CRC) is rewritten to
    // batch 4's. Batch 6 must not be believed: that would hand out batch 4's offsets again.
    let pristine = tempfile::tempdir().unwrap();
    let (model, active) = one_segment_log(pristine.path(), Shutdown::Crash);
    let dir = copy_dir(pristine.path());
    let path = active.path_in(dir.path());
    let (before, damaged, moved) = (active.batches[4], active.batches[5], active.batches[6]);
    flip_byte(&path, middle_of_records(&damaged), 0x40);
    let mut bytes = fs::read(&path).unwrap();
    let at = moved.position + field::BASE_OFFSET;
    bytes[at..at + 8].copy_from_slice(&model[before.idx].base.as_i64().to_be_bytes());
    fs::write(&path, &bytes).unwrap();

    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        active.size as u64,
        "recovery cut valid batches after the damage"
    );
    assert_only_damaged_unreadable(&log, &path, &model, &[damaged.idx, moved.idx]);
    let mut grown = model.clone();
    let base = append_data(&mut log, &mut grown, 7777, 2, 10, 99_999);
    assert_eq!(base, model_end(&model), "first append after recovery");
}

#[test]
fn recovery_never_believes_a_base_offset_beyond_the_segment_after_a_damaged_batch() {
    let mut cases = Cases::default();
    // Batch k - 1 is damaged in its records; batch k's base offset has its top byte flipped,
    // putting it 2^56 past the segment's base, where no offset of this segment can be (index
    // entries hold offsets relative to the base in 32 bits). Recovery must step over both (or
    // refuse an active segment); believing batch k invents offsets and cuts the intact batches
    // after it. Every k is tried, so batch k is sometimes due for an index entry. The sealed
    // segment has its index files deleted, so that it is rebuilt too.
    let pristine = tempfile::tempdir().unwrap();
    let (log, model) = rolled_log(pristine.path(), 2, 14);
    shut(log, pristine.path(), Shutdown::Crash);
    let segments = layout(pristine.path(), &model);
    for (target, segment) in segments.iter().enumerate() {
        for k in 2..segment.batches.len() - 1 {
            cases.run(
                &format!("segment {target}: base offset of batch {k} moved"),
                || {
                    let dir = copy_dir(pristine.path());
                    let path = segment.path_in(dir.path());
                    let (damaged, moved) = (segment.batches[k - 1], segment.batches[k]);
                    flip_byte(&path, middle_of_records(&damaged), 0x40);
                    flip_byte(&path, moved.position + field::BASE_OFFSET, 0x01);
                    if target + 1 < segments.len() {
                        for extension in ["index", "timeindex", "entryindex"] {
                            fs::remove_file(segment.sibling_in(dir.path(), extension)).unwrap();
                        }
                    }
                    let bytes = fs::read(&path).unwrap();
                    let mut log = match Log::open(dir.path(), config(), 0) {
                        Ok(log) => log,
                        Err(LogError::DamagedSegment { .. }) if target + 1 == segments.len() => {
                            assert_unchanged(&path, &bytes, "a refused open changed the segment");
                            return;
                        }
                        Err(other) => panic!("open failed with {other}"),
                    };
                    assert_unchanged(
                        &path,
                        &bytes[..segment.size],
                        "recovery changed the segment (cut valid batches after the damage)",
                    );
                    assert_only_damaged_unreadable(&log, &path, &model, &[damaged.idx, moved.idx]);
                    let mut grown = model.clone();
                    let base = append_data(&mut log, &mut grown, 7777, 2, 10, 99_999);
                    assert_eq!(base, model_end(&model), "first append after recovery");
                },
            );
        }
    }
    cases.finish();
}

#[test]
fn recovery_never_cuts_an_intact_batch_that_contradicts_one_accepted_after_damage() {
    // Batch 10 is damaged in its records, so batch 11's base offset cannot be checked exactly;
    // it has been raised by 100, which stays inside the segment. Batches 12 and 13 are intact
    // and disagree with it. One of the two sides has a damaged base offset and either may be
    // acknowledged data, so the open must not settle it by cutting 12 and 13 as a torn tail.
    // (Found by a random trial: active segment, seed 1200.)
    let pristine = tempfile::tempdir().unwrap();
    let (model, active) = one_segment_log(pristine.path(), Shutdown::Crash);
    let dir = copy_dir(pristine.path());
    let path = active.path_in(dir.path());
    let (damaged, raised) = (active.batches[10], active.batches[11]);
    flip_byte(&path, middle_of_records(&damaged), 0x40);
    let mut bytes = fs::read(&path).unwrap();
    let at = raised.position + field::BASE_OFFSET;
    let base = model[raised.idx].base.plus(100);
    bytes[at..at + 8].copy_from_slice(&base.as_i64().to_be_bytes());
    fs::write(&path, &bytes).unwrap();

    let log = match Log::open(dir.path(), config(), 0) {
        Err(LogError::DamagedSegment { path: named, .. }) => {
            assert_eq!(named, path, "DamagedSegment names the wrong file");
            assert_unchanged(&path, &bytes, "a refused open changed the segment");
            return;
        }
        Err(other) => panic!("open failed with {other}"),
        Ok(log) => log,
    };
    assert_unchanged(
        &path,
        &bytes[..active.size],
        "recovery changed the segment (cut intact batches after the damage)",
    );
    let reader = log.reader();
    for placed in active
        .batches
        .iter()
        .filter(|p| p.idx != damaged.idx && p.idx != raised.idx)
    {
        for offset in (model[placed.idx].base.0..model[placed.idx].next.0).map(Offset) {
            assert_readable(&reader, offset, 1, &model);
        }
    }
}

#[test]
fn reads_step_over_consecutive_damaged_batches_in_a_sealed_segment() {
    // An index point only every 4 KiB: a read of the batch after two damaged ones has to walk
    // past both from the segment start.
    let cfg = LogConfig {
        index_interval_bytes: 4096,
        ..roll_by_hand_config()
    };
    let pristine = tempfile::tempdir().unwrap();
    let mut log = Log::open(pristine.path(), cfg.clone(), 0).unwrap();
    let mut model = Vec::new();
    for tag in 0..10 {
        append_data(&mut log, &mut model, tag, 2, 20, 1000 + tag as i64);
    }
    log.roll(0).unwrap();
    append_data(&mut log, &mut model, 10, 2, 20, 2000);
    log.close().unwrap();
    let segments = layout(pristine.path(), &model);
    let dir = copy_dir(pristine.path());
    let path = segments[0].path_in(dir.path());
    let victims = [segments[0].batches[3], segments[0].batches[4]];
    for victim in &victims {
        flip_byte(&path, middle_of_records(victim), 0x40);
    }
    let log = Log::open(dir.path(), cfg, 0).unwrap();
    assert_only_damaged_unreadable(&log, &path, &model, &[victims[0].idx, victims[1].idx]);

    // A scan (what rebuilds state at open) visits every other batch, in order, and reports the
    // damage once where it starts, instead of failing.
    let mut visited = Vec::new();
    let damaged = log
        .reader()
        .scan_batches(0, |batch| {
            visited.push(batch.base_offset());
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    let expected: Vec<Offset> = model
        .iter()
        .enumerate()
        .filter(|(idx, _)| *idx != victims[0].idx && *idx != victims[1].idx)
        .map(|(_, stored)| stored.base)
        .collect();
    assert_eq!(visited, expected);
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    assert_eq!(damaged[0].path, path);
    assert_eq!(damaged[0].position.0 as usize, victims[0].position);
    // A scan that breaks stops there.
    let mut first = Vec::new();
    log.reader()
        .scan_batches(0, |batch| {
            first.push(batch.base_offset());
            std::ops::ControlFlow::Break(())
        })
        .unwrap();
    assert_eq!(first, vec![model[0].base]);
}

//! Repair of damaged entries in place (`LogReader::damaged_entries`, `Log::repair_entries`), on
//! real files: a byte flipped inside a batch's CRC range while the log is open is found by
//! entry index, a good copy of the same entry rewrites it at the same position and it reads
//! back byte for byte; copies that cannot be those entries are refused without a byte written.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use cairn_log::batch::field;
use cairn_log::{EntryIndex, LogError};
use common::damage::{Placed, assert_readable, layout, rolled_log};

/// XORs `mask` into one byte of `path` in place (segment files are preallocated: never read
/// or rewrite the whole file).
fn flip_in_place(path: &Path, position: usize, mask: u8) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, position as u64).unwrap();
    byte[0] ^= mask;
    file.write_all_at(&byte, position as u64).unwrap();
}

fn bytes_at(path: &Path, placed: &Placed) -> Vec<u8> {
    let mut out = vec![0u8; placed.len];
    File::open(path)
        .unwrap()
        .read_exact_at(&mut out, placed.position as u64)
        .unwrap();
    out
}

fn middle_of_records(placed: &Placed) -> usize {
    placed.position + field::RECORDS + (placed.len - field::RECORDS) / 2
}

#[test]
fn a_damaged_entry_is_found_by_index_and_rewritten_in_place_from_a_good_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, model) = rolled_log(dir.path(), 2, 6);
    let segments = layout(dir.path(), &model);
    let first = (&segments[0], segments[0].batches[3]);
    let second = (&segments[1], segments[1].batches[2]);
    for (segment, placed) in [first, second] {
        flip_in_place(
            &segment.path_in(dir.path()),
            middle_of_records(&placed),
            0x5a,
        );
    }
    let reader = log.reader();
    assert!(matches!(
        reader.read(model[3].base.as_i64(), 1 << 20),
        Err(LogError::CorruptBatch { .. })
    ));

    let found = reader.damaged_entries(EntryIndex(u64::MAX));
    assert_eq!(found.len(), 2, "{found:?}");
    for (range, (segment, placed)) in found.iter().zip([first, second]) {
        let stored = &model[placed.idx];
        assert_eq!(range.first_entry, stored.entry);
        assert_eq!(range.entry_count, 1);
        assert_eq!(range.base_offset, stored.base);
        assert_eq!(range.next_offset, Some(model[placed.idx + 1].base));
        assert_eq!(range.path, segment.path_in(dir.path()));
        assert_eq!(range.position.as_u64(), placed.position as u64);
        assert_eq!(range.len_bytes(), placed.len as u64);
        log.repair_entries(range, std::slice::from_ref(&stored.bytes))
            .unwrap();
        assert_eq!(
            bytes_at(&segment.path_in(dir.path()), &placed),
            stored.bytes.as_ref()
        );
    }
    assert!(reader.damaged_entries(EntryIndex(u64::MAX)).is_empty());
    for stored in &model {
        assert_readable(&reader, stored.base, 1, &model);
    }
    // A second repair of the same span finds it valid and writes nothing.
    log.repair_entries(&found[0], std::slice::from_ref(&model[3].bytes))
        .unwrap();
}

#[test]
fn copies_that_cannot_be_the_damaged_entries_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, model) = rolled_log(dir.path(), 1, 8);
    let segment = &layout(dir.path(), &model)[0];
    let placed = segment.batches[4];
    let path = segment.path_in(dir.path());
    flip_in_place(&path, middle_of_records(&placed), 0x01);
    let damaged = bytes_at(&path, &placed);
    let range = log.reader().damaged_entries(EntryIndex(u64::MAX)).remove(0);

    let mut flipped = model[4].bytes.to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x10;
    let wrong = [
        vec![model[3].bytes.clone()],
        vec![model[5].bytes.clone()],
        vec![model[4].bytes.clone(), model[5].bytes.clone()],
        vec![],
        vec![bytes::Bytes::from(flipped)],
    ];
    for copies in wrong {
        match log.repair_entries(&range, &copies) {
            Err(LogError::RepairRefused { .. }) => {}
            other => panic!("copies of {} batches: {other:?}", copies.len()),
        }
        assert_eq!(bytes_at(&path, &placed), damaged, "a refused repair wrote");
    }
    // Past the written end: refused too.
    let mut beyond = range.clone();
    beyond.end = cairn_log::FilePos(u32::MAX);
    assert!(matches!(
        log.repair_entries(&beyond, std::slice::from_ref(&model[4].bytes)),
        Err(LogError::RepairRefused { .. })
    ));
}

#[test]
fn entries_after_a_damaged_one_read_by_index_and_the_damaged_one_never_does() {
    let dir = tempfile::tempdir().unwrap();
    let (log, model) = rolled_log(dir.path(), 1, 8);
    let segment = &layout(dir.path(), &model)[0];
    let placed = segment.batches[2];
    flip_in_place(
        &segment.path_in(dir.path()),
        middle_of_records(&placed),
        0x04,
    );
    let reader = log.reader();
    for stored in model.iter().filter(|s| s.entry != model[2].entry) {
        let got = reader.read_entries(stored.entry, 1, 1 << 20).unwrap();
        assert_eq!(got.len(), 1, "entry {}", stored.entry);
        assert_eq!(got[0].batch, stored.bytes, "entry {}", stored.entry);
    }
    assert!(matches!(
        reader.read_entries(model[2].entry, 1, 1 << 20),
        Err(LogError::CorruptBatch { .. })
    ));
    // A read across the damage returns what precedes it, with the damage.
    let (before, damage) = reader.read_entries_until_damage(model[0].entry, 8, 1 << 20);
    assert_eq!(before.len(), 2);
    assert!(matches!(damage, Some(LogError::CorruptBatch { .. })));
}

#[test]
fn the_high_watermark_and_a_truncation_pass_a_damaged_committed_entry() {
    let dir = tempfile::tempdir().unwrap();
    // No index point inside the segment: every walk starts at its first batch.
    let cfg = cairn_log::LogConfig {
        index_interval_bytes: 1 << 20,
        ..common::damage::roll_by_hand_config()
    };
    let mut log = cairn_log::Log::open_replica(dir.path(), cfg, 0).unwrap();
    let mut model = Vec::new();
    for tag in 0..6 {
        common::damage::append_data(&mut log, &mut model, tag, 2, 16, 1_000);
    }
    log.set_high_watermark(model[2].next).unwrap();
    let segment = &layout(dir.path(), &model)[0];
    let placed = segment.batches[1];
    flip_in_place(
        &segment.path_in(dir.path()),
        middle_of_records(&placed),
        0x08,
    );
    // Raft commits entries after the damaged one (the high watermark moves past it) and
    // truncates an uncommitted suffix behind it.
    log.set_high_watermark(model[4].next).unwrap();
    log.truncate_entries_from(model[5].entry).unwrap();
    assert_eq!(log.next_entry(), model[5].entry);
    assert_eq!(log.reader().high_watermark(), model[4].next);
}

//! Compaction's edge cases on real files: the newest value per key keeps its offset, a read
//! inside a gap returns the batch after it, an emptied batch that is its producer's last keeps
//! its header, compressed batches are cleaned with their own codec, tombstones go only after
//! their delete horizon, `compact,delete` also deletes by retention, entry numbering survives a
//! reopen, and the writer cleans in the background.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_log::batch::Compression;
use cairn_log::{Log, LogConfig, LogWriter, ManualClock, Offset, WriterOptions};
use common::keyed::{Keyed, compact_config, keyed_batch, read_batches, read_records};

fn put(log: &mut Log, key: &str, value: &str, now_ms: i64) -> Offset {
    let batch = keyed_batch(&[(Some(key), Some(value))], Compression::None, now_ms, None);
    log.append(&[batch], None, now_ms).unwrap()[0].base_offset
}

fn delete(log: &mut Log, key: &str, now_ms: i64) -> Offset {
    let batch = keyed_batch(&[(Some(key), None)], Compression::None, now_ms, None);
    log.append(&[batch], None, now_ms).unwrap()[0].base_offset
}

fn pairs(records: &[Keyed]) -> Vec<(u64, String, Option<String>)> {
    records
        .iter()
        .map(|r| {
            (
                r.offset.0,
                String::from_utf8(r.key.clone().unwrap_or_default()).unwrap(),
                r.value.clone().map(|v| String::from_utf8(v).unwrap()),
            )
        })
        .collect()
}

fn s(text: &str) -> Option<String> {
    Some(text.to_string())
}

#[test]
fn newest_value_per_key_survives_with_its_offset_and_a_gap_reads_as_the_next_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config(), 0).unwrap();
    put(&mut log, "a", "a0", 0); // 0: first batch of the segment, emptied but kept
    put(&mut log, "a", "a1", 0); // 1: dropped: a gap
    put(&mut log, "b", "b0", 0); // 2
    put(&mut log, "a", "a2", 0); // 3: the newest "a" in the sealed segments
    put(&mut log, "c", "c0", 0); // 4: last batch of the segment
    log.roll(0).unwrap();
    put(&mut log, "a", "a3", 0); // 5: active: never cleaned, and not in the key map
    let entries_before = log.next_entry();
    let outcome = log.clean(0).unwrap();
    assert!(outcome.ran);
    assert_eq!(outcome.segments_cleaned, 1);
    assert_eq!(outcome.records_removed, 2, "a0 and a1 are superseded by a2");
    assert_eq!(outcome.batches_removed, 1, "a1 went; a0 heads the segment");
    assert_eq!(outcome.first_dirty_offset, Offset(5));
    let expected = vec![
        (2, "b".to_string(), s("b0")),
        (3, "a".to_string(), s("a2")),
        (4, "c".to_string(), s("c0")),
        (5, "a".to_string(), s("a3")),
    ];
    assert_eq!(pairs(&read_records(&log.reader())), expected);

    // Offset 1 lies in a gap: the read returns the batch after it.
    let reader = log.reader();
    let at_gap = reader.read(1, 1).unwrap();
    let first = at_gap.batches().next().unwrap();
    assert_eq!(first.base_offset(), Offset(2));
    assert_eq!(at_gap.next_offset, Offset(3));
    // Offset 0 is the emptied head of the segment: an empty batch, then data.
    let head = reader.read(0, 1).unwrap().batches().next().unwrap();
    assert_eq!((head.base_offset(), head.record_count()), (Offset(0), 0));
    assert_eq!(log.log_start_offset(), Offset(0));

    // Entry numbering of the uncleaned part is unchanged, and survives a reopen.
    assert_eq!(log.next_entry(), entries_before);
    let records = read_records(&log.reader());
    log.close().unwrap();
    let log = Log::open(dir.path(), compact_config(), 0).unwrap();
    assert_eq!(read_records(&log.reader()), records);
    assert_eq!(log.next_entry(), entries_before);
    assert_eq!(log.first_dirty_offset(), Offset(5));
}

#[test]
fn an_emptied_batch_that_is_its_producers_last_keeps_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config(), 0).unwrap();
    put(&mut log, "x", "x0", 0);
    let producer = keyed_batch(
        &[(Some("k"), Some("v0")), (Some("k"), Some("v1"))],
        Compression::None,
        0,
        Some((7, 40)),
    );
    let placed = log.append(&[producer], None, 0).unwrap()[0];
    put(&mut log, "k", "v2", 0); // supersedes both of the producer's records
    put(&mut log, "y", "y0", 0);
    log.roll(0).unwrap();
    put(&mut log, "z", "z0", 0);
    log.clean(0).unwrap();
    let kept: Vec<_> = read_batches(&log.reader())
        .into_iter()
        .filter(|b| b.header().producer_id == 7)
        .collect();
    assert_eq!(kept.len(), 1, "the producer's last batch stays");
    let header = kept[0].header();
    assert_eq!(kept[0].record_count(), 0);
    assert_eq!(kept[0].base_offset(), placed.base_offset);
    assert_eq!(header.last_offset_delta, 1, "still covers both offsets");
    assert_eq!((header.base_sequence, header.producer_epoch), (40, 0));
    // Kafka's rule rebuilds the last sequence as baseSequence + lastOffsetDelta.
    assert_eq!(header.base_sequence + header.last_offset_delta, 41);
    log.close().unwrap();
    // Recovery (a full scan too, with the indexes gone) accepts the empty batch.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|e| e == "index" || e == "entryindex")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    let log = Log::open(dir.path(), compact_config(), 0).unwrap();
    let reread = read_batches(&log.reader());
    assert!(
        reread
            .iter()
            .any(|b| b.header().producer_id == 7 && b.record_count() == 0)
    );
}

#[test]
fn an_emptied_batch_of_a_producer_with_later_batches_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config(), 0).unwrap();
    put(&mut log, "x", "x0", 0);
    let early = keyed_batch(
        &[(Some("k"), Some("v0"))],
        Compression::None,
        0,
        Some((7, 0)),
    );
    let early = log.append(&[early], None, 0).unwrap()[0].base_offset;
    let late = keyed_batch(
        &[(Some("k"), Some("v1"))],
        Compression::None,
        0,
        Some((7, 1)),
    );
    log.append(&[late], None, 0).unwrap();
    put(&mut log, "y", "y0", 0);
    log.roll(0).unwrap();
    put(&mut log, "z", "z0", 0);
    log.clean(0).unwrap();
    let batches = read_batches(&log.reader());
    assert!(batches.iter().all(|b| b.base_offset() != early));
}

#[test]
fn compressed_batches_are_cleaned_with_their_own_codec() {
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), compact_config(), 0).unwrap();
        let batch = keyed_batch(
            &[
                (Some("a"), Some("1")),
                (Some("b"), Some("2")),
                (Some("c"), Some("3")),
            ],
            codec,
            100,
            None,
        );
        log.append(&[batch], None, 100).unwrap();
        put(&mut log, "b", "22", 200);
        log.roll(200).unwrap();
        put(&mut log, "z", "z", 300);
        let outcome = log.clean(300).unwrap();
        assert_eq!(outcome.records_removed, 1, "{codec:?}");
        let cleaned = &read_batches(&log.reader())[0];
        assert_eq!(cleaned.compression(), codec);
        assert_eq!(cleaned.record_count(), 2);
        assert_eq!(
            cleaned.header().last_offset_delta,
            2,
            "offsets keep their deltas"
        );
        // The read checked the CRC; validate it again from the bytes alone.
        cairn_log::batch::Batch::validate(cleaned.bytes().clone()).unwrap();
        let records = read_records(&log.reader());
        assert_eq!(
            records
                .iter()
                .map(|r| (r.offset.0, r.timestamp_ms))
                .collect::<Vec<_>>(),
            vec![(0, 100), (2, 102), (3, 200), (4, 300)],
            "{codec:?}: offsets and timestamps kept"
        );
    }
}

#[test]
fn tombstones_go_only_once_their_delete_horizon_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config(), 0).unwrap();
    put(&mut log, "a", "a0", 0);
    delete(&mut log, "a", 10); // 1: the newest of "a"
    put(&mut log, "b", "b0", 20);
    log.roll(20).unwrap();
    put(&mut log, "c", "c0", 30);
    // First clean: the tombstone is seen, its horizon set to 5000 + 1000.
    let first = log.clean(5000).unwrap();
    assert_eq!(first.next_delete_horizon_ms, Some(6000));
    let keys: Vec<_> = pairs(&read_records(&log.reader()));
    assert_eq!(
        keys,
        vec![
            (1, "a".into(), None),
            (2, "b".into(), s("b0")),
            (3, "c".into(), s("c0"))
        ]
    );
    let tombstone = read_records(&log.reader())[0].clone();
    assert_eq!(
        tombstone.timestamp_ms, 10,
        "the horizon does not move record timestamps"
    );
    // Before the horizon: kept.
    let early = log.clean(5999).unwrap();
    assert_eq!(early.tombstones_removed, 0);
    assert_eq!(read_records(&log.reader()).len(), 3);
    // At the horizon: gone.
    let due = log.clean(6000).unwrap();
    assert_eq!(due.tombstones_removed, 1);
    assert_eq!(
        pairs(&read_records(&log.reader())),
        vec![(2, "b".into(), s("b0")), (3, "c".into(), s("c0"))]
    );
    assert_eq!(log.reader().cleaner_stats().tombstones_removed, 1);
    assert_eq!(log.reader().cleaner_stats().runs, 3);
}

#[test]
fn records_with_a_null_key_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config(), 0).unwrap();
    for _ in 0..3 {
        let batch = keyed_batch(&[(None, Some("v"))], Compression::None, 0, None);
        log.append(&[batch], None, 0).unwrap();
    }
    log.roll(0).unwrap();
    put(&mut log, "k", "v", 0);
    assert_eq!(log.clean(0).unwrap().records_removed, 0);
    assert_eq!(read_records(&log.reader()).len(), 4);
}

#[test]
fn compact_delete_also_deletes_by_retention() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_ms: Some(1000),
        ..compact_config()
    };
    let mut log = Log::open(dir.path(), cfg, 0).unwrap();
    put(&mut log, "a", "a0", 0);
    put(&mut log, "a", "a1", 0);
    log.roll(0).unwrap();
    put(&mut log, "b", "b0", 5000);
    put(&mut log, "b", "b1", 5000);
    log.roll(5000).unwrap();
    put(&mut log, "c", "c0", 5000);
    let cleaned = log.clean(5000).unwrap();
    assert_eq!(cleaned.records_removed, 2);
    let retention = log.enforce_retention(5500).unwrap();
    assert_eq!(retention.deleted_segments, 1, "the old segment goes by age");
    assert_eq!(log.log_start_offset(), Offset(2));
    assert_eq!(
        pairs(&read_records(&log.reader())),
        vec![(3, "b".into(), s("b1")), (4, "c".into(), s("c0"))]
    );
    // And a clean after retention still works from the new log start.
    put(&mut log, "b", "b2", 6000);
    log.roll(6000).unwrap();
    put(&mut log, "d", "d0", 6000);
    log.clean(6000).unwrap();
    log.close().unwrap();
    let log = Log::open(
        dir.path(),
        LogConfig {
            retention_ms: Some(1000),
            ..compact_config()
        },
        6000,
    )
    .unwrap();
    assert_eq!(
        pairs(&read_records(&log.reader())),
        vec![
            (4, "c".into(), s("c0")),
            (5, "b".into(), s("b2")),
            (6, "d".into(), s("d0"))
        ]
    );
}

#[test]
fn a_log_that_does_not_compact_is_never_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        compact: false,
        ..compact_config()
    };
    let mut log = Log::open(dir.path(), cfg, 0).unwrap();
    put(&mut log, "a", "a0", 0);
    put(&mut log, "a", "a1", 0);
    log.roll(0).unwrap();
    put(&mut log, "a", "a2", 0);
    assert!(!log.clean(0).unwrap().ran);
    assert_eq!(read_records(&log.reader()).len(), 3);
}

#[test]
fn the_writer_cleans_in_the_background_when_the_dirty_ratio_is_reached() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config(), 0).unwrap();
    for round in 0..4 {
        for key in ["a", "b", "c"] {
            put(&mut log, key, &format!("{key}{round}"), 0);
        }
        log.roll(0).unwrap();
    }
    put(&mut log, "z", "z", 0);
    let reader = log.reader();
    let options = WriterOptions {
        retention_check_interval: Duration::from_millis(20),
    };
    let writer = LogWriter::spawn_with(log, Arc::new(ManualClock::new(0)), options).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while reader.cleaner_stats().runs == 0 {
        assert!(Instant::now() < deadline, "no background clean");
        std::thread::sleep(Duration::from_millis(20));
    }
    let records = read_records(&reader);
    assert_eq!(
        pairs(&records),
        vec![
            (9, "a".into(), s("a3")),
            (10, "b".into(), s("b3")),
            (11, "c".into(), s("c3")),
            (12, "z".into(), s("z")),
        ]
    );
    writer.close_blocking().unwrap();
}

#[test]
fn a_lone_tombstone_gets_a_horizon_and_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config(), 0).unwrap();
    delete(&mut log, "k0", 0);
    log.roll(0).unwrap();
    log.clean(0).unwrap();
    assert_eq!(
        pairs(&read_records(&log.reader())),
        vec![(0, "k0".into(), None)]
    );
    drop(log);
    let log = Log::open(dir.path(), compact_config(), 0).unwrap();
    assert_eq!(
        pairs(&read_records(&log.reader())),
        vec![(0, "k0".into(), None)]
    );
}

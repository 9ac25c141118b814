//! Reads by entry index up to the log end (what a Raft leader ships), reset, deletion by entry,
//! the entry floor, and the writer's written-then-durable append.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions: a failure is a failed test"
)]

mod common;

use std::sync::Arc;

use cairn_log::batch::{Batch, encode_meta_entry};
use cairn_log::{EntryIndex, LeaderEpoch, Log, LogConfig, LogWriter, ManualClock, Offset};
use common::{batch, small_config};

fn meta(payload: &[u8]) -> Batch {
    Batch::validate(encode_meta_entry(payload, 0).unwrap()).unwrap()
}

#[test]
fn entries_past_the_high_watermark_are_readable_by_index_with_terms_and_dense_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open_replica(dir.path(), small_config(), 0).unwrap();
    log.append(&[meta(b"noop")], Some(LeaderEpoch(1)), 0)
        .unwrap();
    for tag in 0..60u64 {
        let term = if tag < 30 { 1 } else { 2 };
        log.append(&[batch(tag, 3, 40, 0)], Some(LeaderEpoch(term)), 0)
            .unwrap();
        if tag == 29 {
            log.append(&[meta(b"membership")], Some(LeaderEpoch(2)), 0)
                .unwrap();
        }
    }
    assert!(log.segment_count() > 3, "the test wants several segments");
    assert_eq!(log.high_watermark(), Offset(0), "nothing committed yet");
    let reader = log.reader();
    assert_eq!(reader.entry_bounds(), (EntryIndex(0), EntryIndex(62)));
    let all = reader
        .read_entries(EntryIndex(0), usize::MAX, usize::MAX)
        .unwrap();
    assert_eq!(all.len(), 62);
    let mut next_offset = Offset(0);
    for (idx, entry) in all.iter().enumerate() {
        let header = entry.header;
        assert_eq!(header.entry, EntryIndex(idx as u64));
        assert_eq!(header.base_offset, next_offset, "offsets stay dense");
        next_offset = header.next_offset;
        let want_meta = idx == 0 || idx == 31;
        assert_eq!(header.is_meta, want_meta, "entry {idx}");
        let want_term = if idx <= 30 { 1 } else { 2 };
        assert_eq!(header.leader_epoch, LeaderEpoch(want_term), "entry {idx}");
        let stored = Batch::validate(entry.batch.clone()).unwrap();
        assert_eq!(stored.base_offset(), header.base_offset);
    }
    assert_eq!(next_offset, Offset(180), "meta entries take no offset");
    // A read from the middle, bounded by entries and by bytes (at least one entry).
    let some = reader.read_entries(EntryIndex(40), 5, usize::MAX).unwrap();
    assert_eq!(
        some.iter().map(|e| e.header.entry.0).collect::<Vec<_>>(),
        vec![40, 41, 42, 43, 44]
    );
    assert_eq!(reader.read_entries(EntryIndex(40), 5, 1).unwrap().len(), 1);
    assert!(
        reader
            .read_entries(EntryIndex(62), 5, 1)
            .unwrap()
            .is_empty()
    );
    let last = reader.last_entry().unwrap().unwrap();
    assert_eq!(
        (last.entry, last.leader_epoch),
        (EntryIndex(61), LeaderEpoch(2))
    );
    // Truncation of the uncommitted suffix, then reads see the shorter log.
    log.set_high_watermark(Offset(30)).unwrap();
    log.truncate_entries_from(EntryIndex(20)).unwrap();
    assert_eq!(reader.entry_bounds(), (EntryIndex(0), EntryIndex(20)));
    let last = reader.last_entry().unwrap().unwrap();
    assert_eq!(last.entry, EntryIndex(19));
    assert_eq!(last.next_offset, Offset(57));
}

#[test]
fn reset_starts_an_empty_log_at_the_given_entry_and_offset_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open_replica(dir.path(), small_config(), 0).unwrap();
    for tag in 0..40u64 {
        log.append(&[batch(tag, 2, 40, 0)], Some(LeaderEpoch(1)), 0)
            .unwrap();
    }
    log.set_high_watermark(Offset(20)).unwrap();
    log.reset(EntryIndex(100), Offset(500), 0).unwrap();
    let reader = log.reader();
    assert_eq!(reader.entry_bounds(), (EntryIndex(100), EntryIndex(100)));
    assert_eq!(
        (log.log_start_offset(), log.high_watermark()),
        (Offset(500), Offset(500))
    );
    assert!(
        reader.read_entries(EntryIndex(5), 1, 1).unwrap().is_empty(),
        "entries below the start are gone"
    );
    let placed = log
        .append(&[batch(7, 3, 10, 0)], Some(LeaderEpoch(4)), 0)
        .unwrap();
    assert_eq!(
        (placed[0].entry, placed[0].base_offset),
        (EntryIndex(100), Offset(500))
    );
    drop(log);
    let log = Log::open_replica(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.log_start_entry(), EntryIndex(100));
    assert_eq!(log.next_entry(), EntryIndex(101));
    assert_eq!(log.log_end_offset(), Offset(503));
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn deletion_by_entry_takes_whole_committed_segments_and_the_floor_holds_retention_back() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_bytes: Some(1),
        ..small_config()
    };
    let mut log = Log::open_replica(dir.path(), cfg, 0).unwrap();
    for tag in 0..60u64 {
        log.append(&[batch(tag, 2, 40, 0)], Some(LeaderEpoch(1)), 0)
            .unwrap();
    }
    log.set_high_watermark(Offset(120)).unwrap();
    log.set_entry_floor(Some(EntryIndex(0)));
    assert_eq!(log.enforce_retention(0).unwrap().deleted_segments, 0);
    let bound = log.retention_entry_bound(0).unwrap();
    assert!(bound > EntryIndex(0));
    let outcome = log.delete_segments_before_entry(EntryIndex(25)).unwrap();
    assert!(outcome.deleted_segments > 0);
    let start = log.log_start_entry();
    assert!(
        start <= EntryIndex(25) && start > EntryIndex(0),
        "start {start}"
    );
    let first = log.reader().read_entries(start, 1, 0).unwrap();
    assert_eq!(first[0].header.base_offset, log.log_start_offset());
    // With the floor at 25, retention (wanting everything gone) stops below it.
    log.set_entry_floor(Some(EntryIndex(25)));
    log.enforce_retention(0).unwrap();
    assert!(log.log_start_entry() <= EntryIndex(25));
}

#[tokio::test]
async fn written_answer_comes_before_durable_and_entries_are_readable_by_then() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open_replica(dir.path(), small_config(), 0).unwrap();
    let writer = LogWriter::spawn(log, Arc::new(ManualClock::new(0))).unwrap();
    let pending = writer
        .queue_append_written(
            vec![meta(b"noop"), batch(1, 2, 10, 0)],
            Some(LeaderEpoch(3)),
        )
        .await
        .unwrap();
    let written = pending.written.await.unwrap().unwrap();
    assert_eq!(written.len(), 2);
    let entries = writer
        .reader()
        .read_entries(EntryIndex(0), 10, usize::MAX)
        .unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        writer.reader().high_watermark(),
        Offset(0),
        "not visible by offset"
    );
    let durable = pending.durable.await.unwrap().unwrap();
    assert_eq!(durable, written);
    writer.close().await.unwrap();
}

#[test]
fn uncommitted_entries_read_by_index_outlive_their_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open_replica(dir.path(), small_config(), 0).unwrap();
    for tag in 0..30u64 {
        log.append(&[batch(tag, 2, 40, 0)], Some(LeaderEpoch(1)), 0)
            .unwrap();
    }
    log.set_high_watermark(Offset(10)).unwrap();
    let reader = log.reader();
    let held = reader
        .read_entries(EntryIndex(0), usize::MAX, usize::MAX)
        .unwrap();
    let copies: Vec<Vec<u8>> = held.iter().map(|e| e.batch.to_vec()).collect();
    // Cut everything past the committed prefix, sealed segments included, and write over it.
    log.truncate_entries_from(EntryIndex(5)).unwrap();
    for tag in 100..110u64 {
        log.append(&[batch(tag, 1, 10, 0)], Some(LeaderEpoch(2)), 0)
            .unwrap();
    }
    // Every entry handed out before the cut still reads as it was (copies past the visible end,
    // slices of never-cut bytes below it), and still validates.
    for (entry, copy) in held.iter().zip(&copies) {
        assert_eq!(&entry.batch[..], &copy[..]);
        Batch::validate(entry.batch.clone()).unwrap();
    }
    let now = reader.read_entries(EntryIndex(5), 1, 0).unwrap();
    assert_eq!(now[0].header.leader_epoch, LeaderEpoch(2));
}

#[test]
fn a_read_between_the_high_watermark_and_the_log_end_is_empty_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open_replica(dir.path(), small_config(), 0).unwrap();
    for tag in 0..4u64 {
        log.append(&[batch(tag, 5, 40, 0)], Some(LeaderEpoch(1)), 0)
            .unwrap();
    }
    log.set_high_watermark(Offset(10)).unwrap();
    let reader = log.reader();
    assert_eq!(reader.log_end_offset(), Offset(20));
    // What a new Raft leader answers a consumer whose position the previous one gave.
    for from in [11, 15, 20] {
        assert!(
            reader.read(from, 1 << 20).is_err(),
            "plain reads stop at the high watermark"
        );
        let read = reader.read_up_to_log_end(from, 1 << 20).unwrap();
        assert!(
            read.data.is_empty(),
            "nothing past the high watermark is served"
        );
        assert_eq!(read.next_offset, Offset(u64::try_from(from).unwrap()));
        assert_eq!(read.high_watermark, Offset(10));
    }
    assert!(
        !reader
            .read_up_to_log_end(5, 1 << 20)
            .unwrap()
            .data
            .is_empty()
    );
    for from in [21, -1] {
        assert!(
            reader.read_up_to_log_end(from, 1 << 20).is_err(),
            "{from} is out of range"
        );
    }
}

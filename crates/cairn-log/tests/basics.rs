//! The log's everyday behaviour through its public API: append, read, roll, reopen, truncate,
//! retention, timestamps, meta entries.

mod common;

use cairn_log::batch::Batch;
use cairn_log::batch::encode_meta_entry;
use cairn_log::{EntryIndex, LeaderEpoch, Log, LogConfig, LogError, Offset};
use common::{batch, read_all, small_config};

#[test]
fn appends_get_dense_offsets_and_read_back_across_rolls_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    let mut expected = Vec::new();
    for tag in 0..200u64 {
        let b = batch(tag, 3, 20, 1000 + tag as i64);
        let info = log
            .append(std::slice::from_ref(&b), Some(LeaderEpoch(1)), 0)
            .unwrap();
        assert_eq!(info[0].base_offset, Offset(tag * 3));
        assert_eq!(info[0].entry, EntryIndex(tag));
        expected.push((Offset(tag * 3), b.bytes().slice(16..)));
    }
    assert!(log.segment_count() > 5, "segments: {}", log.segment_count());
    assert_eq!(read_all(&log.reader()), expected);
    log.close().unwrap();

    let log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.log_end_offset(), Offset(600));
    assert_eq!(log.next_entry(), EntryIndex(200));
    assert_eq!(read_all(&log.reader()), expected);
    // Reading from the middle of a batch returns that whole batch.
    let result = log.reader().read(301, 1).unwrap();
    let first = result.batches().next().unwrap();
    assert_eq!(first.base_offset(), Offset(300));
    assert_eq!(result.next_offset, Offset(303));
    drop(log);

    // Without a clean shutdown the active segment is scanned; the data is the same.
    let log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(read_all(&log.reader()), expected);
}

#[test]
fn bad_reads_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    log.append(&[batch(0, 5, 10, 0)], None, 0).unwrap();
    let reader = log.reader();
    assert!(matches!(
        reader.read(0, -1),
        Err(LogError::NegativeMaxBytes(-1))
    ));
    assert!(matches!(
        reader.read(-1, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        reader.read(6, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(reader.read(5, 100).unwrap().is_empty());
    let too_big = batch(0, 1, 2 << 20, 0);
    assert!(matches!(
        log.append(&[too_big], None, 0),
        Err(LogError::BatchTooLarge { .. })
    ));
    assert_eq!(log.log_end_offset(), Offset(5));
}

/// A replica's log stores a batch over `max.message.bytes`: its group's leader decided it
/// (and checked the limit before proposing); a Raft log that refused it could not go on.
#[test]
fn a_replica_log_stores_a_decided_batch_over_max_message_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open_replica(dir.path(), small_config(), 0).unwrap();
    let big = batch(0, 1, 2 << 20, 0);
    let infos = log.append(std::slice::from_ref(&big), None, 0).unwrap();
    assert_eq!(infos.len(), 1);
    log.append(&[batch(1, 1, 10, 0)], None, 0).unwrap();
    log.commit().unwrap();
    log.set_high_watermark(Offset(2)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(2));
    let first = log.reader().read(0, 4 << 20).unwrap();
    assert_eq!(
        first.batches().next().map(|b| b.len_bytes()),
        Some(big.len_bytes())
    );
    // Recovery reads it back too.
    drop(log);
    let log = Log::open_replica(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.log_end_offset(), Offset(2));
}

#[test]
fn meta_entries_take_entry_indexes_but_no_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    log.append(&[batch(0, 2, 10, 0)], Some(LeaderEpoch(1)), 0)
        .unwrap();
    let meta = Batch::validate(encode_meta_entry(b"noop", 5).unwrap()).unwrap();
    let info = log
        .append(std::slice::from_ref(&meta), Some(LeaderEpoch(2)), 0)
        .unwrap();
    assert_eq!(
        (info[0].base_offset, info[0].next_offset, info[0].entry),
        (Offset(2), Offset(2), EntryIndex(1))
    );
    let info = log
        .append(&[batch(1, 2, 10, 0)], Some(LeaderEpoch(2)), 0)
        .unwrap();
    assert_eq!(
        (info[0].base_offset, info[0].entry),
        (Offset(2), EntryIndex(2))
    );
    assert_eq!(log.next_entry(), EntryIndex(3));
    let all = read_all(&log.reader());
    assert_eq!(all.len(), 3);
    log.truncate_entries_from(EntryIndex(1)).unwrap_err(); // below the high watermark
    drop(log);
    let mut log = Log::open_replica(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.next_entry(), EntryIndex(3));
    log.truncate_entries_from(EntryIndex(1)).unwrap();
    assert_eq!(
        (log.log_end_offset(), log.next_entry()),
        (Offset(2), EntryIndex(1))
    );
}

#[test]
fn truncate_removes_a_suffix_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open_replica(dir.path(), small_config(), 0).unwrap();
    let mut expected = Vec::new();
    for tag in 0..100u64 {
        let b = batch(tag, 2, 30, 0);
        log.append(std::slice::from_ref(&b), None, 0).unwrap();
        expected.push((Offset(tag * 2), b.bytes().slice(16..)));
    }
    log.set_high_watermark(Offset(50)).unwrap();
    assert_eq!(read_all(&log.reader()), expected[..25]);
    assert!(matches!(
        log.truncate_to(Offset(49)),
        Err(LogError::TruncateBelowHighWatermark { .. })
    ));
    assert_eq!(log.truncate_to(Offset(61)).unwrap(), Offset(60));
    assert_eq!(log.next_entry(), EntryIndex(30));
    let b = batch(999, 2, 30, 0);
    log.append(std::slice::from_ref(&b), None, 0).unwrap();
    log.set_high_watermark(Offset(62)).unwrap();
    let mut want = expected[..30].to_vec();
    want.push((Offset(60), b.bytes().slice(16..)));
    assert_eq!(read_all(&log.reader()), want);
    drop(log);
    let log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(read_all(&log.reader()), want);
}

#[test]
fn retention_deletes_old_segments_and_moves_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_ms: Some(1000),
        ..small_config()
    };
    let mut log = Log::open(dir.path(), cfg.clone(), 0).unwrap();
    for tag in 0..100u64 {
        log.append(&[batch(tag, 2, 30, tag as i64 * 100)], None, 0)
            .unwrap();
    }
    let before = log.segment_count();
    let outcome = log.enforce_retention(6000).unwrap();
    assert!(outcome.deleted_segments > 0 && outcome.deleted_segments < before);
    let start = log.log_start_offset();
    assert_eq!(start, outcome.log_start_offset);
    assert!(matches!(
        log.reader().read(0, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(!log.reader().read(start.as_i64(), 100).unwrap().is_empty());
    drop(log);
    let log = Log::open(dir.path(), cfg, 0).unwrap();
    assert_eq!(log.log_start_offset(), start);
    // Size-based retention.
    let mut log = log;
    let mut cfg = log.config().clone();
    cfg.retention_ms = None;
    cfg.retention_bytes = Some(5000);
    log.set_config(cfg);
    log.enforce_retention(0).unwrap();
    assert!(log.size_bytes() <= 5000 + 4096, "size {}", log.size_bytes());
}

/// Retention hands its segments to a deleter that shrinks each file step by step before
/// freeing it. Bytes a reader took from a deleted segment point into that file's mapping: were
/// the file shrunk under them, touching them would raise SIGBUS and kill this test.
#[test]
fn bytes_read_from_segments_retention_deletes_stay_readable_until_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_ms: Some(1000),
        ..small_config()
    };
    let mut log = Log::open(dir.path(), cfg, 0).unwrap();
    let mut expected = Vec::new();
    for tag in 0..100u64 {
        let b = batch(tag, 2, 30, tag as i64 * 100);
        log.append(std::slice::from_ref(&b), None, 0).unwrap();
        expected.push(b.bytes().slice(16..));
    }
    let held = read_all(&log.reader());
    assert_eq!(held.len(), 100);
    let outcome = log.enforce_retention(6000).unwrap();
    assert!(outcome.deleted_segments > 0);

    // Long enough for the deleter to have shrunk every retired file many times over.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.iter().all(|n| !n.ends_with(".deleted")),
        "retired names are unlinked at once: {names:?}"
    );
    for ((_, bytes), want) in held.iter().zip(&expected) {
        assert_eq!(bytes, want);
    }
    drop(held);
    // The log goes on after the deleter has freed what it held.
    log.append(&[batch(100, 2, 30, 10_000)], None, 0).unwrap();
    assert!(!read_all(&log.reader()).is_empty());
}

#[test]
fn timestamps_find_the_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    for tag in 0..100u64 {
        log.append(&[batch(tag, 2, 30, 1000 + tag as i64 * 10)], None, 0)
            .unwrap();
    }
    let reader = log.reader();
    assert_eq!(reader.offset_for_timestamp(0).unwrap(), Some(Offset(0)));
    assert_eq!(
        reader.offset_for_timestamp(1000 + 500).unwrap(),
        Some(Offset(100))
    );
    assert_eq!(
        reader.offset_for_timestamp(1000 + 505).unwrap(),
        Some(Offset(102))
    );
    assert_eq!(reader.offset_for_timestamp(1_000_000).unwrap(), None);
}

#[test]
fn high_watermark_must_fall_on_a_batch_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open_replica(dir.path(), small_config(), 0).unwrap();
    log.append(&[batch(0, 3, 10, 0), batch(1, 3, 10, 0)], None, 0)
        .unwrap();
    assert!(matches!(
        log.set_high_watermark(Offset(1)),
        Err(LogError::InvalidHighWatermark { .. })
    ));
    log.set_high_watermark(Offset(3)).unwrap();
    assert!(matches!(
        log.set_high_watermark(Offset(4)),
        Err(LogError::InvalidHighWatermark { .. })
    ));
    assert!(matches!(
        log.set_high_watermark(Offset(2)),
        Err(LogError::InvalidHighWatermark { .. })
    ));
    log.set_high_watermark(Offset(6)).unwrap();
}

/// Regression (model test): a meta entry at the end of a segment has the next segment's base
/// offset; truncating to that offset must remove it too.
#[test]
fn truncation_removes_meta_entries_stranded_at_a_segment_end() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 1024,
        ..small_config()
    };
    let mut log = Log::open_replica(dir.path(), cfg, 0).unwrap();
    log.append(&[batch(0, 4, 200, 0)], None, 0).unwrap();
    let meta = Batch::validate(encode_meta_entry(b"noop", 0).unwrap()).unwrap();
    log.append(std::slice::from_ref(&meta), None, 0).unwrap();
    // This batch does not fit: the log rolls, leaving the meta entry at the old segment's end.
    log.append(&[batch(1, 4, 200, 0)], None, 0).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.next_entry(), EntryIndex(3));
    assert_eq!(log.truncate_to(Offset(4)).unwrap(), Offset(4));
    assert_eq!(
        log.next_entry(),
        EntryIndex(1),
        "the stranded meta entry must go too"
    );
    assert_eq!(log.segment_count(), 1);
}

/// Regression (model test): truncating into a sealed segment, which was opened read-only,
/// must reopen it for writing before cutting it; and a high watermark at the log end must not
/// read past the end of the active segment's file.
#[test]
fn truncation_into_a_sealed_segment_makes_it_active_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    for tag in 0..40 {
        log.append(&[batch(tag, 2, 100, 0)], None, 0).unwrap();
    }
    log.close().unwrap();
    let mut log = Log::open_replica(dir.path(), small_config(), 0).unwrap();
    let segments = log.segment_count();
    assert!(segments > 2);
    assert_eq!(log.truncate_to(Offset(10)).unwrap(), Offset(10));
    assert_eq!(log.segment_count(), 1);
    log.append(&[batch(99, 2, 100, 0)], None, 0).unwrap();
    log.set_high_watermark(Offset(12)).unwrap();
    let all = read_all(&log.reader());
    assert_eq!(all.len(), 6);
    assert_eq!(all[5].0, Offset(10));
}

#[test]
fn retention_runs_in_the_background_on_the_writer_thread() {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use cairn_log::{LogWriter, ManualClock, WriterOptions};

    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_ms: Some(1000),
        ..small_config()
    };
    let log = Log::open(dir.path(), cfg, 0).unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let options = WriterOptions {
        retention_check_interval: Duration::from_millis(20),
    };
    let writer = LogWriter::spawn_with(log, clock.clone(), options).unwrap();
    for tag in 0..100u64 {
        writer
            .append_blocking(vec![batch(tag, 2, 30, 0)], None)
            .unwrap();
    }
    assert_eq!(writer.reader().log_start_offset(), Offset(0));
    clock.set(10_000); // every sealed segment is now past retention.ms
    let deadline = Instant::now() + Duration::from_secs(10);
    while writer.reader().log_start_offset() == Offset(0) {
        assert!(Instant::now() < deadline, "retention never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Only the active segment is left, and the retired files are unlinked off the writer's path.
    let start = writer.reader().log_start_offset();
    assert_eq!(start, writer.reader().log_end_offset().min(start));
    loop {
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let logs = names.iter().filter(|n| n.ends_with(".log")).count();
        let retired = names.iter().filter(|n| n.ends_with(".deleted")).count();
        if logs == 1 && retired == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "retired files remain: {names:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    writer.close_blocking().unwrap();
}

/// A `ReadResult` the log did not produce is validated in full when iterated: a damaged batch
/// ends the iteration instead of coming out as data.
#[test]
fn batches_of_a_hand_made_read_result_are_crc_checked() {
    let good = batch(0, 2, 10, 0);
    let mut damaged = good.bytes().to_vec();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    let mut data = good.bytes().to_vec();
    data.extend_from_slice(&damaged);
    let mut read = cairn_log::ReadResult::default();
    read.data = bytes::Bytes::from(data);
    assert_eq!(read.batches().count(), 1);
}

#[test]
fn size_bytes_counts_the_batches_held_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.reader().size_bytes(), 0);
    let mut expected = 0u64;
    for tag in 0..50u64 {
        let b = batch(tag, 2, 30, 1000 + tag as i64);
        expected += b.bytes().len() as u64;
        log.append(std::slice::from_ref(&b), None, 0).unwrap();
    }
    assert!(log.segment_count() > 1, "segments: {}", log.segment_count());
    assert_eq!(log.reader().size_bytes(), expected);
    // The active segment's file runs past its data (space reserved ahead) until it is sealed or
    // the log is closed, which cuts it to exactly its batches.
    log.close().unwrap();
    let on_disk: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(on_disk, expected);
}

//! The active segment's file is reserved ahead of its data with `fallocate`
//! (`segments-format.md` §7.2), so after a crash it ends in zeros that no write reached. These
//! tests crash (drop without `close`) with such a tail, tear writes into it, truncate into it,
//! and check that recovery takes the zeros for the end of the data (§8.3, "Zero tail"), that
//! sealed and cleanly closed segments are exactly their batches, and that no cut data can
//! reappear past the data end.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use cairn_log::{Log, LogConfig, Offset};
use common::{batch, read_all};

/// One segment that never rolls in these tests, so every batch lands in the active segment.
fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 256,
        retention_ms: None,
        ..LogConfig::default()
    }
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

/// Appends `count` batches of 2 records each, one fsynced append per batch; returns the end of
/// each batch in the file.
fn append_batches(log: &mut Log, first_tag: u64, count: u64) -> Vec<u64> {
    (first_tag..first_tag + count)
        .map(|tag| {
            log.append(&[batch(tag, 2, 100, 0)], None, 0).unwrap();
            log.size_bytes()
        })
        .collect()
}

/// Overwrites `bytes` at `position` of `path` in place, keeping the file's length.
fn write_at(path: &Path, position: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, position).unwrap();
}

#[test]
fn a_crash_leaves_a_zero_tail_that_recovery_takes_for_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    let ends = append_batches(&mut log, 0, 10);
    let acked = read_all(&log.reader());
    drop(log); // crash: no clean-shutdown marker, the reserved tail stays
    let path = &log_files(dir.path())[0];
    let data_end = *ends.last().unwrap();
    assert!(
        file_len(path) > data_end,
        "the active segment's file was not reserved ahead: {} bytes for {data_end} of data",
        file_len(path)
    );

    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    assert_eq!(
        read_all(&log.reader()),
        acked,
        "exactly the appended batches"
    );
    assert_eq!(log.log_end_offset(), Offset(20));
    assert_eq!(file_len(path), data_end, "recovery cuts the reserved zeros");
    append_batches(&mut log, 10, 3);
    drop(log);
    let log = Log::open(dir.path(), config(), 0).unwrap();
    assert_eq!(log.log_end_offset(), Offset(26));
    assert_eq!(read_all(&log.reader())[..10], acked[..]);
}

#[test]
fn a_torn_write_into_the_reserved_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    let ends = append_batches(&mut log, 0, 10);
    let acked = read_all(&log.reader());
    drop(log);
    let path = &log_files(dir.path())[0];
    let (last_start, last_end) = (ends[8], ends[9]);
    // The last batch's header reached the disk, its records did not (they read as the zeros
    // fallocate reserved): lengths intact, CRC broken, zeros where the next header would be.
    let zeros = vec![0u8; (last_end - last_start - 61) as usize];
    write_at(path, last_start + 61, &zeros);

    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    assert_eq!(read_all(&log.reader()), acked[..9], "the torn batch is cut");
    assert_eq!(file_len(path), last_start);
    let placed = log.append(&[batch(99, 2, 100, 0)], None, 0).unwrap();
    assert_eq!(placed[0].base_offset, Offset(18));
}

#[test]
fn zeros_where_a_header_belongs_end_the_data_even_with_a_valid_batch_after_them() {
    // Power loss in the middle of an unsynced write: a later page of it reached the disk, the
    // page before it did not (it reads as reserved zeros). Nothing from the zeros on was
    // acknowledged (the fdatasync that would have acknowledged it makes the zeros' page durable
    // first), so this is a torn tail, not damage inside acknowledged data to refuse the open for.
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    let ends = append_batches(&mut log, 0, 10);
    let acked = read_all(&log.reader());
    drop(log);
    let path = &log_files(dir.path())[0];
    let bytes = fs::read(path).unwrap();
    let (cut, last_start, last_end) = (ends[7], ends[8] as usize, ends[9] as usize);
    // Batches 8 and 9 become zeros; a copy of batch 9 (valid, next in sequence after batch 8)
    // sits 8 KiB further on, in the reserved space.
    write_at(path, cut, &vec![0u8; last_end - cut as usize]);
    write_at(path, last_end as u64 + 8192, &bytes[last_start..last_end]);

    let log = Log::open(dir.path(), config(), 0).unwrap();
    assert_eq!(read_all(&log.reader()), acked[..8]);
    assert_eq!(file_len(path), cut);
}

#[test]
fn sealed_and_cleanly_closed_segments_are_exactly_their_batches() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 4096,
        ..config()
    };
    let mut log = Log::open(dir.path(), cfg.clone(), 0).unwrap();
    append_batches(&mut log, 0, 60);
    assert!(log.segment_count() > 2);
    let files = log_files(dir.path());
    let (sealed, active) = files.split_at(files.len() - 1);
    for path in sealed {
        // Untrimmed, a sealed file would be about a reserved step long (1 MiB here).
        assert!(
            file_len(path) <= u64::from(cfg.segment_bytes),
            "{} is {} bytes",
            path.display(),
            file_len(path)
        );
    }
    let sealed_bytes: u64 = sealed.iter().map(|p| file_len(p)).sum();
    let active_data = log.size_bytes() - sealed_bytes;
    assert!(
        file_len(&active[0]) > active_data,
        "active not reserved ahead"
    );
    log.close().unwrap();
    assert_eq!(file_len(&active[0]), active_data, "close trims the active");
    let log = Log::open(dir.path(), cfg, 0).unwrap();
    assert_eq!(log.log_end_offset(), Offset(120));
}

#[test]
fn truncation_leaves_no_stale_bytes_past_the_data_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open_replica(dir.path(), config(), 0).unwrap();
    let ends = append_batches(&mut log, 0, 10);
    let kept = read_all(&{
        log.set_high_watermark(Offset(20)).unwrap();
        log.reader()
    });
    drop(log);
    let mut log = Log::open_replica(dir.path(), config(), 0).unwrap();
    assert_eq!(log.truncate_to(Offset(8)).unwrap(), Offset(8));
    let path = &log_files(dir.path())[0];
    assert_eq!(
        file_len(path),
        ends[3],
        "truncation cuts the file at the data end"
    );
    // A smaller batch than the ones cut: had the old bytes stayed behind it, recovery would
    // read them as batches after the data end.
    log.append(&[batch(50, 1, 10, 0)], None, 0).unwrap();
    let data_end = log.size_bytes();
    let bytes = fs::read(path).unwrap();
    assert!(
        bytes[data_end as usize..].iter().all(|&b| b == 0),
        "bytes of the cut batches reappeared past the data end"
    );
    drop(log);
    let mut log = Log::open_replica(dir.path(), config(), 0).unwrap();
    assert_eq!(log.log_end_offset(), Offset(9));
    log.set_high_watermark(Offset(9)).unwrap();
    assert_eq!(read_all(&log.reader())[..4], kept[..4]);
    assert_eq!(file_len(path), data_end, "recovery cut the reserved zeros");
}

#[test]
fn a_damaged_length_that_jumps_into_the_reserved_zeros_does_not_cut_intact_batches() {
    // Batch 3's length is raised so that it ends inside the reserved zeros: following it
    // alone, the zeros look like the end of the data, which would cut batches 4 to 9 (all
    // acknowledged). The intact batches on the way make it damage instead: the open is refused
    // and nothing is cut. (Found by the random-flip trials.)
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    let ends = append_batches(&mut log, 0, 10);
    drop(log);
    let path = &log_files(dir.path())[0];
    let victim = ends[2];
    let jump = (ends[9] - victim + 4096 - 12) as i32;
    write_at(path, victim + 8, &jump.to_be_bytes());
    let damaged = fs::read(path).unwrap();
    match Log::open(dir.path(), config(), 0) {
        Err(cairn_log::LogError::DamagedSegment {
            position,
            next_valid,
            ..
        }) => {
            assert_eq!(position.as_u64(), victim);
            assert_eq!(next_valid.as_u64(), ends[3]);
        }
        Err(other) => panic!("open failed with {other}, not DamagedSegment"),
        Ok(log) => panic!("open succeeded with log end {}", log.log_end_offset()),
    }
    assert_eq!(
        fs::read(path).unwrap(),
        damaged,
        "a refused open changed the file"
    );
}

#[test]
fn copies_holding_the_same_batches_have_identical_files_however_they_were_written() {
    // Replicas compare (and heal) segment files byte for byte: the reserved tail must depend
    // only on the data end, not on how appends were grouped or whether the log restarted.
    // Segments big enough that the cap (segment.bytes + max.message.bytes) is not what decides
    // how far the files are reserved.
    let big = LogConfig {
        segment_bytes: 64 << 20,
        ..config()
    };
    let one_by_one = tempfile::tempdir().unwrap();
    let grouped = tempfile::tempdir().unwrap();
    let batches: Vec<_> = (0..30).map(|tag| batch(tag, 2, 100, 0)).collect();
    let mut a = Log::open(one_by_one.path(), big.clone(), 0).unwrap();
    for b in &batches {
        a.append(std::slice::from_ref(b), None, 0).unwrap();
    }
    let mut b = Log::open(grouped.path(), big.clone(), 0).unwrap();
    b.append(&batches[..1], None, 0).unwrap();
    drop(b); // crash: recovery cuts the reserved tail, the next append reserves again
    let mut b = Log::open(grouped.path(), big.clone(), 0).unwrap();
    for group in batches[1..].chunks(3) {
        b.append(group, None, 0).unwrap();
    }
    let (a_path, b_path) = (
        &log_files(one_by_one.path())[0],
        &log_files(grouped.path())[0],
    );
    assert!(file_len(a_path) > a.size_bytes(), "no space reserved");
    assert_eq!(fs::read(a_path).unwrap(), fs::read(b_path).unwrap());
}

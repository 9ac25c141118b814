//! A damaged committed entry in a replica's Raft log: a leader's replication read ships the
//! entries before it and reports the damage instead of failing (which would stop openraft's
//! core), entries after it still read, a peer's fetch of it is refused while fetches around it
//! are served, and a good copy rewrites it in place.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions: a failure is a failed test"
)]

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use cairn_log::batch::field;
use cairn_log::{EntryIndex, LogConfig, SystemClock};
use cairn_raft::wire::{FetchRequest, decode_fetch_answer, encode_fetch};
use cairn_raft::{CairnLogStorage, PartitionRaft, PartitionStateMachine, RaftLog};
use openraft::RaftLogReader;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};

mod common;

use common::normal;

/// Flips a byte in the middle of the records of the `nth` batch of `segment` (batches found by
/// their length fields; the file is preallocated, so it is never read whole).
fn flip_in_batch(segment: &Path, nth: usize) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(segment)
        .unwrap();
    let mut position = 0u64;
    let mut prefix = [0u8; 12];
    for _ in 0..nth {
        file.read_exact_at(&mut prefix, position).unwrap();
        position += 12 + u64::from(u32::from_be_bytes(prefix[8..12].try_into().unwrap()));
    }
    file.read_exact_at(&mut prefix, position).unwrap();
    let len = 12 + u64::from(u32::from_be_bytes(prefix[8..12].try_into().unwrap()));
    let at = position + field::RECORDS as u64 + (len - field::RECORDS as u64) / 2;
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, at).unwrap();
    byte[0] ^= 0x40;
    file.write_all_at(&byte, at).unwrap();
}

#[tokio::test]
async fn a_damaged_committed_entry_is_never_shipped_and_heals_from_a_good_copy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p-0");
    let raft_log = RaftLog::open(&path, LogConfig::default(), Arc::new(SystemClock)).unwrap();
    let mut storage = CairnLogStorage::<PartitionRaft>::new(raft_log.clone());
    let mut sm = PartitionStateMachine::new(raft_log.clone());
    let entries: Vec<_> = (0..6).map(|i| normal(1, i, 3)).collect();
    storage.blocking_append(entries.clone()).await.unwrap();
    sm.apply(entries).await.unwrap();
    let good = raft_log
        .reader()
        .read_entries(EntryIndex(3), 1, 1 << 20)
        .unwrap()[0]
        .batch
        .to_vec();
    let reports = raft_log.subscribe_damage();

    flip_in_batch(&path.join(format!("{:020}.log", 0)), 3);

    let mut reader = storage.get_log_reader().await;
    let shipped = reader.limited_get_log_entries(0, 6).await.unwrap();
    assert_eq!(shipped.len(), 3, "only the entries before the damaged one");
    assert!(reports.has_changed().unwrap(), "the damage was reported");
    assert!(
        reader
            .limited_get_log_entries(3, 6)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(storage.try_get_log_entries(0..6).await.is_err());
    assert_eq!(storage.try_get_log_entries(4..6).await.unwrap().len(), 2);

    // A peer asking for the damaged entry is refused; around it, it is served.
    let ask = |from| {
        encode_fetch(&FetchRequest {
            from,
            max_entries: 2,
            max_bytes: 1 << 20,
        })
    };
    assert!(cairn_raft::fetch::answer_fetch(&raft_log, Some(5), ask(3)).is_err());
    let answer = cairn_raft::fetch::answer_fetch(&raft_log, Some(5), ask(4)).unwrap();
    assert_eq!(decode_fetch_answer(answer, 2).unwrap().len(), 2);
    // Nothing past what this copy applied is served.
    let answer = cairn_raft::fetch::answer_fetch(&raft_log, Some(4), ask(4)).unwrap();
    assert_eq!(decode_fetch_answer(answer, 2).unwrap().len(), 1);

    let spans = raft_log.reader().damaged_entries(EntryIndex(6));
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].first_entry, EntryIndex(3));
    raft_log
        .repair(spans[0].clone(), vec![Bytes::from(good)])
        .await
        .unwrap();
    assert_eq!(storage.try_get_log_entries(0..6).await.unwrap().len(), 6);
    assert!(raft_log.reader().damaged_entries(EntryIndex(6)).is_empty());
}

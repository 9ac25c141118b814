//! A leader that reports its appends flushed to openraft once written
//! (`CairnLogStorage::shipping_before_flush`) must still keep every effect of a commit behind its
//! own durable copy: the state machine applies (moves the high watermark, answers) only durable
//! entries, and the commit the leader tells followers stops at its durable entries
//! (`CommitBound`). These tests hold entries written but not durable, by a failing fsync or by
//! writing past the storage, and check both halves.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions: a failure is a failed test"
)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn_log::fault::{FaultPoint, arm};
use cairn_log::{LeaderEpoch, LogConfig, Offset, SystemClock};
use cairn_raft::entry_codec::encode_entry;
use cairn_raft::purge_file::log_id;
use cairn_raft::{CairnLogStorage, CommitBound, PartitionRaft, PartitionStateMachine, RaftLog};
use openraft::Vote;
use openraft::storage::{RaftLogStorageExt, RaftStateMachine};

mod common;

use common::normal;

const ME: u64 = 1;

/// A leader's storage (its stored vote is its own), its state machine and its commit bound.
async fn open_leader(
    dir: &Path,
) -> (
    RaftLog,
    CairnLogStorage<PartitionRaft>,
    PartitionStateMachine,
    CommitBound,
) {
    let raft_log = RaftLog::open(dir, LogConfig::default(), Arc::new(SystemClock)).unwrap();
    raft_log
        .save_vote(Vote::new_committed(1, ME))
        .await
        .unwrap();
    let storage = CairnLogStorage::new(raft_log.clone())
        .on_node(ME)
        .shipping_before_flush();
    let sm = PartitionStateMachine::new(raft_log.clone());
    let bound = CommitBound::new(raft_log.clone());
    (raft_log, storage, sm, bound)
}

#[tokio::test]
async fn entries_written_but_not_durable_are_neither_applied_nor_told_committed() {
    let dir = tempfile::tempdir().unwrap();
    let (raft_log, mut storage, mut sm, bound) = open_leader(dir.path()).await;
    let durable = vec![normal(1, 0, 2), normal(1, 1, 3)];
    storage.blocking_append(durable.clone()).await.unwrap();
    sm.apply(durable).await.unwrap();
    assert_eq!(raft_log.reader().high_watermark(), Offset(5));

    // Entries 2 and 3 are written, and durability is never reported for them.
    let pending = vec![normal(1, 2, 1), normal(1, 3, 1)];
    let batches = pending.iter().map(|e| encode_entry(e).unwrap()).collect();
    raft_log
        .writer()
        .append(batches, Some(LeaderEpoch(1)))
        .await
        .unwrap();

    // openraft may call them committed; followers hear of entry 1 at most.
    assert_eq!(bound.clamp(Some(log_id(1, 3))), Some(log_id(1, 1)));
    assert_eq!(bound.clamp(Some(log_id(1, 1))), Some(log_id(1, 1)));
    assert_eq!(bound.clamp(Some(log_id(1, 0))), Some(log_id(1, 0)));
    assert_eq!(bound.clamp(None), None);

    // Applying them waits, and nothing becomes visible meanwhile.
    let apply = tokio::time::timeout(Duration::from_millis(300), sm.apply(pending)).await;
    assert!(apply.is_err(), "applied before durable");
    assert_eq!(raft_log.reader().high_watermark(), Offset(5));
}

#[tokio::test]
async fn a_leader_append_is_reported_at_once_and_a_failed_fsync_stops_the_apply() {
    let dir = tempfile::tempdir().unwrap();
    let (raft_log, mut storage, mut sm, bound) = open_leader(dir.path()).await;
    let first = vec![normal(1, 0, 2)];
    storage.blocking_append(first.clone()).await.unwrap();
    sm.apply(first).await.unwrap();

    arm(dir.path(), FaultPoint::Sync, 5, 1);
    let lost = vec![normal(1, 1, 4)];
    // Reported flushed once written, before the fsync that fails.
    storage.blocking_append(lost.clone()).await.unwrap();
    let applied = tokio::time::timeout(Duration::from_secs(10), sm.apply(lost))
        .await
        .expect("the apply hears of the failed flush");
    assert!(applied.is_err(), "applied over a failed fsync");
    assert_eq!(raft_log.reader().high_watermark(), Offset(2));
    assert_eq!(bound.clamp(Some(log_id(1, 1))), Some(log_id(1, 0)));
    // The log is poisoned: the next append fails.
    assert!(storage.blocking_append([normal(1, 2, 1)]).await.is_err());
}

#[tokio::test]
async fn a_follower_append_still_waits_for_its_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let raft_log = RaftLog::open(dir.path(), LogConfig::default(), Arc::new(SystemClock)).unwrap();
    // Another node leads: this node's answer counts towards the commit.
    raft_log.save_vote(Vote::new_committed(1, 2)).await.unwrap();
    let mut storage = CairnLogStorage::<PartitionRaft>::new(raft_log.clone())
        .on_node(ME)
        .shipping_before_flush();
    storage.blocking_append([normal(1, 0, 1)]).await.unwrap();
    arm(dir.path(), FaultPoint::Sync, 5, 1);
    assert!(
        storage.blocking_append([normal(1, 1, 1)]).await.is_err(),
        "a follower reported an append flushed over a failed fsync"
    );
}

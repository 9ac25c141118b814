//! Cairn's own tests of the Raft storage over `cairn-log`: crashes, truncation, terms, dense
//! offsets, snapshots, and fsync failures.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions: a failure is a failed test"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_log::batch::Batch;
use cairn_log::fault::{FaultPoint, arm};
use cairn_log::{EntryIndex, LogConfig, Offset, SystemClock};
use cairn_raft::purge_file::log_id;
use cairn_raft::{CairnLogStorage, PartitionRaft, PartitionStateMachine, PeerNode, RaftLog};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine, Snapshot};
use openraft::{Entry, EntryPayload, LogId, Membership, RaftLogReader, RaftSnapshotBuilder, Vote};

mod common;

use common::normal;

type Storage = CairnLogStorage<PartitionRaft>;

fn open(dir: &Path) -> (RaftLog, Storage, PartitionStateMachine) {
    let raft_log = RaftLog::open(dir, LogConfig::default(), Arc::new(SystemClock)).unwrap();
    let storage = CairnLogStorage::new(raft_log.clone());
    let sm = PartitionStateMachine::new(raft_log.clone());
    (raft_log, storage, sm)
}

fn blank(term: u64, index: u64) -> Entry<PartitionRaft> {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Blank,
    }
}

fn membership(term: u64, index: u64) -> Entry<PartitionRaft> {
    let nodes = [
        (
            1,
            PeerNode {
                addr: "127.0.0.1:7070".into(),
            },
        ),
        (
            2,
            PeerNode {
                addr: "127.0.0.1:7080".into(),
            },
        ),
    ];
    let membership = Membership::new(
        vec![[1, 2].into()],
        nodes
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>(),
    );
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Membership(membership),
    }
}

async fn log_ids(storage: &mut Storage) -> Vec<LogId<u64>> {
    storage
        .try_get_log_entries(0..)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.log_id)
        .collect()
}

/// What a crash leaves: the directory's files as they are now, without a clean close (the copy
/// is opened while the original writer still runs, so no clean-shutdown marker exists).
fn crash_copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for file in std::fs::read_dir(from).unwrap() {
        let file = file.unwrap();
        let name = file.file_name();
        if name != ".lock" && file.file_type().unwrap().is_file() {
            // A retired segment file may be unlinked by the background delete meanwhile.
            match std::fs::copy(file.path(), to.join(&name)) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                other => {
                    other.unwrap();
                }
            }
        }
    }
}

fn partition(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

#[tokio::test]
async fn reopen_after_a_crash_keeps_the_vote_the_entries_and_their_terms() {
    let dir = tempfile::tempdir().unwrap();
    let (_raft_log, mut storage, _sm) = open(&partition(&dir, "p-0"));
    storage.save_vote(&Vote::new(3, 2)).await.unwrap();
    storage
        .blocking_append([
            membership(1, 0),
            blank(2, 1),
            normal(2, 2, 3),
            normal(3, 3, 1),
        ])
        .await
        .unwrap();
    let before = log_ids(&mut storage).await;
    crash_copy(&partition(&dir, "p-0"), &partition(&dir, "p-crash"));

    let (_raft_log, mut reopened, _sm) = open(&partition(&dir, "p-crash"));
    assert_eq!(reopened.read_vote().await.unwrap(), Some(Vote::new(3, 2)));
    assert_eq!(log_ids(&mut reopened).await, before);
    assert_eq!(
        before
            .iter()
            .map(|id| id.leader_id.term)
            .collect::<Vec<_>>(),
        vec![1, 2, 2, 3],
        "terms survive as each batch's partitionLeaderEpoch"
    );
    let entries = reopened.try_get_log_entries(0..4).await.unwrap();
    assert!(matches!(entries[0].payload, EntryPayload::Membership(_)));
    assert!(matches!(entries[1].payload, EntryPayload::Blank));
    let state = reopened.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(3, 3)));
    assert_eq!(state.last_purged_log_id, None);
}

#[tokio::test]
async fn truncating_an_uncommitted_suffix_makes_room_for_the_new_leaders_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (raft_log, mut storage, mut sm) = open(&partition(&dir, "p-0"));
    let first: Vec<_> = (0..8).map(|i| normal(1, i, 2)).collect();
    storage.blocking_append(first.clone()).await.unwrap();
    sm.apply(first[..3].to_vec()).await.unwrap();
    assert_eq!(raft_log.reader().high_watermark(), Offset(6));
    // Entry 2 is applied (committed): truncating it is refused; from 3 on it is allowed.
    assert!(storage.truncate(log_id(1, 2)).await.is_err());
    storage.truncate(log_id(1, 5)).await.unwrap();
    assert_eq!(
        storage.get_log_state().await.unwrap().last_log_id,
        Some(log_id(1, 4))
    );
    storage
        .blocking_append([blank(2, 5), normal(2, 6, 1)])
        .await
        .unwrap();
    let ids = log_ids(&mut storage).await;
    assert_eq!(ids.len(), 7);
    assert_eq!(ids[5], log_id(2, 5));
    assert_eq!(ids[6], log_id(2, 6));
    // Offsets continue densely after the truncation point: entry 4 ended at 10.
    let replies = sm
        .apply((3..5).map(|i| normal(1, i, 2)).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(replies.last().unwrap().next_offset, 10);
    let replies = sm.apply([blank(2, 5), normal(2, 6, 1)]).await.unwrap();
    assert_eq!((replies[1].base_offset, replies[1].next_offset), (10, 11));
}

#[tokio::test]
async fn entries_without_records_take_no_offset_and_applying_moves_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let (raft_log, mut storage, mut sm) = open(&partition(&dir, "p-0"));
    let entries = vec![
        membership(1, 0),
        blank(1, 1),
        normal(1, 2, 3),
        blank(2, 3),
        normal(2, 4, 2),
    ];
    storage.blocking_append(entries.clone()).await.unwrap();
    assert_eq!(
        raft_log.reader().high_watermark(),
        Offset(0),
        "nothing visible before apply"
    );
    let replies = sm.apply(entries[..3].to_vec()).await.unwrap();
    let offsets: Vec<_> = replies
        .iter()
        .map(|r| (r.base_offset, r.next_offset))
        .collect();
    assert_eq!(offsets, vec![(0, 0), (0, 0), (0, 3)]);
    assert_eq!(raft_log.reader().high_watermark(), Offset(3));
    let replies = sm.apply(entries[3..].to_vec()).await.unwrap();
    let offsets: Vec<_> = replies
        .iter()
        .map(|r| (r.base_offset, r.next_offset))
        .collect();
    assert_eq!(offsets, vec![(3, 3), (3, 5)]);
    assert_eq!(raft_log.reader().high_watermark(), Offset(5));
    let (applied, membership) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(2, 4)));
    assert_eq!(membership.log_id(), &Some(log_id(1, 0)));
    // A consumer's read by offset sees the records, densely from 0.
    let read = raft_log.reader().read(0, 1 << 20).unwrap();
    let data: Vec<Batch> = read.batches().filter(|b| !b.is_meta()).collect();
    assert_eq!(
        data.iter().map(|b| b.base_offset().0).collect::<Vec<_>>(),
        vec![0, 3]
    );
}

#[tokio::test]
async fn a_far_behind_follower_installs_a_snapshot_and_continues_at_the_leaders_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (leader_log, mut leader, mut leader_sm) = open(&partition(&dir, "leader"));
    let entries: Vec<_> = (0..10).map(|i| normal(1, i, 4)).collect();
    leader.blocking_append(entries.clone()).await.unwrap();
    leader_sm.apply(entries).await.unwrap();
    let snapshot = leader_sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    leader.purge(log_id(1, 9)).await.unwrap();
    assert_eq!(
        leader.get_log_state().await.unwrap().last_log_id,
        Some(log_id(1, 9))
    );
    assert_eq!(leader_log.reader().high_watermark(), Offset(40));

    let (follower_log, mut follower, mut follower_sm) = open(&partition(&dir, "follower"));
    follower
        .blocking_append([normal(1, 0, 4), normal(1, 1, 4)])
        .await
        .unwrap();
    let mut received = follower_sm.begin_receiving_snapshot().await.unwrap();
    *received = *snapshot.snapshot;
    follower_sm
        .install_snapshot(&snapshot.meta, received)
        .await
        .unwrap();
    follower.purge(log_id(1, 9)).await.unwrap();
    assert_eq!(
        follower_log.reader().entry_bounds(),
        (EntryIndex(10), EntryIndex(10))
    );
    assert_eq!(follower_log.reader().high_watermark(), Offset(40));
    follower.blocking_append([normal(2, 10, 3)]).await.unwrap();
    let replies = follower_sm.apply([normal(2, 10, 3)]).await.unwrap();
    assert_eq!((replies[0].base_offset, replies[0].next_offset), (40, 43));
    // The applied state and purge point survive a reopen.
    drop((follower, follower_sm, follower_log));
    crash_copy(
        &partition(&dir, "follower"),
        &partition(&dir, "follower-crash"),
    );
    let (reopened_log, mut reopened, mut reopened_sm) = open(&partition(&dir, "follower-crash"));
    let (applied, _) = reopened_sm.applied_state().await.unwrap();
    assert!(
        applied >= Some(log_id(1, 9)),
        "applied state at or past the purge point"
    );
    let state = reopened.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 9)));
    assert_eq!(state.last_log_id, Some(log_id(2, 10)));
    assert!(reopened_log.reader().high_watermark() >= Offset(40));
}

#[tokio::test]
async fn a_failed_fsync_reaches_openraft_as_an_error_and_is_never_acknowledged_later() {
    let dir = tempfile::tempdir().unwrap();
    let path = partition(&dir, "p-0");
    let (_raft_log, mut storage, _sm) = open(&path);
    storage.blocking_append([blank(1, 0)]).await.unwrap();
    arm(&path, FaultPoint::Sync, 5, 1);
    assert!(storage.blocking_append([normal(1, 1, 2)]).await.is_err());
    // The log is poisoned: later appends fail rather than acknowledge over lost pages.
    assert!(storage.blocking_append([normal(1, 2, 2)]).await.is_err());
}

#[tokio::test]
async fn damaged_vote_file_stops_the_open_without_deleting_anything() {
    let dir = tempfile::tempdir().unwrap();
    let path = partition(&dir, "p-0");
    {
        let (raft_log, mut storage, _sm) = open(&path);
        storage.save_vote(&Vote::new(5, 1)).await.unwrap();
        storage.blocking_append([blank(5, 0)]).await.unwrap();
        raft_log.writer().close().await.unwrap();
    }
    let vote_path = path.join(cairn_raft::vote_file::VOTE_FILE);
    let mut bytes = std::fs::read(&vote_path).unwrap();
    bytes[20] ^= 0xff;
    std::fs::write(&vote_path, &bytes).unwrap();
    let err = RaftLog::open(&path, LogConfig::default(), Arc::new(SystemClock)).unwrap_err();
    assert!(
        matches!(err, cairn_raft::RaftStorageError::CorruptCheckpoint { .. }),
        "{err}"
    );
    assert!(vote_path.exists());
}

#[tokio::test]
async fn retention_goes_through_a_raft_purge_and_only_whole_segments_go() {
    let dir = tempfile::tempdir().unwrap();
    let (raft_log, mut storage, mut sm) = forty_under_retention(&partition(&dir, "p-0")).await;
    // The log's own retention pass deletes nothing Raft has not purged.
    raft_log
        .writer()
        .with_log(|log, now| log.enforce_retention(now))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raft_log.reader().entry_bounds().0, EntryIndex(0));
    let upto = raft_log.retention_purge_index().await.unwrap().unwrap();
    assert!(
        upto > 0 && upto < 39,
        "retention would delete up to entry {upto}"
    );
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    storage.purge(log_id(1, upto)).await.unwrap();
    let (start, _) = raft_log.reader().entry_bounds();
    assert_eq!(
        start,
        EntryIndex(upto + 1),
        "the segments below the purge point went"
    );
    let ids = storage.try_get_log_entries(0..).await.unwrap();
    assert_eq!(ids.first().unwrap().log_id.index, upto + 1);
}

/// The snapshot a retention purge builds ends at the purge point, not at the last applied
/// entry: a follower that installs it starts its log at the leader's log start and is then sent
/// every entry the leader keeps. A leader reopened after the purge holds that snapshot again.
#[tokio::test]
async fn a_retention_snapshot_ends_at_the_purge_point_so_a_follower_keeps_all_the_leader_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let path = partition(&dir, "leader");
    let (raft_log, mut storage, mut sm) = forty_under_retention(&path).await;
    let (upto, snapshot) = purged_for_retention(&raft_log, &mut storage, &mut sm).await;
    assert!(upto < 38, "retention keeps more than the last entries");
    let leader_start = raft_log.reader().log_start_offset();
    assert_eq!(leader_start, Offset((upto + 1) * 3));

    // A follower with only the first two entries installs it.
    let (follower_log, mut follower, mut follower_sm) = open(&partition(&dir, "follower"));
    follower
        .blocking_append([normal(1, 0, 3), normal(1, 1, 3)])
        .await
        .unwrap();
    follower_sm
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    assert_eq!(follower_log.reader().log_start_offset(), leader_start);
    assert_eq!(
        follower_log.reader().entry_bounds(),
        (EntryIndex(upto + 1), EntryIndex(upto + 1))
    );
    // The leader still has every entry after the snapshot to send it.
    let rest = storage.try_get_log_entries(upto + 1..).await.unwrap();
    assert_eq!(rest.len(), usize::try_from(39 - upto).unwrap());
    follower.blocking_append(rest.clone()).await.unwrap();
    follower_sm.apply(rest).await.unwrap();
    assert_eq!(follower_log.reader().high_watermark(), Offset(120));

    // Reopened, the leader holds the snapshot at its purge point again.
    drop((storage, sm));
    let current = snapshot_after_reopen(raft_log, &path).await;
    assert_eq!(current.meta.last_log_id, Some(log_id(1, upto)));
    let payload = cairn_raft::partition_sm::decode_snapshot(current.snapshot.get_ref()).unwrap();
    assert_eq!(payload.next_offset, leader_start.0);
}

/// 1 KiB segments whose retention keeps only the newest (`retention.bytes` 1).
fn retention_cfg() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        retention_bytes: Some(1),
        ..LogConfig::default()
    }
}

/// A group's storage at `path` under [`retention_cfg`], with 40 entries of 3 records each
/// (term 1) appended and applied.
async fn forty_under_retention(path: &Path) -> (RaftLog, Storage, PartitionStateMachine) {
    let raft_log = RaftLog::open(path, retention_cfg(), Arc::new(SystemClock)).unwrap();
    let mut storage = CairnLogStorage::<PartitionRaft>::new(raft_log.clone());
    let mut sm = PartitionStateMachine::new(raft_log.clone());
    let entries: Vec<_> = (0..40).map(|i| normal(1, i, 3)).collect();
    storage.blocking_append(entries.clone()).await.unwrap();
    sm.apply(entries).await.unwrap();
    (raft_log, storage, sm)
}

/// Closes `raft_log` and opens `path` again: the snapshot its state machine then holds.
async fn snapshot_after_reopen(raft_log: RaftLog, path: &Path) -> Snapshot<PartitionRaft> {
    raft_log.writer().close().await.unwrap();
    drop(raft_log);
    let reopened = RaftLog::open(path, retention_cfg(), Arc::new(SystemClock)).unwrap();
    let mut sm = PartitionStateMachine::new(reopened);
    sm.get_current_snapshot().await.unwrap().unwrap()
}

/// Builds a snapshot, as openraft asks the state machine to.
async fn build(sm: &mut PartitionStateMachine) -> Snapshot<PartitionRaft> {
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap()
}

/// Asks for a snapshot at the point retention wants purged up to, as the retention purge does,
/// with the membership in force now; returns the point.
async fn ask_at_retention_point(raft_log: &RaftLog, sm: &PartitionStateMachine) -> u64 {
    let upto = raft_log.retention_purge_index().await.unwrap().unwrap();
    raft_log.request_snapshot_at(upto, sm.applied().membership.clone());
    upto
}

/// Builds the snapshot at the point retention wants purged up to, asked for as the retention
/// purge asks, and purges there. Returns the purge point and the snapshot.
async fn purged_for_retention(
    raft_log: &RaftLog,
    storage: &mut Storage,
    sm: &mut PartitionStateMachine,
) -> (u64, Snapshot<PartitionRaft>) {
    let upto = ask_at_retention_point(raft_log, sm).await;
    let built = build(sm).await;
    assert_eq!(built.meta.last_log_id, Some(log_id(1, upto)));
    storage.purge(log_id(1, upto)).await.unwrap();
    (upto, built)
}

/// A membership change after the purge point (a reassignment), then a restart: the snapshot the
/// reopened node serves still ends at its purge point (it is saved), not at its last applied
/// entry, which would start a follower past everything the log keeps.
#[tokio::test]
async fn a_restart_after_a_membership_change_keeps_the_snapshot_at_the_purge_point() {
    let dir = tempfile::tempdir().unwrap();
    let path = partition(&dir, "p-0");
    let (raft_log, mut storage, mut sm) = forty_under_retention(&path).await;
    let (upto, _) = purged_for_retention(&raft_log, &mut storage, &mut sm).await;
    let mut more = vec![membership(1, 40)];
    more.extend((41..50).map(|i| normal(1, i, 3)));
    storage.blocking_append(more.clone()).await.unwrap();
    sm.apply(more).await.unwrap();
    drop((storage, sm));
    let current = snapshot_after_reopen(raft_log, &path).await;
    assert_eq!(current.meta.last_log_id, Some(log_id(1, upto)));
}

/// The membership changes between the retention purge's request and the build: the snapshot
/// still ends at the point asked for, with the membership in force there.
#[tokio::test]
async fn a_membership_change_before_the_build_leaves_the_snapshot_at_the_point_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let (raft_log, mut storage, mut sm) = forty_under_retention(&partition(&dir, "p-0")).await;
    let upto = raft_log.retention_purge_index().await.unwrap().unwrap();
    let in_force = sm.applied().membership.clone();
    raft_log.request_snapshot_at(upto, in_force.clone());
    let mut more = vec![membership(1, 40)];
    more.extend((41..50).map(|i| normal(1, i, 3)));
    storage.blocking_append(more.clone()).await.unwrap();
    sm.apply(more).await.unwrap();
    let built = build(&mut sm).await;
    assert_eq!(built.meta.last_log_id, Some(log_id(1, upto)));
    assert_eq!(built.meta.last_membership, in_force);
}

/// A leader's snapshot ending at entry 60, built with nothing asked for (at its last applied).
async fn leaders_snapshot_at_60(dir: &tempfile::TempDir) -> Snapshot<PartitionRaft> {
    let (_log, mut storage, mut sm) = open(&partition(dir, "leader"));
    let entries: Vec<_> = (0..61).map(|i| normal(1, i, 3)).collect();
    storage.blocking_append(entries.clone()).await.unwrap();
    sm.apply(entries).await.unwrap();
    let snapshot = build(&mut sm).await;
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 60)));
    snapshot
}

/// Installs `snapshot` as openraft hands one over.
async fn install(sm: &mut PartitionStateMachine, snapshot: Snapshot<PartitionRaft>) {
    let mut received = sm.begin_receiving_snapshot().await.unwrap();
    *received = *snapshot.snapshot;
    sm.install_snapshot(&snapshot.meta, received).await.unwrap();
}

/// A retention request overtaken by an install (openraft queues the build behind it and some
/// applies): the build does not end at the last applied entry, past the install's purge point.
#[tokio::test]
async fn a_request_overtaken_by_an_install_builds_nothing_past_the_purge_point() {
    let dir = tempfile::tempdir().unwrap();
    let leader = leaders_snapshot_at_60(&dir).await;
    let (raft_log, mut storage, mut sm) = forty_under_retention(&partition(&dir, "f")).await;
    ask_at_retention_point(&raft_log, &sm).await;
    install(&mut sm, leader).await;
    storage.purge(log_id(1, 60)).await.unwrap();
    let more: Vec<_> = (61..70).map(|i| normal(2, i, 3)).collect();
    storage.blocking_append(more.clone()).await.unwrap();
    sm.apply(more).await.unwrap();
    let built = build(&mut sm).await;
    assert_eq!(built.meta.last_log_id, Some(log_id(1, 60)));
}

/// openraft builds on a task of its own: a build whose builder was taken before an install,
/// finishing after it, leaves the snapshot held and the applied state on disk where the install
/// put them.
#[tokio::test]
async fn a_build_finishing_after_an_install_does_not_move_the_snapshot_back() {
    let dir = tempfile::tempdir().unwrap();
    let leader = leaders_snapshot_at_60(&dir).await;
    let path = partition(&dir, "f");
    let (raft_log, mut storage, mut sm) = forty_under_retention(&path).await;
    ask_at_retention_point(&raft_log, &sm).await;
    let mut builder = sm.get_snapshot_builder().await;
    install(&mut sm, leader).await;
    storage.purge(log_id(1, 60)).await.unwrap();
    builder.build_snapshot().await.unwrap();
    let current = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta.last_log_id, Some(log_id(1, 60)));
    drop((storage, sm));
    let reopened = snapshot_after_reopen(raft_log, &path).await;
    assert_eq!(reopened.meta.last_log_id, Some(log_id(1, 60)));
    let applied = cairn_raft::applied_file::read_applied(&path)
        .unwrap()
        .unwrap();
    assert!(applied.last_applied >= Some(log_id(1, 60)));
}

/// Leaves in `path` what an install crashing after it saved the applied state and the purge
/// point (both at `at`, the log's end at offset 700) leaves, before the snapshot and the log's
/// reset.
fn crashed_inside_an_install(path: &Path, at: LogId<u64>) {
    let applied = cairn_raft::AppliedState {
        last_applied: Some(at),
        next_offset: 700,
        membership: Default::default(),
    };
    cairn_raft::applied_file::write_applied(path, &applied).unwrap();
    cairn_raft::purge_file::write_purged(path, at).unwrap();
}

/// A crash inside an install after it saved the applied state and the purge point, before the
/// snapshot: the reopened node serves a snapshot at its purge point, not the older one saved.
#[tokio::test]
async fn a_crash_inside_an_install_leaves_no_snapshot_below_the_purge_point() {
    let dir = tempfile::tempdir().unwrap();
    let path = partition(&dir, "f");
    let (raft_log, mut storage, mut sm) = forty_under_retention(&path).await;
    purged_for_retention(&raft_log, &mut storage, &mut sm).await;
    drop((storage, sm));
    raft_log.writer().close().await.unwrap();
    drop(raft_log);
    crashed_inside_an_install(&path, log_id(3, 100));
    let (_raft_log, _storage, mut sm) = open(&path);
    let current = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta.last_log_id, Some(log_id(3, 100)));
}

#[tokio::test]
async fn a_crash_inside_a_snapshot_install_is_finished_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = partition(&dir, "p-0");
    {
        let (raft_log, mut storage, _sm) = open(&path);
        storage
            .blocking_append([normal(1, 0, 2), normal(1, 1, 2)])
            .await
            .unwrap();
        raft_log.writer().close().await.unwrap();
    }
    // What an install leaves when it crashes after saving the applied state and the purge
    // point but before resetting the log: a log that ends before the purge point.
    crashed_inside_an_install(&path, log_id(3, 50));

    let (raft_log, mut storage, mut sm) = open(&path);
    assert_eq!(
        raft_log.reader().entry_bounds(),
        (EntryIndex(51), EntryIndex(51))
    );
    assert_eq!(raft_log.reader().high_watermark(), Offset(700));
    let state = storage.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(3, 50)));
    assert_eq!(state.last_log_id, Some(log_id(3, 50)));
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(3, 50)));
    storage.blocking_append([normal(4, 51, 1)]).await.unwrap();
    let replies = sm.apply([normal(4, 51, 1)]).await.unwrap();
    assert_eq!((replies[0].base_offset, replies[0].next_offset), (700, 701));
}

/// A committed vote, read back at start-up, is an uncommitted vote for the same leader in the
/// same term: the node does not restore itself as leader of a term in which it may have lost
/// entries it never flushed (see `CairnLogStorage::read_vote`).
#[tokio::test]
async fn a_committed_vote_reads_back_uncommitted_for_the_same_leader_and_term() {
    let dir = tempfile::tempdir().unwrap();
    let (_raft_log, mut storage, _sm) = open(&partition(&dir, "p-0"));
    storage.save_vote(&Vote::new_committed(4, 1)).await.unwrap();
    crash_copy(&partition(&dir, "p-0"), &partition(&dir, "p-crash"));
    let (_raft_log, mut reopened, _sm) = open(&partition(&dir, "p-crash"));
    let vote = reopened.read_vote().await.unwrap().unwrap();
    assert_eq!(vote, Vote::new(4, 1));
    assert!(!vote.is_committed());
}

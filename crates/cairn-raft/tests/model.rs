//! The Raft storage against an obviously right model: random appends (with and without
//! records, across terms), truncations of the uncommitted suffix, applies, snapshots with purges,
//! and crash reopens, checking log ids, the log state, offsets and the high watermark after
//! every step.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions: a failure is a failed test"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_log::{LogConfig, Offset, SystemClock};
use cairn_raft::purge_file::log_id;
use cairn_raft::{BatchData, CairnLogStorage, PartitionRaft, PartitionStateMachine, RaftLog};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{Entry, EntryPayload, RaftLogReader, RaftSnapshotBuilder};
use proptest::prelude::*;

mod common;

use common::records;

#[derive(Clone, Debug)]
enum Op {
    /// Entries with these record counts (0: a blank entry), in a new term when the flag is set.
    Append(Vec<usize>, bool),
    /// Truncate from this fraction of the uncommitted suffix.
    Truncate(u8),
    /// Apply up to this fraction of the unapplied entries.
    Apply(u8),
    /// Build a snapshot, then purge up to this fraction of what was applied.
    SnapshotAndPurge(u8),
    /// Copy the directory as a crash would leave it and reopen the copy.
    CrashReopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (proptest::collection::vec(0usize..4, 1..5), any::<bool>()).prop_map(|(c, t)| Op::Append(c, t)),
        2 => any::<u8>().prop_map(Op::Truncate),
        3 => any::<u8>().prop_map(Op::Apply),
        1 => any::<u8>().prop_map(Op::SnapshotAndPurge),
        1 => Just(Op::CrashReopen),
    ]
}

/// One entry as the model knows it.
#[derive(Clone, Copy, Debug)]
struct ModelEntry {
    term: u64,
    records: usize,
    base: u64,
}

#[derive(Default, Debug)]
struct Model {
    /// Every entry ever in the log, by index (purged ones included).
    entries: Vec<ModelEntry>,
    /// First entry of the Raft log (after the purge point).
    start: u64,
    term: u64,
    /// Highest index applied ever (committed: never truncated).
    committed: Option<u64>,
    /// Highest index the state machine now holds as applied.
    applied: Option<u64>,
    /// The applied index last saved by a snapshot build.
    saved_applied: Option<u64>,
    purged: Option<u64>,
}

impl Model {
    fn next_offset_after(&self, index: Option<u64>) -> u64 {
        index.map_or(0, |i| {
            let e = self.entries[i as usize];
            e.base + e.records as u64
        })
    }
}

struct Harness {
    root: tempfile::TempDir,
    generation: usize,
    raft_log: RaftLog,
    storage: CairnLogStorage<PartitionRaft>,
    sm: PartitionStateMachine,
}

fn cfg() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        segment_index_bytes: 1024,
        retention_ms: None,
        ..LogConfig::default()
    }
}

fn open(
    dir: &Path,
) -> (
    RaftLog,
    CairnLogStorage<PartitionRaft>,
    PartitionStateMachine,
) {
    let raft_log = RaftLog::open(dir, cfg(), Arc::new(SystemClock)).unwrap();
    (
        raft_log.clone(),
        CairnLogStorage::new(raft_log.clone()),
        PartitionStateMachine::new(raft_log),
    )
}

impl Harness {
    fn dir(&self) -> PathBuf {
        self.root.path().join(format!("p-{}", self.generation))
    }
}

fn entry(term: u64, index: u64, records_count: usize) -> Entry<PartitionRaft> {
    let payload = if records_count == 0 {
        EntryPayload::Blank
    } else {
        EntryPayload::Normal(BatchData(records(records_count, &index.to_string())))
    };
    Entry {
        log_id: log_id(term, index),
        payload,
    }
}

fn fraction(of: u64, f: u8) -> u64 {
    of * u64::from(f) / 256
}

async fn step(h: &mut Harness, m: &mut Model, op: &Op) {
    let end = m.entries.len() as u64;
    match op {
        Op::Append(counts, new_term) => {
            if *new_term || m.term == 0 {
                m.term += 1;
            }
            let mut batch = Vec::new();
            for &count in counts {
                let index = m.entries.len() as u64;
                let base = m.next_offset_after(index.checked_sub(1));
                m.entries.push(ModelEntry {
                    term: m.term,
                    records: count,
                    base,
                });
                batch.push(entry(m.term, index, count));
            }
            h.storage.blocking_append(batch).await.unwrap();
        }
        Op::Truncate(f) => {
            let first_uncommitted = m.committed.map_or(m.start, |c| c + 1).max(m.start);
            if first_uncommitted < end {
                let at = first_uncommitted + fraction(end - first_uncommitted, *f);
                h.storage
                    .truncate(log_id(m.entries[at as usize].term, at))
                    .await
                    .unwrap();
                m.entries.truncate(at as usize);
                // A new leader's entries follow, in a later term.
                m.term += 1;
            }
        }
        Op::Apply(f) => {
            let from = m.applied.map_or(m.start, |a| a + 1).max(m.start);
            if from < end {
                let upto = from + fraction(end - from, *f);
                let entries = h.storage.try_get_log_entries(from..=upto).await.unwrap();
                assert_eq!(entries.len() as u64, upto - from + 1);
                let replies = h.sm.apply(entries).await.unwrap();
                for (k, reply) in replies.iter().enumerate() {
                    let e = m.entries[(from + k as u64) as usize];
                    assert_eq!(
                        (reply.base_offset, reply.next_offset),
                        (e.base as i64, (e.base + e.records as u64) as i64),
                        "entry {}",
                        from + k as u64
                    );
                }
                m.applied = Some(upto);
                m.committed = m.committed.max(Some(upto));
            }
        }
        Op::SnapshotAndPurge(f) => {
            if let Some(applied) = m.applied {
                let snapshot =
                    h.sm.get_snapshot_builder()
                        .await
                        .build_snapshot()
                        .await
                        .unwrap();
                assert_eq!(snapshot.meta.last_log_id.map(|id| id.index), Some(applied));
                m.saved_applied = Some(applied);
                if applied >= m.start {
                    let upto = m.start + fraction(applied - m.start + 1, *f);
                    let upto = upto.min(applied);
                    h.storage
                        .purge(log_id(m.entries[upto as usize].term, upto))
                        .await
                        .unwrap();
                    m.purged = Some(upto);
                    m.start = upto + 1;
                }
            }
        }
        Op::CrashReopen => {
            let from = h.dir();
            h.generation += 1;
            let to = h.dir();
            std::fs::create_dir_all(&to).unwrap();
            for file in std::fs::read_dir(&from).unwrap() {
                let file = file.unwrap();
                if file.file_name() != ".lock" && file.file_type().unwrap().is_file() {
                    // A retired segment file may be unlinked by the background delete meanwhile.
                    match std::fs::copy(file.path(), to.join(file.file_name())) {
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        other => {
                            other.unwrap();
                        }
                    }
                }
            }
            let (raft_log, storage, sm) = open(&to);
            h.raft_log = raft_log;
            h.storage = storage;
            h.sm = sm;
            // The state machine restarts from its last saved applied state; openraft applies
            // again from there once the leader tells it the commit index.
            m.applied = m.saved_applied;
        }
    }
}

async fn check(h: &mut Harness, m: &Model) {
    let end = m.entries.len() as u64;
    let ids: Vec<_> = h
        .storage
        .try_get_log_entries(0..)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.log_id.leader_id.term, e.log_id.index))
        .collect();
    let want: Vec<_> = (m.start..end)
        .map(|i| (m.entries[i as usize].term, i))
        .collect();
    assert_eq!(ids, want, "log ids");
    let state = h.storage.get_log_state().await.unwrap();
    let purged = m.purged.map(|p| log_id(m.entries[p as usize].term, p));
    assert_eq!(state.last_purged_log_id, purged);
    let last = (m.start < end).then(|| log_id(m.entries[(end - 1) as usize].term, end - 1));
    assert_eq!(state.last_log_id, last.or(purged));
    let (applied, _) = h.sm.applied_state().await.unwrap();
    assert_eq!(applied.map(|id| id.index), m.applied);
    assert_eq!(
        h.raft_log.reader().high_watermark(),
        Offset(m.next_offset_after(m.applied)),
        "high watermark after applied {:?}",
        m.applied
    );
}

fn run(ops: &[Op]) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let root = tempfile::tempdir().unwrap();
        let (raft_log, storage, sm) = open(&root.path().join("p-0"));
        let mut h = Harness {
            root,
            generation: 0,
            raft_log,
            storage,
            sm,
        };
        let mut m = Model::default();
        for op in ops {
            step(&mut h, &mut m, op).await;
            check(&mut h, &m).await;
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 500, ..ProptestConfig::default() })]

    #[test]
    fn raft_storage_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(&ops);
    }
}

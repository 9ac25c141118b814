//! Deterministic simulation of a partition's Raft group (`cairn_raft::testing::sim`): 3 and 5
//! replicas under message loss, delay, reordering and duplication, one-way and two-way
//! partitions, and crashes that lose unflushed log entries, with clients appending throughout.
//! The replication protocol is the real one (openraft, the wire encoding, the group network);
//! the partition's `cairn-log` log is replaced by the simulated disk and an in-memory state
//! machine (`MemStateMachine`), because the real log writes from its own thread, outside the
//! simulated clock.
//!
//! `CAIRN_SIM_SEED=<n>` replays one seed; `CAIRN_SIM_SEEDS=<count>` runs more than CI does.

use std::sync::Arc;

use cairn_codec::batch::{BatchBuilder, Compression, RecordInput};
use cairn_raft::testing::mem_store::MemStateMachine;
use cairn_raft::testing::sim::{
    Digest, DiskBug, SimFailure, SimGroup, SimOptions, run_seed, run_seeds,
};
use cairn_raft::{BatchData, NodeId, PartitionRaft};

/// Seeds CI runs (`cargo test`); each takes about a second of a debug build's time.
const CI_SEEDS: u64 = 100;

/// A partition group: clients append one-record batches.
struct Partition;

impl SimGroup for Partition {
    type C = PartitionRaft;
    type Sm = MemStateMachine;

    fn state_machine(&self, _node: NodeId) -> (MemStateMachine, Digest) {
        let sm = MemStateMachine::default();
        let probe = sm.clone();
        let digest: Digest = Box::new(move || {
            let (batches, crc) = probe.applied_digest();
            [batches.to_le_bytes().as_slice(), &crc.to_le_bytes()].concat()
        });
        (sm, digest)
    }

    fn write(&self, client: u64, n: u64) -> BatchData {
        let value = format!("client {client} write {n}");
        let mut builder = BatchBuilder::new(Compression::None);
        builder
            .push(&RecordInput {
                key: None,
                value: Some(value.as_bytes()),
                headers: &[],
                timestamp_ms: 0,
            })
            .expect("one small record fits a batch");
        BatchData(builder.build().expect("a one-record batch encodes"))
    }
}

/// Odd seeds run 3 replicas, even seeds 5.
fn options(seed: u64, bug: DiskBug) -> SimOptions {
    SimOptions {
        node_count: if seed % 2 == 1 { 3 } else { 5 },
        fault_ms: 20_000,
        client_count: 3,
        bug,
    }
}

/// Logs to stderr when `RUST_LOG` is set (for replaying one seed); silent otherwise.
fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

#[test]
fn partition_group_keeps_acknowledged_writes_under_faults() {
    init_logs();
    let replay = "cargo test -p cairn-raft --features testing --test simulation partition_group -- --nocapture";
    let failures = run_seeds("partition_group", replay, CI_SEEDS, |seed| {
        run_seed(Arc::new(Partition), seed, options(seed, DiskBug::None))
    });
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
}

/// A seed replays: two runs of it end with the same leaders per term and the same acknowledged
/// writes at the same log ids.
#[test]
fn a_seed_replays_the_same_run() {
    for seed in [7, 8] {
        let first = run_seed(Arc::new(Partition), seed, options(seed, DiskBug::None));
        let second = run_seed(Arc::new(Partition), seed, options(seed, DiskBug::None));
        let (first, second) = (first.expect("seed passes"), second.expect("seed passes"));
        assert_eq!(first, second, "seed {seed} ran differently the second time");
    }
}

/// The checker can fail: a disk that loses a flushed entry in a crash breaks the promise openraft
/// relies on, and some seed among the first few catches it as a safety violation.
#[test]
fn checker_catches_a_disk_that_forgets_flushed_entries() {
    let caught = (1..=30).find_map(|seed| {
        match run_seed(
            Arc::new(Partition),
            seed,
            options(seed, DiskBug::ForgetsFlushedTail),
        ) {
            Err(SimFailure::Violations(v)) => Some((seed, v)),
            _ => None,
        }
    });
    let (seed, violations) = caught.expect("no seed caught the forgetful disk");
    println!("seed {seed} caught the forgetful disk: {violations:?}");
}

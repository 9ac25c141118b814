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
use std::time::Duration;

use cairn_codec::batch::{BatchBuilder, Compression, RecordInput};
use cairn_raft::testing::mem_store::MemStateMachine;
use cairn_raft::testing::sim::{
    Digest, DiskBug, Fault, SimCluster, SimFailure, SimGroup, SimOptions, run_seed, run_seeds,
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

#[test]
fn partition_group_keeps_acknowledged_writes_under_faults() {
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

/// A leader whose fsync hangs takes a write, then reboots at once and loses the unflushed entry;
/// openraft 0.9 would restore it as leader of its old term (its vote is durable and committed).
/// Had the followers stored the lost entry, the leader's next entry would reuse its log id with
/// another payload. They had not: the entry did not reach them while the leader could not flush,
/// and the followers elected a new leader (term 2) whose no-op took the index. The checks hold.
#[test]
fn a_leader_rebooted_with_an_unflushed_entry_loses_no_acknowledged_write() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let violations = runtime.block_on(async {
        let group = Arc::new(Partition);
        let mut cluster = SimCluster::start(Arc::clone(&group), 1, 3, DiskBug::None)
            .await
            .expect("cluster starts");
        let observer = cluster.observer().clone();
        let (leader, raft) = loop {
            if let Some(found) = cluster.leader() {
                break found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        for n in 0..3 {
            let data = group.write(0, n);
            let resp = raft.client_write(data.clone()).await.expect("write");
            observer.acked(resp.log_id, data.0);
        }
        let disk = cluster.disk(leader).expect("leader's disk");
        disk.stall_flushes(true);
        let data = group.write(0, 3);
        let stalled =
            tokio::time::timeout(Duration::from_secs(2), raft.client_write(data.clone())).await;
        match stalled {
            Ok(Ok(resp)) => {
                println!(
                    "acknowledged {} with the leader's fsync stalled",
                    resp.log_id
                );
                observer.acked(resp.log_id, data.0);
            }
            other => println!("not acknowledged with the leader's fsync stalled: {other:?}"),
        }
        for (id, raft) in cluster.live().lock().unwrap().iter() {
            let m = raft.metrics().borrow().clone();
            println!(
                "node {id}: last log {:?}, applied {:?}",
                m.last_log_index, m.last_applied
            );
        }
        cluster
            .apply(&Fault::Reboot {
                node: leader,
                down_ms: 0,
            })
            .await
            .expect("reboot");
        disk.stall_flushes(false);
        for n in 4..8 {
            if let Some((_, raft)) = cluster.leader() {
                let data = group.write(0, n);
                if let Ok(Ok(resp)) =
                    tokio::time::timeout(Duration::from_secs(2), raft.client_write(data.clone()))
                        .await
                {
                    println!("acknowledged {} after the reboot", resp.log_id);
                    observer.acked(resp.log_id, data.0);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Ok(index) = cluster.heal_and_converge(Duration::from_secs(30)).await {
            cluster.check_converged(index);
        }
        cluster.shutdown().await;
        observer.violations()
    });
    assert!(violations.is_empty(), "{violations:#?}");
}

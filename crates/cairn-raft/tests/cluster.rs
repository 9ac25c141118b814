//! Three openraft nodes in one process, each on its own partition log, talking through an
//! in-memory router (which can cut a node off): replication through the log storage, commit
//! moving the high watermark, an isolated leader truncating its uncommitted suffix on return,
//! a follower that restarts after the leader purged its log (it catches up by installing a
//! snapshot and continues at the leader's offsets), and a leader that stops.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions: a failure is a failed test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cairn_log::{LogConfig, LogError, LogReader, Offset, SystemClock};
use cairn_raft::{
    BatchData, CairnLogStorage, PartitionRaft, PartitionStateMachine, PeerNode, RaftLog,
    RaftStorageError,
};
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{Config, Raft, SnapshotPolicy};

mod common;

use common::records;

type NodeRaft = Raft<PartitionRaft>;

/// Bound on every wait, so a broken cluster fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(60);

#[derive(Clone, Default)]
struct Router {
    nodes: Arc<Mutex<BTreeMap<u64, NodeRaft>>>,
    /// Nodes cut off from every other node (a network partition).
    isolated: Arc<Mutex<BTreeSet<u64>>>,
}

impl Router {
    fn get(&self, id: u64) -> Option<NodeRaft> {
        self.nodes.lock().unwrap().get(&id).cloned()
    }

    /// The target's Raft if a message from `from` reaches it.
    fn reach(&self, from: u64, target: u64) -> Option<NodeRaft> {
        let isolated = self.isolated.lock().unwrap();
        if isolated.contains(&from) || isolated.contains(&target) {
            return None;
        }
        drop(isolated);
        self.get(target)
    }

    fn isolate(&self, id: u64, cut: bool) {
        let mut isolated = self.isolated.lock().unwrap();
        if cut {
            isolated.insert(id);
        } else {
            isolated.remove(&id);
        }
    }
}

/// One node's view of the network.
struct NodeNetwork {
    router: Router,
    from: u64,
}

struct Connection {
    router: Router,
    from: u64,
    target: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("node {0} is down")]
struct Down(u64);

impl RaftNetworkFactory<PartitionRaft> for NodeNetwork {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, _node: &PeerNode) -> Connection {
        Connection {
            router: self.router.clone(),
            from: self.from,
            target,
        }
    }
}

fn unreachable<E: std::error::Error>(target: u64) -> RPCError<u64, PeerNode, E> {
    RPCError::Unreachable(Unreachable::new(&Down(target)))
}

impl RaftNetwork<PartitionRaft> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<PartitionRaft>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, PeerNode, RaftError<u64>>> {
        let Some(raft) = self.router.reach(self.from, self.target) else {
            return Err(unreachable(self.target));
        };
        raft.append_entries(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<PartitionRaft>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, PeerNode, RaftError<u64, InstallSnapshotError>>,
    > {
        let Some(raft) = self.router.reach(self.from, self.target) else {
            return Err(unreachable(self.target));
        };
        raft.install_snapshot(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, PeerNode, RaftError<u64>>> {
        let Some(raft) = self.router.reach(self.from, self.target) else {
            return Err(unreachable(self.target));
        };
        raft.vote(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        segment_index_bytes: 1024,
        retention_ms: None,
        ..LogConfig::default()
    }
}

fn raft_config(snapshot_policy: SnapshotPolicy) -> Arc<Config> {
    let config = Config {
        cluster_name: "cairn-test".into(),
        heartbeat_interval: 100,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        snapshot_policy,
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        ..Default::default()
    };
    Arc::new(config.validate().unwrap())
}

/// Opens a node's storage, waiting for a previous incarnation's writer to let go of the
/// directory (it closes the log once its last handle is dropped).
async fn open_log(dir: &Path) -> RaftLog {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match RaftLog::open(dir, log_config(), Arc::new(SystemClock)) {
            Ok(log) => return log,
            Err(RaftStorageError::Log(LogError::Locked { .. }))
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => panic!("open {}: {err}", dir.display()),
        }
    }
}

async fn start(router: &Router, root: &Path, id: u64, policy: SnapshotPolicy) -> LogReader {
    let raft_log = open_log(&root.join(format!("node-{id}"))).await;
    let reader = raft_log.reader().clone();
    let raft = Raft::new(
        id,
        raft_config(policy),
        NodeNetwork {
            router: router.clone(),
            from: id,
        },
        // As the broker does: followers write on openraft's task when their writer is idle.
        CairnLogStorage::new(raft_log.clone()).on_node(id),
        PartitionStateMachine::new(raft_log),
    )
    .await
    .unwrap();
    router.nodes.lock().unwrap().insert(id, raft);
    reader
}

async fn stop(router: &Router, id: u64) {
    let raft = router.nodes.lock().unwrap().remove(&id).unwrap();
    raft.shutdown().await.unwrap();
}

async fn leader(router: &Router, among: &[u64]) -> u64 {
    let any = router.get(among[0]).unwrap();
    let metrics = any
        .wait(Some(WAIT))
        .metrics(
            |m| m.current_leader.is_some_and(|l| among.contains(&l)),
            "a leader among the live nodes",
        )
        .await
        .unwrap();
    metrics.current_leader.unwrap()
}

/// Writes `count` batches through the leader; returns the last log index.
async fn write(router: &Router, among: &[u64], tags: std::ops::Range<u64>) -> u64 {
    let mut last = 0;
    for tag in tags {
        let id = leader(router, among).await;
        let raft = router.get(id).unwrap();
        let response = raft
            .client_write(BatchData(records(2, &format!("record {tag}"))))
            .await
            .unwrap();
        assert_eq!(
            response.data.next_offset - response.data.base_offset,
            2,
            "two records per batch"
        );
        last = response.log_id.index;
    }
    last
}

async fn wait_applied(router: &Router, ids: &[u64], index: u64) {
    for &id in ids {
        router
            .get(id)
            .unwrap()
            .wait(Some(WAIT))
            .applied_index_at_least(Some(index), "replica caught up")
            .await
            .unwrap();
    }
}

/// Every record batch readable by offset from `from` on (meta entries left out).
fn batches(reader: &LogReader, from: Offset) -> Vec<(i64, Bytes)> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let read = reader.read(next.as_i64(), 1 << 20).unwrap();
        if read.is_empty() {
            return out;
        }
        for batch in read.batches().filter(|b| !b.is_meta()) {
            out.push((batch.base_offset().as_i64(), batch.bytes().slice(16..)));
        }
        next = read.next_offset;
    }
}

fn assert_same_records(readers: &[&LogReader]) {
    let from = readers.iter().map(|r| r.log_start_offset()).max().unwrap();
    let first = batches(readers[0], from);
    assert!(!first.is_empty());
    for reader in &readers[1..] {
        assert_eq!(reader.high_watermark(), readers[0].high_watermark());
        assert_eq!(
            batches(reader, from),
            first,
            "replicas hold the same records at the same offsets"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_through_the_segment_log_and_survive_restarts() {
    // Snapshot and purge often, so a restarted follower needs a snapshot.
    let policy = SnapshotPolicy::LogsSinceLast(10);
    let root = tempfile::tempdir().unwrap();
    let router = Router::default();
    let mut readers = BTreeMap::new();
    for id in 1..=3 {
        readers.insert(id, start(&router, root.path(), id, policy.clone()).await);
    }
    let members: BTreeMap<u64, PeerNode> = (1..=3)
        .map(|id| {
            (
                id,
                PeerNode {
                    addr: format!("node-{id}"),
                },
            )
        })
        .collect();
    router.get(1).unwrap().initialize(members).await.unwrap();

    let last = write(&router, &[1, 2, 3], 0..25).await;
    wait_applied(&router, &[1, 2, 3], last).await;
    assert_eq!(readers[&1].high_watermark(), Offset(50));
    assert_same_records(&[&readers[&1], &readers[&2], &readers[&3]]);

    // A follower stops; the others go on, snapshot and purge past it.
    let leader_id = leader(&router, &[1, 2, 3]).await;
    let follower = (1..=3).find(|&id| id != leader_id).unwrap();
    let others: Vec<u64> = (1..=3).filter(|&id| id != follower).collect();
    stop(&router, follower).await;
    let last = write(&router, &others, 25..60).await;
    wait_applied(&router, &others, last).await;
    router
        .get(leader_id)
        .unwrap()
        .wait(Some(WAIT))
        .metrics(
            |m| m.purged.is_some_and(|p| p.index > 20),
            "the leader purged its log",
        )
        .await
        .unwrap();

    // It comes back, installs a snapshot, and continues at the leader's offsets.
    readers.insert(
        follower,
        start(&router, root.path(), follower, policy.clone()).await,
    );
    wait_applied(&router, &[follower], last).await;
    let last = write(&router, &[1, 2, 3], 60..70).await;
    wait_applied(&router, &[1, 2, 3], last).await;
    assert_eq!(readers[&follower].high_watermark(), Offset(140));
    assert!(
        readers[&follower].log_start_offset() > Offset(50),
        "the follower's log starts after the snapshot it installed, not at {}",
        readers[&follower].log_start_offset()
    );
    assert_same_records(&[&readers[&1], &readers[&2], &readers[&3]]);

    // The leader stops; the other two elect one and go on.
    let leader_id = leader(&router, &[1, 2, 3]).await;
    let rest: Vec<u64> = (1..=3).filter(|&id| id != leader_id).collect();
    stop(&router, leader_id).await;
    let last = write(&router, &rest, 70..75).await;
    wait_applied(&router, &rest, last).await;
    assert_eq!(readers[&rest[0]].high_watermark(), Offset(150));
    assert_same_records(&[&readers[&rest[0]], &readers[&rest[1]]]);
    for id in rest {
        stop(&router, id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leaders_uncommitted_suffix_is_truncated_when_it_rejoins() {
    // No snapshots: the old leader must catch up through its log, truncating what conflicts.
    let policy = SnapshotPolicy::Never;
    let root = tempfile::tempdir().unwrap();
    let router = Router::default();
    let mut readers = BTreeMap::new();
    for id in 1..=3 {
        readers.insert(id, start(&router, root.path(), id, policy.clone()).await);
    }
    let members: BTreeMap<u64, PeerNode> = (1..=3)
        .map(|id| {
            (
                id,
                PeerNode {
                    addr: format!("node-{id}"),
                },
            )
        })
        .collect();
    router.get(1).unwrap().initialize(members).await.unwrap();
    let last = write(&router, &[1, 2, 3], 0..5).await;
    wait_applied(&router, &[1, 2, 3], last).await;

    // The leader is cut off and takes writes it can never commit: they land in its log only.
    let old = leader(&router, &[1, 2, 3]).await;
    router.isolate(old, true);
    let old_raft = router.get(old).unwrap();
    let mut pending = Vec::new();
    for tag in 100..103 {
        pending.push(
            old_raft
                .client_write_ff(BatchData(records(2, &format!("record {tag}"))))
                .await
                .unwrap(),
        );
    }
    old_raft
        .wait(Some(WAIT))
        .log_index_at_least(Some(last + 3), "the isolated leader appended its writes")
        .await
        .unwrap();
    assert_eq!(
        readers[&old].high_watermark(),
        Offset(10),
        "nothing of them is visible"
    );

    // The other two elect a leader and commit other entries at the same indexes.
    let rest: Vec<u64> = (1..=3).filter(|&id| id != old).collect();
    let last = write(&router, &rest, 5..9).await;
    wait_applied(&router, &rest, last).await;

    // Back in the cluster, the old leader drops its uncommitted suffix and takes the new one.
    router.isolate(old, false);
    wait_applied(&router, &[old], last).await;
    let last = write(&router, &[1, 2, 3], 9..10).await;
    wait_applied(&router, &[1, 2, 3], last).await;
    assert_eq!(readers[&old].high_watermark(), Offset(20));
    assert_same_records(&[&readers[&1], &readers[&2], &readers[&3]]);
    let stored = batches(&readers[&old], Offset(0));
    assert!(
        stored
            .iter()
            .all(|(_, bytes)| !bytes.windows(10).any(|w| w == b"record 100")),
        "the isolated leader's writes are gone"
    );
    for id in 1..=3 {
        stop(&router, id).await;
    }
    drop(pending);
}

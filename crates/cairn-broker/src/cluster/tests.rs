//! The controller state machine driven entry by entry, without Raft or sockets.

use std::collections::BTreeMap;

use cairn_controller::{Action, Command, Outcome, PeerSpec};
use openraft::storage::RaftStateMachine;
use openraft::{Entry, EntryPayload, RaftSnapshotBuilder};

use super::*;

fn entry(index: u64, command: &Command) -> Entry<ControllerRaft> {
    Entry {
        log_id: cairn_raft::wire::log_id(1, index),
        payload: EntryPayload::Normal(encode_command(command, 1_000).expect("encodes")),
    }
}

fn bootstrap() -> Command {
    Command::Bootstrap {
        cluster_id: "c1".to_string(),
        peers: (1..=3)
            .map(|node| PeerSpec {
                node,
                addr: format!("127.0.0.1:70{node}0"),
            })
            .collect(),
        at_ms: 1_000,
    }
}

fn create(name: &str) -> Command {
    Command::CreateTopic {
        name: name.to_string(),
        partition_count: 3,
        replication_factor: 3,
        configs: BTreeMap::new(),
    }
}

#[tokio::test]
async fn applied_commands_publish_metadata_and_hand_this_nodes_actions_over() {
    let (mut sm, metadata, mut events) = ControllerStateMachine::new(2);
    let answers = sm
        .apply(vec![
            Entry {
                log_id: cairn_raft::wire::log_id(1, 0),
                payload: EntryPayload::Blank,
            },
            entry(1, &bootstrap()),
            entry(2, &create("orders")),
            entry(3, &create("orders")),
        ])
        .await
        .expect("applies");
    assert_eq!(answers[0], ControllerResponse::NoCommand);
    assert!(matches!(
        &answers[2],
        ControllerResponse::Applied(Ok(reply)) if matches!(reply.outcome, Outcome::TopicCreated { .. })
    ));
    assert!(matches!(&answers[3], ControllerResponse::Applied(Err(_))));
    let published = metadata.borrow().clone();
    assert_eq!(
        published.topic("orders").map(|t| t.partitions.len()),
        Some(3)
    );
    let ControllerEvent::Actions(actions) = events.try_recv().expect("actions for node 2") else {
        panic!("expected actions");
    };
    let hosted = actions
        .iter()
        .filter(|a| matches!(a, Action::HostReplica { node: 2, .. }))
        .count();
    assert_eq!(
        hosted, 3,
        "replication factor 3 on 3 nodes: node 2 hosts every partition"
    );
    assert_eq!(
        sm.applied_state().await.expect("state").0,
        Some(cairn_raft::wire::log_id(1, 3))
    );
}

#[tokio::test]
async fn an_unreadable_entry_is_skipped_alike_everywhere() {
    let (mut sm, metadata, _events) = ControllerStateMachine::new(1);
    let answers = sm
        .apply(vec![Entry {
            log_id: cairn_raft::wire::log_id(1, 0),
            payload: EntryPayload::Normal(cairn_raft::BatchData(bytes::Bytes::from_static(
                b"garbage",
            ))),
        }])
        .await
        .expect("applies");
    assert!(matches!(answers[0], ControllerResponse::Unreadable(_)));
    assert!(metadata.borrow().topics().is_empty());
}

#[tokio::test]
async fn a_node_restarts_from_its_saved_snapshot() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut first, _, _) =
        ControllerStateMachine::open(1, dir.path().to_path_buf()).expect("opens empty");
    first
        .apply(vec![entry(0, &bootstrap()), entry(1, &create("payments"))])
        .await
        .expect("applies");
    first
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("snapshot");
    // A restart: a new state machine over the same directory, before any entry is applied.
    let (mut again, metadata, _) =
        ControllerStateMachine::open(1, dir.path().to_path_buf()).expect("opens");
    assert!(metadata.borrow().topic("payments").is_some());
    assert_eq!(
        again.applied_state().await.expect("state").0,
        Some(cairn_raft::wire::log_id(1, 1))
    );
    assert!(again.get_current_snapshot().await.expect("read").is_some());

    // A damaged file stops the start instead of starting from nothing.
    let path = dir.path().join(cairn_raft::snapshot_file::SNAPSHOT_FILE);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[20] ^= 1;
    std::fs::write(&path, bytes).expect("write");
    assert!(ControllerStateMachine::open(1, dir.path().to_path_buf()).is_err());
}

#[tokio::test]
async fn a_snapshot_installs_on_another_node_and_asks_for_a_reconcile() {
    let (mut leader, _, _) = ControllerStateMachine::new(1);
    leader
        .apply(vec![entry(0, &bootstrap()), entry(1, &create("payments"))])
        .await
        .expect("applies");
    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("snapshot");
    let (mut follower, metadata, mut events) = ControllerStateMachine::new(3);
    follower
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .expect("installs");
    assert!(metadata.borrow().topic("payments").is_some());
    assert_eq!(events.try_recv().ok(), Some(ControllerEvent::Reset));
    assert_eq!(
        follower.applied_state().await.expect("state").0,
        Some(cairn_raft::wire::log_id(1, 1))
    );
}

mod three_controllers {
    use std::sync::Arc;
    use std::time::Duration;

    use cairn_controller::{Command, Outcome};
    use cairn_raft::GroupRegistry;
    use cairn_raft::testing::mem_store::MemLog;
    use cairn_raft::testing::mem_transport::MemNetwork;
    use openraft::Config;

    use super::super::{ClusterError, Controller, ControllerRaft};
    use super::{bootstrap, create};

    async fn start(net: &Arc<MemNetwork>) -> Vec<Controller> {
        let config = Arc::new(
            Config {
                heartbeat_interval: 50,
                election_timeout_min: 200,
                election_timeout_max: 400,
                ..Config::default()
            }
            .validate()
            .expect("valid"),
        );
        let peers = (1..=3).map(|id| (id, format!("n{id}"))).collect();
        let mut out = Vec::new();
        for id in 1..=3 {
            let registry = Arc::new(GroupRegistry::new());
            net.add_node(id, Arc::clone(&registry));
            let (controller, _events) = Controller::start(
                id,
                &peers,
                Arc::clone(&config),
                net.transport(id),
                &registry,
                MemLog::<ControllerRaft>::default(),
                None,
            )
            .await
            .expect("starts");
            out.push(controller);
        }
        out
    }

    async fn wait_visible(controllers: &[Controller], topic: &str) {
        for _ in 0..300 {
            if controllers
                .iter()
                .all(|c| c.metadata().topic(topic).is_some())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{topic} not visible on every node");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_command_proposed_on_any_node_commits_everywhere_and_survives_the_leaders_loss() {
        let net = MemNetwork::new();
        let controllers = start(&net).await;
        let timeout = Duration::from_secs(5);
        controllers[0]
            .propose(&bootstrap(), timeout)
            .await
            .expect("bootstrap");
        // A follower's proposal is forwarded to the leader.
        let leader = controllers[0].leader().expect("a leader");
        let follower = controllers
            .iter()
            .find(|c| c.node_id() != leader)
            .expect("a follower");
        let reply = follower
            .propose(&create("orders"), timeout)
            .await
            .expect("created through a follower");
        assert!(matches!(reply.outcome, Outcome::TopicCreated { .. }));
        wait_visible(&controllers, "orders").await;
        let again = follower.propose(&create("orders"), timeout).await;
        assert!(matches!(again, Err(ClusterError::Refused(_))), "{again:?}");

        net.set_down(leader, true);
        let survivor = controllers
            .iter()
            .find(|c| c.node_id() != leader)
            .expect("a survivor");
        survivor
            .propose(&create("payments"), timeout)
            .await
            .expect("the majority elects a new leader and commits");
        net.set_down(leader, false);
        wait_visible(&controllers, "payments").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_a_majority_a_proposal_fails_by_its_deadline() {
        let net = MemNetwork::new();
        let controllers = start(&net).await;
        controllers[0]
            .propose(&bootstrap(), Duration::from_secs(5))
            .await
            .expect("bootstrap");
        net.set_down(2, true);
        net.set_down(3, true);
        let err = controllers[0]
            .propose(
                &Command::DeleteTopic {
                    name: "x".to_string(),
                },
                Duration::from_millis(800),
            )
            .await
            .expect_err("no majority");
        assert!(matches!(err, ClusterError::NoLeader { .. }), "{err}");
    }
}

#[test]
fn cluster_ids_parse_from_their_hex_form_only() {
    let id = super::runtime::parse_cluster_id("00ff10203040506070809a0b0c0d0e0f").expect("hex");
    assert_eq!(id.to_string(), "00ff10203040506070809a0b0c0d0e0f");
    for bad in [
        "",
        "00ff",
        "zz".repeat(16).as_str(),
        &"0".repeat(33),
        "é".repeat(16).as_str(),
    ] {
        assert!(super::runtime::parse_cluster_id(bad).is_none(), "{bad:?}");
    }
}

mod compaction {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use cairn_log::SystemClock;
    use cairn_raft::testing::mem_transport::MemNetwork;
    use cairn_raft::{CairnLogStorage, GroupRegistry, RaftLog};
    use openraft::{Config, SnapshotPolicy};

    use super::super::{Controller, ControllerRaft};
    use super::{bootstrap, create};

    fn config() -> Arc<Config> {
        Arc::new(
            Config {
                heartbeat_interval: 50,
                election_timeout_min: 200,
                election_timeout_max: 400,
                snapshot_policy: SnapshotPolicy::LogsSinceLast(8),
                max_in_snapshot_log_to_keep: 2,
                ..Config::default()
            }
            .validate()
            .expect("valid"),
        )
    }

    /// Node `id`'s controller over a real metadata log in `dir`, snapshots kept beside it.
    async fn start_node(net: &Arc<MemNetwork>, id: u64, dir: &Path) -> (Controller, RaftLog) {
        let peers: BTreeMap<u64, String> = (1..=3).map(|id| (id, format!("n{id}"))).collect();
        let registry = Arc::new(GroupRegistry::new());
        net.add_node(id, Arc::clone(&registry));
        // A restarted node's old writer thread lets go of the directory a moment after its
        // last handle is dropped.
        let mut opened = None;
        for _ in 0..200 {
            match RaftLog::open(
                dir,
                super::super::runtime::metadata_log_config(),
                Arc::new(SystemClock),
            ) {
                Ok(log) => {
                    opened = Some(log);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        let log = opened.expect("opens");
        let (controller, _events) = Controller::start(
            id,
            &peers,
            config(),
            net.transport(id),
            &registry,
            CairnLogStorage::<ControllerRaft>::new(log.clone()),
            Some(dir.to_path_buf()),
        )
        .await
        .expect("starts");
        (controller, log)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_is_purged_behind_a_saved_snapshot_and_a_restart_starts_from_it() {
        let net = MemNetwork::new();
        let dirs: Vec<tempfile::TempDir> =
            (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
        let mut nodes = Vec::new();
        for (id, dir) in (1..=3).zip(&dirs) {
            nodes.push(start_node(&net, id, dir.path()).await);
        }
        let timeout = Duration::from_secs(5);
        nodes[0]
            .0
            .propose(&bootstrap(), timeout)
            .await
            .expect("bootstrap");
        for i in 0..20 {
            nodes[0]
                .0
                .propose(&create(&format!("t{i}")), timeout)
                .await
                .expect("created");
        }
        let snapshot = dirs[2]
            .path()
            .join(cairn_raft::snapshot_file::SNAPSHOT_FILE);
        for _ in 0..300 {
            if snapshot.exists() && nodes[2].1.purged().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(snapshot.exists(), "node 3 saved no snapshot");
        let purged = nodes[2].1.purged().expect("node 3 purged its log").index;
        assert!(purged > 0);

        // Node 3 restarts over the same directory: before it hears from anyone, it already has
        // what the snapshot covers (the purged entries are gone from its log).
        let (controller, log) = nodes.pop().expect("node 3");
        controller.raft().shutdown().await.expect("stops");
        drop(controller);
        drop(log);
        let (restarted, _log) = start_node(&net, 3, dirs[2].path()).await;
        let known = restarted.metadata();
        assert!(
            known.is_bootstrapped(),
            "the snapshot's metadata is there at once"
        );
        assert!(known.topic("t0").is_some());
        for _ in 0..300 {
            if restarted.metadata().topic("t19").is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the restarted node never caught up with the entries after its snapshot");
    }
}

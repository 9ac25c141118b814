//! Preferred-leader balancing on three brokers in one process, joined by the in-process
//! transport: leaderships a cut-off node lost come back to it once it returns, while writes go
//! on and none acknowledged is lost; a move whose successor never stands leaves the old leader
//! leading and taking writes; a pass asked for moves what an automatic one would, and refuses
//! bad input by name.
//!
//! A node is cut off rather than restarted: a `Broker` cannot be reopened over its directory in
//! the same process (its controller group keeps the metadata log open), so a real restart is the
//! end-to-end test's (`tests/e2e/cluster_leader_balance.rs`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failure is a failed test"
)]

mod common;

use common::three_nodes::{Node, cluster_configured};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cairn_broker::cluster::NotMovedReason;
use cairn_broker::{
    AckLevel, BrokerError, FetchRequest, LeaderBalanceSettings, ProducePayload, ProduceRequest,
};
use cairn_codec::batch::{BatchBuilder, Compression, ProducerFields, RecordInput};
use cairn_raft::RpcKind;
use cairn_raft::testing::mem_transport::MemNetwork;
use tokio::time::Instant;

/// Partitions of the test topic; with three of `__consumer_offsets`, each node prefers three.
const PARTITIONS: u32 = 6;
const OFFSETS_PARTITIONS: u32 = 3;
/// Generous: a state the cluster reaches in a few seconds, on a busy 2-core machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// [`cluster`] with the default balancing interval, each node shared (for tasks that outlive
/// a borrow).
async fn shared_cluster(net: &Arc<MemNetwork>) -> Vec<Arc<Node>> {
    cluster(net, None).await.into_iter().map(Arc::new).collect()
}

/// Three nodes balancing leaderships every `interval` (`None`: only when asked).
async fn cluster(net: &Arc<MemNetwork>, interval: Option<Duration>) -> Vec<Node> {
    cluster_configured(net, "300..600", |cfg| {
        cfg.cluster = cfg
            .cluster
            .clone()
            .with_leader_balance(LeaderBalanceSettings::every(interval));
        cfg.offsets_topic_partitions = OFFSETS_PARTITIONS;
    })
    .await
}

/// Creates `orders` with `partitions` partitions of three copies, retrying while the cluster
/// forms, and waits until every node holds it.
async fn create_orders(nodes: &[Arc<Node>], partitions: u32) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match nodes[0]
            .broker
            .create_topic("orders", i64::from(partitions), 3, &[])
            .await
        {
            Ok(_) => break,
            Err(BrokerError::ControllerUnavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(other) => panic!("create: {other}"),
        }
    }
    for node in nodes {
        while !node
            .broker
            .list_topics(false)
            .contains(&"orders".to_string())
        {
            assert!(
                Instant::now() < deadline,
                "node {} never saw the topic",
                node.id
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn batch(value: &str) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.set_producer(ProducerFields::NONE);
    builder
        .push(&RecordInput {
            key: None,
            value: Some(value.as_bytes()),
            headers: &[],
            timestamp_ms: 1_000,
        })
        .unwrap();
    builder.build().unwrap()
}

/// Produces one record to `partition` on `node` with `acks=all`: its offset, or the error.
async fn produce_on(node: &Node, partition: u32, value: &str) -> Result<u64, BrokerError> {
    produce_to(node, "orders", partition, value).await
}

/// As [`produce_on`], to `topic`.
async fn produce_to(
    node: &Node,
    topic: &str,
    partition: u32,
    value: &str,
) -> Result<u64, BrokerError> {
    let mut result = node
        .broker
        .produce(ProduceRequest {
            topic: topic.into(),
            partition: Some(i64::from(partition)),
            acks: AckLevel::All,
            payload: ProducePayload::Batch(batch(value)),
            producer: None,
        })
        .await?;
    let produced = result.partitions.remove(0);
    match (produced.error, produced.base_offset) {
        (Some(err), _) => Err(err),
        (None, Some(offset)) => Ok(offset.0),
        (None, None) => panic!("acks=all answered without an offset"),
    }
}

/// Whether `err` is one a client retries (at another node, or later).
fn retriable(err: &BrokerError) -> bool {
    matches!(
        err,
        BrokerError::NotLeader { .. }
            | BrokerError::AppendOutcomeUnknown { .. }
            | BrokerError::PartitionStopped { .. }
    )
}

/// Produces one record to `partition` at whichever node takes it, trying each in turn until
/// `deadline`; answers whether a node acknowledged it (an unknown outcome is not an
/// acknowledgement).
async fn produce_anywhere(nodes: &[Arc<Node>], partition: u32, value: &str) -> bool {
    produce_skipping(nodes, &AtomicU64::new(0), partition, value).await
}

/// As [`produce_anywhere`], skipping node `cut_off` (0: none): a leader cut off from its
/// followers never commits, so an `acks=all` append there waits until it learns it was
/// deposed, as a client cut off with it would.
async fn produce_skipping(
    nodes: &[Arc<Node>],
    cut_off: &AtomicU64,
    partition: u32,
    value: &str,
) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        for node in nodes {
            if node.id == cut_off.load(Ordering::SeqCst) {
                continue;
            }
            match produce_on(node, partition, value).await {
                Ok(_) => return true,
                Err(BrokerError::AppendOutcomeUnknown { .. }) => return false,
                Err(e) if retriable(&e) => {}
                Err(other) => panic!("node {}: {other}", node.id),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no node took a produce to partition {partition}");
}

/// Every record value of `partition`, read from the node that leads it.
async fn read_partition(nodes: &[Arc<Node>], partition: u32) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        for node in nodes {
            if let Ok(values) = read_from(node, partition).await {
                return values;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no node serves partition {partition}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn read_from(node: &Node, partition: u32) -> Result<Vec<String>, BrokerError> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let fetched = node
            .broker
            .fetch(&FetchRequest {
                topic: "orders".into(),
                partition: i64::from(partition),
                offset,
                max_bytes: 1 << 20,
                max_wait: Duration::ZERO,
                min_bytes: 0,
                group: None,
            })
            .await?;
        let mut rest = Bytes::copy_from_slice(fetched.data());
        if rest.is_empty() {
            return Ok(out);
        }
        while !rest.is_empty() {
            let len = cairn_codec::batch::frame_len(&rest).unwrap();
            let b = cairn_codec::batch::Batch::validate(rest.split_to(len)).unwrap();
            if b.is_meta() {
                continue;
            }
            let header = b.header();
            offset = header.base_offset + i64::from(header.last_offset_delta) + 1;
            for r in b.records(1 << 20).unwrap().iter() {
                let r = r.unwrap();
                out.push(String::from_utf8_lossy(r.value.unwrap()).to_string());
            }
        }
    }
}

/// Leaderships each node holds now (its Raft groups' own view).
fn leaders(nodes: &[Arc<Node>]) -> Vec<u64> {
    nodes
        .iter()
        .map(|n| n.broker.replication_status().unwrap().leader_count)
        .collect()
}

/// Whether every group has its preferred replica as leader: no node leads a partition whose
/// preferred replica is another, and the nodes lead every group between them.
fn balanced(nodes: &[Arc<Node>]) -> bool {
    let groups = u64::from(PARTITIONS + OFFSETS_PARTITIONS);
    leaders(nodes).iter().sum::<u64>() == groups
        && nodes
            .iter()
            .all(|n| n.broker.leader_balance_status().unwrap().imbalance_count == 0)
}

/// The leader of `orders`' partition 0 when the cluster has settled on it: every node names
/// it, and every replica is in sync with it (reachable, caught up).
fn settled_leader(nodes: &[Arc<Node>]) -> Option<Arc<Node>> {
    let named: BTreeSet<i32> = nodes
        .iter()
        .map(|n| {
            n.broker
                .describe_topic("orders")
                .ok()
                .map_or(-1, |info| info.partitions[0].leader)
        })
        .collect();
    let [leader] = named.into_iter().collect::<Vec<_>>()[..] else {
        return None;
    };
    let leader = nodes.iter().find(|n| i32::try_from(n.id) == Ok(leader))?;
    let in_sync = leader.broker.replication_status()?.under_replicated_count == 0;
    in_sync.then(|| Arc::clone(leader))
}

async fn wait_until(what: &str, nodes: &[Arc<Node>], done: impl Fn(&[Arc<Node>]) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done(nodes) {
        assert!(
            Instant::now() < deadline,
            "{what}: never happened; leaders per node {:?}",
            leaders(nodes)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaderships_return_to_a_node_that_comes_back_and_no_acknowledged_write_is_lost() {
    let net = MemNetwork::new();
    let nodes: Vec<Arc<Node>> = cluster(&net, Some(Duration::from_millis(200)))
        .await
        .into_iter()
        .map(Arc::new)
        .collect();
    create_orders(&nodes, PARTITIONS).await;
    // First elections are won by whoever stands first; balancing puts each group on its
    // preferred replica, and placement spreads those evenly.
    wait_until("balanced at start", &nodes, balanced).await;
    assert_eq!(leaders(&nodes), [3, 3, 3]);

    let stop = Arc::new(AtomicBool::new(false));
    let cut_off = Arc::new(AtomicU64::new(0));
    let writer = {
        let (nodes, stop, cut_off) = (nodes.clone(), Arc::clone(&stop), Arc::clone(&cut_off));
        tokio::spawn(async move {
            let mut acked: BTreeMap<u32, Vec<String>> = BTreeMap::new();
            let mut seq = 0u64;
            while !stop.load(Ordering::SeqCst) {
                for partition in 0..PARTITIONS {
                    let value = format!("p{partition}-{seq}");
                    if produce_skipping(&nodes, &cut_off, partition, &value).await {
                        acked.entry(partition).or_default().push(value);
                    }
                }
                seq += 1;
            }
            acked
        })
    };

    cut_off.store(1, Ordering::SeqCst);
    net.set_down(1, true);
    let survivors = [Arc::clone(&nodes[1]), Arc::clone(&nodes[2])];
    let groups = u64::from(PARTITIONS + OFFSETS_PARTITIONS);
    wait_until("the survivors lead everything", &survivors, |n| {
        leaders(n).iter().sum::<u64>() == groups
    })
    .await;
    // Cut off, node 1 took its peers for dead and, for a few rounds (`liveness::take_over`,
    // about 2 s with these timings), calls elections of the groups they lead; back within
    // them, it would take leaderships by election, not by balancing. Let them run out.
    tokio::time::sleep(Duration::from_secs(3)).await;
    net.set_down(1, false);
    cut_off.store(0, Ordering::SeqCst);
    // Node 1 may still think it leads until the new leaders' appends reach it (openraft backs
    // off from a peer it could not reach), and it may be handed its leaderships back in the
    // same round trip that deposes it, so its own count is not watched here: the survivors
    // led everything, and the moves they count below are what brings leaderships back.
    let moved = |n: &[Arc<Node>]| -> u64 {
        n.iter()
            .map(|n| n.broker.leader_balance_status().unwrap().moves_total)
            .sum()
    };
    let moved_before = moved(&survivors);
    wait_until("balanced after node 1 returned", &nodes, |n| {
        balanced(n) && leaders(n) == [3, 3, 3] && moved(&survivors) > moved_before
    })
    .await;

    stop.store(true, Ordering::SeqCst);
    let acked = writer.await.unwrap();
    for partition in 0..PARTITIONS {
        let stored: BTreeSet<String> = read_partition(&nodes, partition)
            .await
            .into_iter()
            .collect();
        let written = acked.get(&partition).map_or(&[][..], Vec::as_slice);
        assert!(!written.is_empty(), "partition {partition} took writes");
        for value in written {
            assert!(stored.contains(value), "acknowledged {value} was lost");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_that_fails_leaves_the_old_leader_leading_and_taking_writes() {
    let net = MemNetwork::new();
    let nodes = shared_cluster(&net).await;
    create_orders(&nodes, 1).await;
    assert!(produce_anywhere(&nodes, 0, "a").await);
    // Placement makes node 1 the preferred replica of `orders`' one partition, whether the
    // cluster's `__consumer_offsets` was placed first (one preferred leadership each: the
    // lowest id wins) or not (nothing placed yet: the lowest id again); the report below
    // checks it. Make another node lead: cut node 1 off while it leads, write through the
    // others, and bring it back.
    const PREFERRED: u64 = 1;
    let mut written = vec!["a".to_string()];
    let leader = loop {
        wait_until("every node names one leader, in sync", &nodes, |n| {
            settled_leader(n).is_some()
        })
        .await;
        let leader = settled_leader(&nodes).unwrap();
        if leader.id != PREFERRED {
            break leader;
        }
        let cut_off = AtomicU64::new(PREFERRED);
        net.set_down(PREFERRED, true);
        let value = format!("b{}", written.len());
        assert!(produce_skipping(&nodes, &cut_off, 0, &value).await);
        written.push(value);
        net.set_down(PREFERRED, false);
        // While cut off, node 1 took every peer for dead and steers elections of the groups
        // they lead its way for a few rounds (`liveness::take_over`, six rounds of about
        // 350 ms with these timings); one such election during the move would win it without
        // the campaign request this test drops. Let the rounds run out (and if one won, the
        // loop cuts it off again).
        tokio::time::sleep(Duration::from_secs(3)).await;
    };

    // The successor never hears the campaign request: the move times out.
    net.set_dropped(RpcKind::Campaign, true);
    let pass = {
        let leader = Arc::clone(&leader);
        tokio::spawn(async move { leader.broker.balance_leaders(Some("orders"), 0).await })
    };
    // An append made while the move holds the partition's proposals waits, then lands here.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let during = produce_on(&leader, 0, "c").await;
    let report = pass.await.unwrap().unwrap();
    assert!(report.moved.is_empty(), "{report:?}");
    assert_eq!(report.not_moved.len(), 1, "{report:?}");
    assert_eq!(report.not_moved[0].reason, NotMovedReason::HandoverTimedOut);
    let next = u64::try_from(written.len()).unwrap();
    assert_eq!(during.expect("the old leader took the write"), next);
    assert_eq!(produce_on(&leader, 0, "d").await.unwrap(), next + 1);
    let status = leader.broker.leader_balance_status().unwrap();
    assert_eq!((status.moves_total, status.failed_moves_total), (0, 1));

    // With the request let through, a pass asked for moves it to the preferred replica.
    net.set_dropped(RpcKind::Campaign, false);
    let preferred = u64::try_from(report.not_moved[0].preferred).unwrap();
    assert_eq!(preferred, PREFERRED);
    let report = leader
        .broker
        .balance_leaders(Some("orders"), 0)
        .await
        .unwrap();
    assert_eq!(report.moved.len(), 1, "{report:?}");
    assert_eq!(report.moved[0].to, i32::try_from(preferred).unwrap());
    assert!(produce_anywhere(&nodes, 0, "e").await);
    written.extend(["c", "d", "e"].map(String::from));
    assert_eq!(read_partition(&nodes, 0).await, written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_asked_for_refuses_bad_input_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let single = common::open(dir.path()).await;
    assert!(matches!(
        single.balance_leaders(None, -1).await,
        Err(BrokerError::InvalidRequest(_))
    ));
    assert!(matches!(
        single.balance_leaders(Some("nope"), 0).await,
        Err(BrokerError::UnknownTopic { .. })
    ));
    let report = single.balance_leaders(None, 0).await.unwrap();
    assert!(report.moved.is_empty() && report.not_moved.is_empty());
    assert!(single.leader_balance_status().is_none());
}

/// A new partition whose preferred replica is down still gets a leader: its other replicas
/// initialize the group themselves once no election has reached them within the shortest
/// election timeout (only the preferred replica initializes a new group at once), and take
/// writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_partition_whose_preferred_replica_is_down_still_gets_a_leader() {
    let net = MemNetwork::new();
    let nodes = shared_cluster(&net).await;
    // The cluster forms whole (its controller's first election), then node 3 is cut off.
    create_orders(&nodes, 1).await;
    net.set_down(3, true);
    let up = &nodes[..2];
    let deadline = Instant::now() + PATIENCE;
    let info = loop {
        match up[0].broker.create_topic("payments", 6, 3, &[]).await {
            Ok(info) => break info,
            Err(BrokerError::ControllerUnavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(other) => panic!("create: {other}"),
        }
    };
    assert!(
        info.partitions.iter().all(|p| p.replicas.len() == 3),
        "each partition names its three replicas from the start: {:?}",
        info.partitions
    );
    // Six partitions over three nodes: two prefer node 3, and every one must take a write.
    for partition in 0..6 {
        'taken: loop {
            assert!(
                Instant::now() < deadline,
                "partition {partition} never took a write with node 3 cut off"
            );
            for node in up {
                if produce_to(node, "payments", partition, "paid")
                    .await
                    .is_ok()
                {
                    break 'taken;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

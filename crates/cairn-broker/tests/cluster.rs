//! Three brokers in one process, joined by the in-process transport (`cairn-raft`'s `testing`
//! feature): a replicated topic created on any node appears on all, only the leader takes
//! produce and fetch (others name it), a cut-off leader is replaced with nothing acknowledged
//! lost, and an idempotent producer's retry after the failover is answered, not duplicated;
//! committed offsets outlive their coordinator; retention deletes from a replicated log, and a
//! copy that fell behind the leader's log start catches up by snapshot; a node leaving cleanly
//! hands its leaderships over and takes no more appends.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failure is a failed test"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_broker::{
    AckLevel, BrokerError, FetchRequest, OffsetCommit, ProducePayload, ProduceRequest, TopicInfo,
    TopicPartition,
};
use cairn_codec::batch::{BatchBuilder, Compression, ProducerFields, RecordInput};
use cairn_raft::testing::mem_transport::MemNetwork;
use common::three_nodes::{Node, cluster};

/// Creates `orders` (one partition, three copies) through `nodes[through]`, retrying while the
/// cluster is still forming (the controller answers `ControllerUnavailable` until its first
/// leader commits), and waits until every node has it.
async fn create_orders(nodes: &[Node], through: usize, configs: &[(String, String)]) -> TopicInfo {
    for _ in 0..100 {
        match nodes[through]
            .broker
            .create_topic("orders", 1, 3, configs)
            .await
        {
            Ok(info) => {
                wait_orders_everywhere(nodes).await;
                return info;
            }
            Err(BrokerError::ControllerUnavailable(_)) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(other) => panic!("create: {other}"),
        }
    }
    panic!("the cluster never took the create");
}

/// Waits until every node has applied the committed create of `orders` (within a heartbeat
/// or so).
async fn wait_orders_everywhere(nodes: &[Node]) {
    for node in nodes {
        let mut waited = 0;
        while !node
            .broker
            .list_topics(false)
            .contains(&"orders".to_string())
        {
            assert!(waited < 200, "node {} never saw the topic", node.id);
            tokio::time::sleep(Duration::from_millis(25)).await;
            waited += 1;
        }
    }
}

fn batch(values: &[&str], producer: ProducerFields) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.set_producer(producer);
    for v in values {
        builder
            .push(&RecordInput {
                key: None,
                value: Some(v.as_bytes()),
                headers: &[],
                timestamp_ms: 1_000,
            })
            .unwrap();
    }
    builder.build().unwrap()
}

fn produce(bytes: Bytes, producer: Option<ProducerFields>) -> ProduceRequest {
    ProduceRequest {
        topic: "orders".into(),
        partition: Some(0),
        acks: AckLevel::All,
        payload: ProducePayload::Batch(bytes),
        producer,
    }
}

/// Produces on one node: the base offset, or the partition's error.
async fn produce_on(
    node: &Node,
    bytes: Bytes,
    producer: Option<ProducerFields>,
) -> Result<i64, BrokerError> {
    let mut result = node.broker.produce(produce(bytes, producer)).await?;
    let produced = result.partitions.remove(0);
    match (produced.error, produced.base_offset) {
        (Some(err), _) => Err(err),
        (None, Some(offset)) => Ok(i64::try_from(offset.0).unwrap()),
        (None, None) => panic!("acks=all answered without an offset"),
    }
}

/// The node that takes a produce to partition 0, trying every live one until one does.
///
/// An append whose outcome is unknown (the node lost the leadership while it waited for the
/// commit, which a loaded machine's election churn can cause) is tried again too: a caller
/// that needs each batch once passes an idempotent one, whose retry is answered with the
/// original offset if the first try was committed.
async fn produce_anywhere(
    nodes: &[Node],
    skip: Option<u64>,
    bytes: Bytes,
    producer: Option<ProducerFields>,
) -> (u64, i64) {
    for _ in 0..400 {
        for node in nodes.iter().filter(|n| Some(n.id) != skip) {
            match produce_on(node, bytes.clone(), producer).await {
                Ok(offset) => return (node.id, offset),
                Err(BrokerError::NotLeader { .. })
                | Err(BrokerError::PartitionStopped { .. })
                | Err(BrokerError::AppendOutcomeUnknown { .. }) => {}
                Err(other) => panic!("node {}: {other}", node.id),
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no node took the produce");
}

fn values(data: &Bytes) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = data.clone();
    while !rest.is_empty() {
        let len = cairn_codec::batch::frame_len(&rest).unwrap();
        let b = cairn_codec::batch::Batch::validate(rest.split_to(len)).unwrap();
        if b.is_meta() {
            continue;
        }
        for r in b.records(1 << 20).unwrap().iter() {
            let r = r.unwrap();
            out.push(String::from_utf8_lossy(r.value.unwrap()).to_string());
        }
    }
    out
}

async fn read_all(node: &Node) -> Result<Vec<String>, BrokerError> {
    read_from(node, 0).await
}

/// Every record of partition 0 from `offset` to the high watermark (a fetch stops at the end
/// of a segment, so one per segment).
async fn read_from(node: &Node, mut offset: i64) -> Result<Vec<String>, BrokerError> {
    let mut out = Vec::new();
    loop {
        let fetched = node
            .broker
            .fetch(&FetchRequest {
                topic: "orders".into(),
                partition: 0,
                offset,
                max_bytes: 1 << 20,
                max_wait: Duration::ZERO,
                min_bytes: 0,
                group: None,
            })
            .await?;
        let data = Bytes::copy_from_slice(fetched.data());
        if data.is_empty() {
            return Ok(out);
        }
        offset = next_offset(&data);
        out.extend(values(&data));
    }
}

/// The offset after the last batch in `data`.
fn next_offset(data: &Bytes) -> i64 {
    let mut rest = data.clone();
    let mut next = 0;
    while !rest.is_empty() {
        let len = cairn_codec::batch::frame_len(&rest).unwrap();
        let b = cairn_codec::batch::Batch::validate(rest.split_to(len)).unwrap();
        if b.is_meta() {
            continue;
        }
        let header = b.header();
        next = header.base_offset + i64::from(header.last_offset_delta) + 1;
    }
    next
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_partition_fails_over_without_loss_or_duplicates() {
    let net = MemNetwork::new();
    let nodes = cluster(&net).await;
    // Created through a node other than the first.
    let info = create_orders(&nodes, 1, &[]).await;
    assert_eq!(info.partitions.len(), 1);

    let (leader, first) =
        produce_anywhere(&nodes, None, batch(&["a", "b"], ProducerFields::NONE), None).await;
    assert_eq!(first, 0);
    // Followers refuse, and name the leader once they have heard from it (a follower that has
    // not yet says it knows none).
    for node in nodes.iter().filter(|n| n.id != leader) {
        let mut named = false;
        for _ in 0..200 {
            match produce_on(node, batch(&["x"], ProducerFields::NONE), None).await {
                Err(BrokerError::NotLeader {
                    leader: Some(hint), ..
                }) => {
                    assert_eq!(hint.node_id, i32::try_from(leader).unwrap());
                    assert_eq!(
                        hint.address.as_deref(),
                        Some(format!("node-{leader}:7070").as_str())
                    );
                    named = true;
                    break;
                }
                Err(BrokerError::NotLeader { leader: None, .. }) => {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                other => panic!("node {} answered {other:?}", node.id),
            }
        }
        assert!(named, "node {} never named the leader", node.id);
        // Offset lookups too: a follower's high watermark may trail the leader's.
        assert!(
            matches!(
                node.broker
                    .list_offset("orders", 0, cairn_broker::OffsetQuery::Latest),
                Err(BrokerError::NotLeader { .. })
            ),
            "node {} answered an offset lookup as a follower",
            node.id
        );
    }
    let leading = nodes.iter().find(|n| n.id == leader).unwrap();
    assert_eq!(
        leading
            .broker
            .list_offset("orders", 0, cairn_broker::OffsetQuery::Latest)
            .unwrap()
            .0,
        2
    );

    // An idempotent producer writes once, then the leader is cut off.
    let (pid, epoch) = nodes[0].broker.init_producer_id().await.unwrap();
    let fields = ProducerFields {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: 0,
    };
    let idempotent = batch(&["c", "d", "e"], fields);
    let (_, at) = produce_anywhere(&nodes, None, idempotent.clone(), Some(fields)).await;
    assert_eq!(at, 2);

    net.set_down(leader, true);
    // The retry reaches the new leader, which answers it with the original offset.
    let (second, retried) =
        produce_anywhere(&nodes, Some(leader), idempotent.clone(), Some(fields)).await;
    assert_ne!(second, leader);
    assert_eq!(
        retried, 2,
        "a retry after failover is answered, not duplicated"
    );
    let (_, next) = produce_anywhere(
        &nodes,
        Some(leader),
        batch(&["f"], ProducerFields::NONE),
        None,
    )
    .await;
    assert_eq!(next, 5);

    net.set_down(leader, false);
    let new_leader = nodes.iter().find(|n| n.id == second).unwrap();
    assert_eq!(
        read_all(new_leader).await.unwrap(),
        ["a", "b", "c", "d", "e", "f"]
    );
    // The old leader catches up and then refuses reads, naming the new leader.
    let old = nodes.iter().find(|n| n.id == leader).unwrap();
    for _ in 0..200 {
        if matches!(read_all(old).await, Err(BrokerError::NotLeader { .. })) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(matches!(
        read_all(old).await,
        Err(BrokerError::NotLeader { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_node_hands_its_leaderships_over_and_takes_no_more_appends() {
    let net = MemNetwork::new();
    let nodes = cluster(&net).await;
    create_orders(&nodes, 0, &[]).await;
    let (leader, _) =
        produce_anywhere(&nodes, None, batch(&["a", "b"], ProducerFields::NONE), None).await;
    let leaving = nodes.iter().find(|n| n.id == leader).unwrap();

    let report = leaving.broker.hand_over_leaderships().await;
    assert!(report.partitions_led >= 1, "{report:?}");
    // Whether or not every group moved within the bound, the leaving node proposes nothing.
    assert!(matches!(
        produce_on(leaving, batch(&["x"], ProducerFields::NONE), None).await,
        Err(BrokerError::NotLeader { .. })
    ));
    let (successor, at) = produce_anywhere(
        &nodes,
        Some(leader),
        batch(&["c"], ProducerFields::NONE),
        None,
    )
    .await;
    assert_ne!(successor, leader);
    assert_eq!(at, 2, "nothing acknowledged before the handover was lost");
    let successor = nodes.iter().find(|n| n.id == successor).unwrap();
    assert_eq!(read_all(successor).await.unwrap(), ["a", "b", "c"]);
    leaving.broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replication_factor_above_the_node_count_is_refused_by_name() {
    let net = MemNetwork::new();
    let nodes = cluster(&net).await;
    let err = nodes[0]
        .broker
        .create_topic("orders", 1, 4, &[])
        .await
        .expect_err("4 replicas on 3 nodes");
    assert!(
        matches!(
            err,
            BrokerError::InvalidReplicationFactor {
                requested: 4,
                node_count: 3
            }
        ),
        "{err:?}"
    );
}

/// What one node says when asked for group `g`'s offsets of `orders-0`: `Ok(offset)` from the
/// coordinator (`None` when nothing is committed), or its refusal.
fn committed_on(node: &Node) -> Result<Option<i64>, BrokerError> {
    let asked = TopicPartition {
        topic: "orders".into(),
        partition: 0,
    };
    let answer = node.broker.fetch_offsets("g", &[asked])?;
    Ok(answer[0].committed.as_ref().map(|v| v.offset))
}

/// Waits until exactly one live node coordinates `g` and the others name it; returns its id.
async fn coordinator(nodes: &[Node], skip: Option<u64>) -> u64 {
    for _ in 0..400 {
        let mut answering = Vec::new();
        let mut named = Vec::new();
        for node in nodes.iter().filter(|n| Some(n.id) != skip) {
            match committed_on(node) {
                Ok(_) => answering.push(node.id),
                Err(BrokerError::NotCoordinator {
                    coordinator: Some(hint),
                    ..
                }) => named.push(hint),
                Err(
                    BrokerError::NotCoordinator {
                        coordinator: None, ..
                    }
                    | BrokerError::CoordinatorLoadInProgress { .. }
                    | BrokerError::CoordinatorNotAvailable { .. },
                ) => {}
                Err(other) => panic!("node {}: {other}", node.id),
            }
        }
        if let [id] = answering[..]
            && named.len() == nodes.len() - 1 - usize::from(skip.is_some())
        {
            for hint in named {
                assert_eq!(hint.node_id, i32::try_from(id).unwrap());
                assert_eq!(hint.address, Some(format!("node-{id}:7070")));
            }
            return id;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no single coordinator for the group");
}

fn commit(offset: i64) -> Vec<OffsetCommit> {
    vec![OffsetCommit {
        partition: TopicPartition {
            topic: "orders".into(),
            partition: 0,
        },
        offset,
        metadata: String::new(),
    }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_the_loss_of_their_coordinator() {
    let net = MemNetwork::new();
    let nodes = cluster(&net).await;
    create_orders(&nodes, 0, &[]).await;
    let first = coordinator(&nodes, None).await;
    let on = |id: u64| nodes.iter().find(|n| n.id == id).unwrap();
    // Only the coordinator takes the commit; it is replicated before it is answered.
    for other in nodes.iter().filter(|n| n.id != first) {
        let refused = other.broker.commit_offsets("g", "", -1, &commit(3)).await;
        assert!(
            matches!(refused, Err(BrokerError::NotCoordinator { .. })),
            "{refused:?}"
        );
    }
    on(first)
        .broker
        .commit_offsets("g", "", -1, &commit(3))
        .await
        .expect("committed on the coordinator");
    assert_eq!(committed_on(on(first)).unwrap(), Some(3));
    assert_eq!(
        on(first).broker.find_coordinator("g").unwrap().node_id,
        i32::try_from(first).unwrap()
    );

    // The coordinator is cut off: another node leads the offsets partition, reads the commit
    // back, and takes the next one.
    net.set_down(first, true);
    let second = coordinator(&nodes, Some(first)).await;
    assert_ne!(second, first);
    assert_eq!(committed_on(on(second)).unwrap(), Some(3));
    on(second)
        .broker
        .commit_offsets("g", "", -1, &commit(5))
        .await
        .expect("committed on the new coordinator");

    // Back in touch, the old coordinator lets go of the group and names the new one.
    net.set_down(first, false);
    assert_eq!(coordinator(&nodes, None).await, second);
    assert_eq!(committed_on(on(second)).unwrap(), Some(5));
}

/// Partition 0 of `orders` on `node`: (log start offset, high watermark), as its copy has them.
fn bounds(node: &Node) -> (i64, i64) {
    let info = node.broker.describe_topic("orders").unwrap();
    let p = &info.partitions[0];
    (
        i64::try_from(p.log_start_offset.0).unwrap(),
        i64::try_from(p.high_watermark.0).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_runs_on_a_replicated_partition_and_a_follower_behind_it_catches_up() {
    let net = MemNetwork::new();
    let nodes = cluster(&net).await;
    let configs = [
        ("segment.bytes".to_string(), "1024".to_string()),
        ("retention.bytes".to_string(), "2048".to_string()),
    ];
    create_orders(&nodes, 0, &configs).await;
    // For the write after the leader is cut off, which may meet an election and be retried.
    let (pid, epoch) = nodes[0].broker.init_producer_id().await.unwrap();
    let (leader, _) =
        produce_anywhere(&nodes, None, batch(&["v0"], ProducerFields::NONE), None).await;
    let lagging = nodes.iter().find(|n| n.id != leader).unwrap().id;
    let on = |id: u64| nodes.iter().find(|n| n.id == id).unwrap();
    // One follower misses everything from here on, while retention deletes the start of the
    // leader's log (and of the other follower's).
    net.set_down(lagging, true);
    let pad = "x".repeat(100);
    for i in 1..80 {
        let value = format!("v{i}-{pad}");
        produce_anywhere(
            &nodes,
            Some(lagging),
            batch(&[value.as_str()], ProducerFields::NONE),
            None,
        )
        .await;
    }
    let mut waited = 0;
    while bounds(on(leader)).0 == 0 {
        assert!(
            waited < 400,
            "retention never deleted from the leader's log"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
        waited += 1;
    }
    let (start, end) = bounds(on(leader));
    assert_eq!(end, 80);
    let kept = read_from(on(leader), start).await.unwrap();
    assert!(kept.len() < 80, "retention kept everything");

    // Back in touch, the lagging copy cannot be sent the entries it missed (they are gone): it
    // gets a snapshot, starts its log over at the leader's log start (not at the leader's last
    // applied entry, which would drop what the leader still keeps), and fetches the rest.
    // Retention may still move the leader's log start meanwhile, so the two are compared as
    // they stand.
    net.set_down(lagging, false);
    let mut waited = 0;
    loop {
        let (lag_start, lag_end) = bounds(on(lagging));
        let (leader_start, _) = bounds(on(leader));
        if lag_end == end && lag_start > 0 && lag_start == leader_start {
            break;
        }
        assert!(
            waited < 400,
            "the lagging copy never caught up with all the leader keeps: it holds {lag_start}..{lag_end}, the leader {leader_start}..{end}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
        waited += 1;
    }
    // With the old leader cut off, whichever copy leads serves the same records at the same
    // offsets.
    net.set_down(leader, true);
    let fields = ProducerFields {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: 0,
    };
    let (next_leader, at) = produce_anywhere(
        &nodes,
        Some(leader),
        batch(&["after"], fields),
        Some(fields),
    )
    .await;
    assert_eq!(at, 80);
    // What the old leader kept, from where retention has since let the log start.
    let (new_start, _) = bounds(on(next_leader));
    let served = read_from(on(next_leader), start.max(new_start))
        .await
        .unwrap();
    let skip = usize::try_from(start.max(new_start) - start).unwrap();
    assert_eq!(&served[..served.len() - 1], &kept[skip..]);
    assert_eq!(served.last().map(String::as_str), Some("after"));
}

/// A leader cut off with an uncommitted idempotent batch is asked to take it again (a client
/// retry). While the retry waits, the majority elects another leader and commits other records
/// at the same offsets; the old leader rejoins, drops its uncommitted batch and copies them.
/// The retry must then not be answered with the batch's old offsets, which hold other records:
/// that would acknowledge a write that no copy holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_waiting_on_a_deposed_leader_is_not_answered_with_offsets_it_lost() {
    let net = MemNetwork::new();
    let nodes = cluster(&net).await;
    create_orders(&nodes, 0, &[]).await;
    let (leader, first) =
        produce_anywhere(&nodes, None, batch(&["a", "b"], ProducerFields::NONE), None).await;
    assert_eq!(first, 0);
    let (pid, epoch) = nodes[0].broker.init_producer_id().await.unwrap();
    let fields = ProducerFields {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: 0,
    };
    let idempotent = batch(&["c", "d", "e"], fields);

    net.set_down(leader, true);
    let old = nodes.iter().find(|n| n.id == leader).unwrap();
    let original = {
        let broker = Arc::clone(&old.broker);
        let bytes = idempotent.clone();
        tokio::spawn(async move { broker.produce(produce(bytes, Some(fields))).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let retry = {
        let broker = Arc::clone(&old.broker);
        let bytes = idempotent.clone();
        tokio::spawn(async move { broker.produce(produce(bytes, Some(fields))).await })
    };
    // The majority moves on and fills offsets 2..=4 with other records.
    let (second, at) = produce_anywhere(
        &nodes,
        Some(leader),
        batch(&["x", "y", "z"], ProducerFields::NONE),
        None,
    )
    .await;
    assert_eq!(at, 2);
    net.set_down(leader, false);

    let new_leader = nodes.iter().find(|n| n.id == second).unwrap();
    let log = read_all(new_leader).await.unwrap();
    assert_eq!(log, ["a", "b", "x", "y", "z"]);
    for (name, answer) in [("original", original), ("retry", retry)] {
        let mut answer = answer.await.unwrap();
        let produced = match &mut answer {
            Ok(result) => result.partitions.remove(0),
            Err(e) => panic!("the {name} failed as a whole: {e}"),
        };
        match (produced.error, produced.base_offset) {
            (None, Some(offset)) => {
                let at = usize::try_from(offset.0).unwrap();
                assert_eq!(
                    log.get(at).map(String::as_str),
                    Some("c"),
                    "the {name} was acknowledged at offset {at}, which holds another record"
                );
            }
            // The batch reached the old leader's Raft log: the answer must leave its fate open
            // (a definitive refusal such as NOT_LEADER would let the producer reuse its
            // sequence numbers for other records).
            (Some(BrokerError::AppendOutcomeUnknown { .. }), _) => {}
            (other, _) => panic!("the {name} was answered {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_set_on_one_node_applies_on_every_node() {
    use cairn_controller::security::quota::{QuotaEntity, QuotaLimits};
    let net = MemNetwork::new();
    let nodes = cluster(&net).await;
    let alice = QuotaEntity::Principal("User:alice".into());
    let limits = QuotaLimits {
        producer_byte_rate: Some(1_000),
        max_topics: Some(2),
        ..QuotaLimits::default()
    };
    // The controller answers ControllerUnavailable until the cluster has formed.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match nodes[1].broker.set_quota(alice.clone(), limits).await {
            Ok(()) => break,
            Err(BrokerError::ControllerUnavailable(_)) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("{err:?}"),
        }
    }
    nodes[2]
        .broker
        .record_topic_creator("t", "User:alice", 3)
        .await
        .unwrap();
    for node in &nodes {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let security = node.broker.security();
            let quotas = security.quotas();
            if quotas.get(&alice) == Some(&limits) && quotas.creation("t").is_some() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node {} never saw the quota",
                node.id
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let err = nodes[0]
        .broker
        .set_quota(
            alice,
            QuotaLimits {
                request_rate: Some(0),
                ..QuotaLimits::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::InvalidQuota { ref field, .. } if field == "request_rate"),
        "{err:?}"
    );
}

//! A damaged replica heals (issue 14 item 4), with three brokers in one process joined by the
//! in-process transport: a byte flipped inside a committed batch of one copy's segment file is
//! found (by the scrub on a follower, by a consumer's read on the leader), that copy stands for
//! no election and, if it led, hands its leadership over; it fetches the entry from a healthy
//! peer and rewrites it in place, ending byte for byte as it was, and no acknowledged record is
//! lost.
//!
//! And a copy whose disk fails (an `fdatasync` error) stops itself and says so on health,
//! while the other two keep the partition's majority.
//!
//! Segment files are preallocated: the helpers read and write single ranges
//! (`read_exact_at`, `write_all_at`), never the whole file.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failure is a failed test"
)]

mod common;

use common::three_nodes::{Node, cluster_configured};

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use bytes::Bytes;
use cairn_broker::{AckLevel, BrokerError, FetchRequest, ProducePayload, ProduceRequest};
use cairn_codec::batch::{BatchBuilder, Compression, ProducerFields, RecordInput, field};
use cairn_raft::RpcKind;
use cairn_raft::testing::mem_transport::MemNetwork;

impl Node {
    /// The first segment of `orders-0` on this node.
    fn segment(&self) -> PathBuf {
        let replicas = self.dir.path().join("replicas");
        let partition = std::fs::read_dir(&replicas)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.starts_with("orders-0.g") && !n.ends_with(".deleting")
                })
            })
            .expect("a replica directory for orders-0");
        partition.join(format!("{:020}.log", 0))
    }
}

async fn cluster(net: &Arc<MemNetwork>) -> Vec<Node> {
    cluster_with_elections(net, "300..600").await
}

/// Three nodes on `net` whose election timeouts range over `elections` (milliseconds).
async fn cluster_with_elections(net: &Arc<MemNetwork>, elections: &str) -> Vec<Node> {
    cluster_configured(net, elections, |_| {}).await
}

/// Creates `orders` (one partition, three copies), retrying while the cluster forms, and
/// waits until every node has it.
async fn create_orders(nodes: &[Node]) {
    for _ in 0..100 {
        match nodes[0].broker.create_topic("orders", 1, 3, &[]).await {
            Ok(_) => break,
            Err(BrokerError::ControllerUnavailable(_)) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(other) => panic!("create: {other}"),
        }
    }
    for node in nodes {
        eventually(&format!("node {} has the topic", node.id), || {
            node.broker
                .list_topics(false)
                .contains(&"orders".to_string())
        })
        .await;
    }
}

/// Waits (up to 20 s) until `check` holds.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..800 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never: {what}");
}

fn batch(values: &[String]) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.set_producer(ProducerFields::NONE);
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

/// Produces `values` as one batch at `acks=all` on whichever live node leads: that node and
/// the batch's base offset.
async fn produce(nodes: &[Node], skip: Option<u64>, values: &[String]) -> (u64, i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        for node in nodes.iter().filter(|n| Some(n.id) != skip) {
            let req = ProduceRequest {
                topic: "orders".into(),
                partition: Some(0),
                acks: AckLevel::All,
                payload: ProducePayload::Batch(batch(values)),
                producer: None,
            };
            // Bounded, so a test of a copy that misbehaves fails instead of hanging.
            let Ok(result) =
                tokio::time::timeout(Duration::from_secs(10), node.broker.produce(req)).await
            else {
                panic!("node {}: a produce took over 10 s", node.id);
            };
            let mut result = result.unwrap();
            let produced = result.partitions.remove(0);
            match (produced.error, produced.base_offset) {
                (None, Some(offset)) => return (node.id, i64::try_from(offset.0).unwrap()),
                (Some(BrokerError::NotLeader { .. }), _)
                | (Some(BrokerError::PartitionStopped { .. }), _) => {}
                (other, _) => panic!("node {}: {other:?}", node.id),
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no node took the produce");
}

/// Produces ten batches of three records: the node that led and every value acknowledged.
async fn produce_some(nodes: &[Node], skip: Option<u64>, tag: &str) -> (u64, Vec<String>) {
    let mut acknowledged = Vec::new();
    let mut leader = 0;
    for b in 0..10 {
        let values: Vec<String> = (0..3).map(|r| format!("{tag}-{b}-{r}")).collect();
        let (node, _) = produce(nodes, skip, &values).await;
        leader = node;
        acknowledged.extend(values);
    }
    (leader, acknowledged)
}

/// One fetch of `orders-0` at `offset` on `node`.
async fn fetch(node: &Node, offset: i64) -> Result<Bytes, BrokerError> {
    let fetched = tokio::time::timeout(
        Duration::from_secs(10),
        node.broker.fetch(&FetchRequest {
            topic: "orders".into(),
            partition: 0,
            offset,
            max_bytes: 1 << 20,
            max_wait: Duration::ZERO,
            min_bytes: 0,
            group: None,
        }),
    )
    .await
    .expect("a fetch took over 10 s")?;
    Ok(Bytes::copy_from_slice(fetched.data()))
}

/// Every record value of `orders-0` on `node` (which must lead), from offset 0 to the end.
async fn read_all(node: &Node) -> Result<Vec<String>, BrokerError> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let mut rest = fetch(node, offset).await?;
        if rest.is_empty() {
            return Ok(out);
        }
        while !rest.is_empty() {
            let len = cairn_codec::batch::frame_len(&rest).unwrap();
            let b = cairn_codec::batch::Batch::validate(rest.split_to(len)).unwrap();
            if b.is_meta() {
                continue;
            }
            offset = b.base_offset().as_i64() + i64::try_from(b.offset_count()).unwrap();
            for r in b.records(1 << 20).unwrap().iter() {
                out.push(String::from_utf8_lossy(r.unwrap().value.unwrap()).to_string());
            }
        }
    }
}

/// Where the data batch with base offset `base` lies in `segment`: its position and length,
/// found by following batch lengths from the start (12-byte frame prefix read at a time).
fn find_batch(segment: &Path, base: i64) -> Option<(u64, usize)> {
    let file = File::open(segment).unwrap();
    let size = file.metadata().unwrap().len();
    let mut position = 0u64;
    let mut prefix = [0u8; field::RECORDS];
    while position + field::RECORDS as u64 <= size {
        file.read_exact_at(&mut prefix, position).ok()?;
        let batch_base = i64::from_be_bytes(prefix[0..8].try_into().unwrap());
        let length = i32::from_be_bytes(prefix[8..12].try_into().unwrap());
        if length <= 0 {
            return None;
        }
        let frame = 12 + usize::try_from(length).unwrap();
        let records = i32::from_be_bytes(
            prefix[field::RECORD_COUNT..field::RECORDS]
                .try_into()
                .unwrap(),
        );
        if batch_base == base && records > 0 {
            return Some((position, frame));
        }
        position += frame as u64;
    }
    None
}

fn read_range(segment: &Path, position: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    File::open(segment)
        .unwrap()
        .read_exact_at(&mut out, position)
        .unwrap();
    out
}

/// Flips a byte in the middle of the records of the batch at `position` (inside its CRC).
fn flip_inside(segment: &Path, position: u64, len: usize) {
    let at = position + (field::RECORDS + (len - field::RECORDS) / 2) as u64;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(segment)
        .unwrap();
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, at).unwrap();
    byte[0] ^= 0x20;
    file.write_all_at(&byte, at).unwrap();
}

/// This node's copy has applied everything the leader has (its visible bytes match).
fn caught_up(node: &Node, leader: &Node) -> bool {
    let mine = node.broker.partition_size_bytes("orders", 0);
    let theirs = leader.broker.partition_size_bytes("orders", 0);
    matches!((mine, theirs), (Ok(a), Ok(b)) if a == b && a > 0)
}

fn heals(node: &Node) -> u64 {
    node.broker.replication_status().unwrap().heals_total
}

fn damaged(node: &Node) -> bool {
    node.broker.problems().iter().any(|p| {
        p.topic == "orders" && matches!(p.condition, cairn_broker::PartitionCondition::Damaged(_))
    })
}

async fn scrub(node: &Node) {
    let broker = Arc::clone(&node.broker);
    tokio::task::spawn_blocking(move || broker.scrub_blocking(0, &AtomicBool::new(false)))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_follower_does_not_lead_and_heals_from_a_peer() {
    let net = MemNetwork::new();
    let nodes = cluster(&net).await;
    create_orders(&nodes).await;
    let (leader_id, acknowledged) = produce_some(&nodes, None, "a").await;
    let leader = nodes.iter().find(|n| n.id == leader_id).unwrap();
    let follower = nodes.iter().find(|n| n.id != leader_id).unwrap();
    eventually("the follower applied every entry", || {
        caught_up(follower, leader)
    })
    .await;
    let segment = follower.segment();
    let (position, len) = find_batch(&segment, 6).expect("the batch at offset 6");
    let good = read_range(&segment, position, len);

    // No fetch gets through until the survivors have elected: the damaged copy cannot heal
    // before the election, so it must sit it out.
    net.set_dropped(RpcKind::FetchEntries, true);
    flip_inside(&segment, position, len);
    scrub(follower).await;
    eventually("the scrub reported the damage", || damaged(follower)).await;
    // The leader goes silent: the two survivors elect one of them, never the damaged copy.
    net.set_down(leader_id, true);
    let survivor = nodes
        .iter()
        .find(|n| n.id != leader_id && n.id != follower.id)
        .unwrap();
    let (new_leader, _) = produce(&nodes, Some(leader_id), &["b".to_string()]).await;
    assert_eq!(new_leader, survivor.id, "the damaged copy led");
    // Several election timeouts later the damaged copy still has not stood, nor healed.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(heals(follower), 0);
    assert!(damaged(follower), "{:?}", follower.broker.problems());
    let (still, _) = produce(&nodes, Some(leader_id), &["b2".to_string()]).await;
    assert_eq!(still, survivor.id, "the damaged copy led");
    net.set_dropped(RpcKind::FetchEntries, false);
    eventually("the follower healed", || heals(follower) == 1).await;
    assert_eq!(
        read_range(&segment, position, len),
        good,
        "healed bytes differ"
    );
    eventually("the follower reports no damage", || !damaged(follower)).await;

    // Healed, it may lead again: with the survivor gone, the old leader (back, and caught up
    // first) and it elect one of them.
    net.set_down(leader_id, false);
    eventually("the old leader caught up", || caught_up(leader, survivor)).await;
    net.set_down(survivor.id, true);
    let (after, _) = produce(&nodes, Some(survivor.id), &["c".to_string()]).await;
    let after = nodes.iter().find(|n| n.id == after).unwrap();
    let mut expected = acknowledged;
    expected.extend(["b".to_string(), "b2".to_string(), "c".to_string()]);
    assert_eq!(read_all(after).await.unwrap(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_leader_steps_down_loses_nothing_and_heals() {
    let net = MemNetwork::new();
    let nodes = cluster(&net).await;
    create_orders(&nodes).await;
    let (leader_id, acknowledged) = produce_some(&nodes, None, "a").await;
    let leader = nodes.iter().find(|n| n.id == leader_id).unwrap();
    for node in nodes.iter().filter(|n| n.id != leader_id) {
        eventually("the followers applied every entry", || {
            caught_up(node, leader)
        })
        .await;
    }
    let segment = leader.segment();
    let (position, len) = find_batch(&segment, 9).expect("the batch at offset 9");
    let good = read_range(&segment, position, len);

    flip_inside(&segment, position, len);
    // A consumer's read meets the damage: refused, never served.
    match fetch(leader, 9).await {
        Err(BrokerError::Log(e)) => {
            assert_eq!(e.kind(), cairn_broker::StorageErrorKind::CorruptBatch)
        }
        Err(BrokerError::NotLeader { .. }) => {}
        other => panic!("a damaged batch was answered {other:?}"),
    }
    // The damaged leader hands over; another copy takes appends.
    let (new_leader, _) = produce(&nodes, Some(leader_id), &["b".to_string()]).await;
    assert_ne!(new_leader, leader_id);
    eventually("the old leader healed", || heals(leader) == 1).await;
    assert_eq!(
        read_range(&segment, position, len),
        good,
        "healed bytes differ"
    );
    eventually("the old leader reports no damage", || !damaged(leader)).await;

    let new_leader = nodes.iter().find(|n| n.id == new_leader).unwrap();
    let mut expected = acknowledged;
    expected.push("b".to_string());
    assert_eq!(read_all(new_leader).await.unwrap(), expected);
    // Healed, the old leader can lead and serve every record again.
    net.set_down(new_leader.id, true);
    let (last, _) = produce(&nodes, Some(new_leader.id), &["c".to_string()]).await;
    let last = nodes.iter().find(|n| n.id == last).unwrap();
    expected.push("c".to_string());
    assert_eq!(read_all(last).await.unwrap(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_whose_fsync_fails_stops_and_says_so_while_the_majority_serves() {
    let net = MemNetwork::new();
    let nodes = cluster(&net).await;
    create_orders(&nodes).await;
    let (leader_id, mut acknowledged) = produce_some(&nodes, None, "a").await;
    let follower = nodes.iter().find(|n| n.id != leader_id).unwrap();
    let partition_dir = follower.segment().parent().unwrap().to_path_buf();
    cairn_log::fault::arm(
        &partition_dir,
        cairn_log::fault::FaultPoint::Sync,
        libc_eio(),
        u32::MAX,
    );
    let (_, more) = produce_some(&nodes, None, "b").await;
    acknowledged.extend(more);
    eventually("the follower reports its copy stopped", || {
        follower.broker.problems().iter().any(|p| {
            p.topic == "orders"
                && matches!(
                    p.condition,
                    cairn_broker::PartitionCondition::Stopped { .. }
                )
        })
    })
    .await;
    // The other two still take and commit writes, and lose nothing acknowledged.
    let (leader_now, _) = produce(&nodes, Some(follower.id), &["c".to_string()]).await;
    acknowledged.push("c".to_string());
    let leader_now = nodes.iter().find(|n| n.id == leader_now).unwrap();
    assert_eq!(read_all(leader_now).await.unwrap(), acknowledged);
    cairn_log::fault::disarm(&partition_dir);
}

/// EIO, the error a failing disk gives `fdatasync`.
fn libc_eio() -> i32 {
    5
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_handing_over_passes_a_damaged_follower_by() {
    let net = MemNetwork::new();
    // A handover is bounded by two election timeouts; at 600 ms that bound (1.2 s) ran out
    // once under CI's load, before the refusal and the second candidate's vote were through.
    // The default range gives it 4 s, as a node has in production.
    let nodes = cluster_with_elections(&net, "1000..2000").await;
    create_orders(&nodes).await;
    let (leader_id, acknowledged) = produce_some(&nodes, None, "a").await;
    let leader = nodes.iter().find(|n| n.id == leader_id).unwrap();
    // The handover asks the caught-up followers in turn, starting at the group's id
    // (`cairn_raft::handover::pick_successor`): for this group, the one with the higher id.
    // That one is damaged, so it must refuse, and the other must take over.
    let followers: Vec<&Node> = nodes.iter().filter(|n| n.id != leader_id).collect();
    for follower in &followers {
        eventually("the followers applied every entry", || {
            caught_up(follower, leader)
        })
        .await;
    }
    net.set_dropped(RpcKind::FetchEntries, true);
    let damaged_copy = followers[1];
    let healthy = followers[0];
    let segment = damaged_copy.segment();
    let (position, len) = find_batch(&segment, 3).expect("the batch at offset 3");
    flip_inside(&segment, position, len);
    scrub(damaged_copy).await;
    eventually("the scrub reported the damage", || damaged(damaged_copy)).await;

    let report = leader.broker.hand_over_leaderships().await;
    assert_eq!(report.partitions_moved, report.partitions_led, "{report:?}");
    let (now, _) = produce(&nodes, Some(leader_id), &["b".to_string()]).await;
    assert_eq!(now, healthy.id, "leadership went to the damaged copy");

    net.set_dropped(RpcKind::FetchEntries, false);
    eventually("the damaged copy healed", || heals(damaged_copy) == 1).await;
    let healthy_node = nodes.iter().find(|n| n.id == healthy.id).unwrap();
    let mut expected = acknowledged;
    expected.push("b".to_string());
    assert_eq!(read_all(healthy_node).await.unwrap(), expected);
}

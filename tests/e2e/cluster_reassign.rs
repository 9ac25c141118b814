//! End-to-end checks of membership changes through the real `cairn` binary, as an operator
//! runs them on a live cluster under load: a fourth node started with `--join` is added with
//! `cairn cluster add-node`, a partition is moved onto it with `cairn topic reassign`, and
//! node 1 is removed with `cairn cluster remove-node --wait`, which moves every replica it held
//! first. An idempotent acks=all producer writes throughout; every acknowledged record must be
//! read back once, from the nodes that remain. The refusals of item 5's bad input are checked
//! through the CLI: a used id, an unknown node, a plan that loses replicas, a removal that
//! would leave partitions short.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::cluster::{
    consume_all, replica_bytes, spawn_producer, start_cluster, tally, wait_copies_agree,
};
use common::*;

/// Runs the CLI against `broker`; (success, stdout, stderr).
fn cli(broker: &str, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["--broker", broker];
    all.extend_from_slice(args);
    let out = cairn(&all).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A refused CLI call: it must fail, and its error must contain `expected`.
fn refused(broker: &str, args: &[&str], expected: &str) {
    let (ok, stdout, stderr) = cli(broker, args);
    assert!(!ok, "{args:?} succeeded: {stdout}");
    assert!(
        stderr.contains(expected),
        "{args:?}: {stderr:?} does not say {expected:?}"
    );
}

/// `cairn topic reassign moves --partition P --replicas LIST`'s arguments.
fn reassign_moves(partition: &'static str, replicas: &'static str) -> [&'static str; 7] {
    [
        "topic",
        "reassign",
        "moves",
        "--partition",
        partition,
        "--replicas",
        replicas,
    ]
}

/// `GET /health` of the node whose HTTP address is `http`, whatever its status; empty while it
/// does not answer.
fn health_page(http: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(http) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.write_all(b"GET /health HTTP/1.1\r\nHost: cairn\r\nConnection: close\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

/// Partition `partition`'s replicas in the order `cairn topic describe` reports them.
async fn replicas_in_order(broker: &str, topic: &str, partition: i32) -> Vec<i32> {
    let admin = cairn_client::Admin::connect(broker).await.unwrap();
    let description = admin.describe_topic(topic).await.unwrap();
    description
        .partitions
        .iter()
        .find(|p| p.partition == partition)
        .map(|p| p.replicas.clone())
        .unwrap_or_default()
}

/// Partition `partition`'s replicas as `cairn topic describe` reports them, sorted.
async fn replicas_of(broker: &str, topic: &str, partition: i32) -> Vec<i32> {
    let mut replicas = replicas_in_order(broker, topic, partition).await;
    replicas.sort_unstable();
    replicas
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_added_takes_a_partition_and_a_node_removed_hands_its_replicas_over_under_load() {
    let dir = TestDir::new();
    let mut cluster = start_cluster(dir.path(), 3);
    cluster
        .create_topic(&cluster.addresses[0], "moves", 3, 3)
        .await;
    let broker = cluster.addresses[1].clone();

    // Three nodes and replication factor 3: no node can take node 2's copies.
    refused(
        &broker,
        &["cluster", "remove-node", "--node-id", "2"],
        "no other alive node can take its copy",
    );
    refused(
        &broker,
        &[
            "cluster",
            "add-node",
            "--node-id",
            "2",
            "--address",
            "127.0.0.1:1",
        ],
        "already in use",
    );
    refused(
        &broker,
        &[
            "cluster",
            "add-node",
            "--node-id",
            "0",
            "--address",
            "127.0.0.1:1",
        ],
        "node id 0",
    );
    refused(
        &broker,
        &["cluster", "remove-node", "--node-id", "9"],
        "not a registered node",
    );

    let stop = Arc::new(AtomicBool::new(false));
    let producer = spawn_producer(cluster.bootstrap_from(1), "moves", Arc::clone(&stop)).await;

    let four = cluster.start_joining_node(dir.path());
    let four_address = cluster.addresses[3].clone();
    let (ok, stdout, stderr) = cli(
        &broker,
        &[
            "cluster",
            "add-node",
            "--node-id",
            "4",
            "--address",
            &four_address,
        ],
    );
    assert!(ok, "add-node: {stderr}");
    assert!(stdout.contains("node 4 added"), "{stdout}");
    assert_eq!(four, 4);
    // It becomes a voter of the controller group once it has caught up on the metadata.
    let deadline = Instant::now() + PATIENCE;
    while !cluster.metrics(4).is_some_and(|body| {
        metric_sample(&body, "cairn_cluster_controller_role{role=\"follower\"}") == Some(1.0)
    }) {
        assert!(
            Instant::now() < deadline,
            "node 4 never joined the controller group"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A move onto a node that is down waits for it, showing what it adds and removes.
    cluster.kill(4);

    refused(
        &broker,
        &reassign_moves("0", "4,1"),
        "replication factor is 3",
    );
    refused(
        &broker,
        &reassign_moves("0", "4,1,9"),
        "not a registered node",
    );
    refused(
        &broker,
        &reassign_moves("7", "4,1,2"),
        "partition 7 does not exist",
    );
    let (ok, stdout, stderr) = cli(&broker, &reassign_moves("0", "4,1,2"));
    assert!(ok, "reassign: {stderr}");
    assert!(stdout.contains("1 partitions moving"), "{stdout}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ok, stdout, _) = cli(&broker, &["topic", "describe", "moves", "--format", "json"]);
    assert!(ok);
    let described: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let moving = &described["partitions"][0];
    assert_eq!(
        moving["adding_replicas"],
        serde_json::json!([4]),
        "{moving}"
    );
    assert_eq!(
        moving["removing_replicas"],
        serde_json::json!([3]),
        "{moving}"
    );
    assert_eq!(replicas_of(&broker, "moves", 0).await, vec![1, 2, 3]);
    cluster.restart(4);
    let deadline = Instant::now() + PATIENCE;
    while replicas_of(&broker, "moves", 0).await != vec![1, 2, 4] {
        assert!(
            Instant::now() < deadline,
            "partition 0 never moved to 4,1,2; logs in {:?}",
            cluster.logs
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        replicas_in_order(&broker, "moves", 0).await,
        vec![4, 1, 2],
        "describe lists the replicas as assigned, the preferred leader first"
    );

    // Node 1 goes: each of its copies moves to the node of 2, 3, 4 that lacks one.
    let (ok, stdout, stderr) = cli(
        &broker,
        &["cluster", "remove-node", "--node-id", "1", "--wait"],
    );
    assert!(ok, "remove-node: {stderr}\n{stdout}");
    assert!(stdout.contains("node 1 has left the cluster"), "{stdout}");
    for partition in 0..3 {
        assert_eq!(
            replicas_of(&broker, "moves", partition).await,
            vec![2, 3, 4],
            "partition {partition}"
        );
    }
    let (ok, stdout, _) = cli(&broker, &["cluster", "describe", "--format", "json"]);
    assert!(ok);
    let described: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let ids: Vec<i64> = described["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![2, 3, 4]);
    // `--wait` returned once nothing named node 1 any more: not as the controller, not as a
    // partition's leader.
    let controller = described["controller_id"].as_i64();
    assert!(
        controller.is_some_and(|id| id != 1),
        "controller {controller:?} right after remove-node --wait"
    );
    let (ok, stdout, _) = cli(&broker, &["topic", "describe", "moves", "--format", "json"]);
    assert!(ok);
    let topic: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for partition in topic["partitions"].as_array().unwrap() {
        assert_ne!(partition["leader"], 1, "{partition}");
    }
    // The removed node still runs, on its last view of the cluster: its health says it should
    // be stopped (NOT_SERVING), and why.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (ok, stdout, _) = cli(&cluster.addresses[0], &["health"]);
        let page = health_page(&cluster.http_addresses[0]);
        if !ok && stdout.contains("NOT_SERVING") && page.contains("taken out of the cluster") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 1 still serving after it left: {stdout} / {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Once gone, the node can be stopped: the cluster does not miss it.
    cluster.kill(1);

    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, failed, sent) = producer.await.unwrap();
    assert!(!acknowledged.is_empty(), "nothing was acknowledged");
    let remaining = [
        cluster.addresses[1].clone(),
        cluster.addresses[2].clone(),
        cluster.addresses[3].clone(),
    ]
    .join(",");
    let records = consume_all(&remaining, "moves").await;
    let (lost, duplicates) = tally(&acknowledged, &records);
    eprintln!(
        "sent {sent}, acknowledged {}, failed {failed}, read {}, lost {lost}, duplicates {duplicates}",
        acknowledged.len(),
        records.len()
    );
    assert_eq!(lost, 0, "acknowledged records lost");
    assert_eq!(duplicates, 0, "records read twice");
    // The copies that joined are byte for byte the others', and node 1 kept none.
    wait_copies_agree(dir.path(), "moves", 3, &[2, 3, 4]).await;
    for partition in 0..3 {
        assert!(
            replica_bytes(dir.path(), "moves", 1, partition).is_empty(),
            "node 1 still holds a copy of partition {partition}"
        );
    }
}

/// A machine that died for good, and it ran the controller: its node is removed while it is
/// down, and the survivors rebuild its copies on the remaining node from the live replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_removed_and_its_copies_are_rebuilt_from_the_survivors() {
    let dir = TestDir::new();
    let mut cluster = start_cluster(dir.path(), 4);
    cluster
        .create_topic(&cluster.addresses[0], "orphans", 4, 3)
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let producer = spawn_producer(cluster.bootstrap_from(0), "orphans", Arc::clone(&stop)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The node to lose is the controller leader: its removal is decided by its successor.
    let deadline = Instant::now() + PATIENCE;
    let gone = loop {
        let (ok, stdout, _) = cli(
            &cluster.addresses[0],
            &["cluster", "describe", "--format", "json"],
        );
        let described: Option<serde_json::Value> =
            ok.then(|| serde_json::from_str(&stdout).ok()).flatten();
        if let Some(id) = described.and_then(|d| d["controller_id"].as_i64()) {
            break id;
        }
        assert!(Instant::now() < deadline, "no controller leader known");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let gone_index = usize::try_from(gone - 1).unwrap();
    let survivors: Vec<usize> = (1..=4).filter(|n| *n != gone_index + 1).collect();
    cluster.kill(i32::try_from(gone).unwrap());
    let broker = cluster.addresses[survivors[0] - 1].clone();
    let (ok, stdout, stderr) = cli(
        &broker,
        &[
            "cluster",
            "remove-node",
            "--node-id",
            &gone.to_string(),
            "--wait",
        ],
    );
    assert!(ok, "remove-node: {stderr}\n{stdout}");
    for partition in 0..4 {
        let replicas = replicas_of(&broker, "orphans", partition).await;
        assert!(
            !replicas.contains(&i32::try_from(gone).unwrap()),
            "partition {partition}: {replicas:?}"
        );
        assert_eq!(replicas.len(), 3, "partition {partition}: {replicas:?}");
    }

    stop.store(true, Ordering::Relaxed);
    let (acknowledged, failed, sent) = producer.await.unwrap();
    let remaining = survivors
        .iter()
        .map(|n| cluster.addresses[n - 1].clone())
        .collect::<Vec<_>>()
        .join(",");
    let records = consume_all(&remaining, "orphans").await;
    let (lost, duplicates) = tally(&acknowledged, &records);
    eprintln!(
        "removed node {gone} (the controller leader) while down; sent {sent}, acknowledged {}, failed {failed}, lost {lost}, duplicates {duplicates}",
        acknowledged.len()
    );
    assert!(!acknowledged.is_empty(), "nothing was acknowledged");
    assert_eq!(lost, 0, "acknowledged records lost");
    assert_eq!(duplicates, 0, "records read twice");
    wait_copies_agree(dir.path(), "orphans", 4, &survivors).await;
}

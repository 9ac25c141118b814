//! Preferred-leader balancing through the real binary (issue 14, item 5). A node stopped with
//! SIGTERM hands its leaderships over and, restarted, leads nothing; with automatic balancing
//! (`--leader-balance-interval-ms 500`) the leaders per node shown by `cairn cluster describe
//! --format json` even out again, every node's `/metrics` shows no partition off its preferred
//! replica and the survivors count their moves, and no write acknowledged meanwhile is lost.
//! With automatic balancing off, `cairn cluster balance-leaders` moves the leaderships back on
//! demand and reports them; it refuses an unknown topic and a negative bound by name. A new
//! topic needs no move: its preferred replicas lead it from its first election.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::cluster::{Cluster, consume_all, spawn_producer, start_cluster_with, tally};
use common::*;

const TOPIC: &str = "orders";
/// `orders` (3 partitions, as the shared producer writes) and `__consumer_offsets` (8).
const GROUPS: usize = 3 + 8;
/// The node stopped and restarted.
const RETURNING: i32 = 1;

/// Leaders per node as `cairn cluster describe --format json` through `address` shows them
/// (the leaders last reported to the controller), by node id; `None` while it does not answer.
fn leaders_per_node(address: &str) -> Option<Vec<(i64, i64)>> {
    let out = cli(address, &["cluster", "describe", "--format", "json"]);
    if !out.status.success() {
        return None;
    }
    let described: Value = serde_json::from_slice(&out.stdout).unwrap();
    Some(
        described["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["node_id"].as_i64().unwrap(),
                    n["leaders"].as_i64().unwrap(),
                )
            })
            .collect(),
    )
}

/// Whether `leaders` (from [`leaders_per_node`]) count every group once and differ by at most
/// one between nodes.
fn even(leaders: &[(i64, i64)]) -> bool {
    let counts: Vec<i64> = leaders.iter().map(|(_, n)| *n).collect();
    let (min, max) = (counts.iter().min(), counts.iter().max());
    counts.iter().sum::<i64>() == i64::try_from(GROUPS).unwrap()
        && matches!((min, max), (Some(min), Some(max)) if max - min <= 1)
}

/// The sum of the `/metrics` sample `series` over the nodes that stay up (a node not answering
/// counts 0). The restarted node is left out: its counters start again from zero, so with it
/// the sum could stand still while the survivors' moves rose by what it forgot.
fn survivors_metric_sum(cluster: &Cluster, series: &str) -> f64 {
    (1..=3)
        .filter(|node| *node != RETURNING)
        .filter_map(|node| cluster.metrics(node))
        .filter_map(|body| metric_sample(&body, series))
        .sum()
}

/// Whether every node answers `/metrics` and leads no partition off its preferred replica.
fn every_leader_preferred(cluster: &Cluster) -> bool {
    (1..=3).all(|node| {
        cluster.metrics(node).is_some_and(|body| {
            metric_sample(&body, "cairn_cluster_preferred_leader_imbalance") == Some(0.0)
        })
    })
}

/// Polls `done` every 200 ms until it holds, failing with `what` after `PATIENCE`.
async fn eventually(cluster: &Cluster, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: not reached; leaders {:?}; logs in {:?}",
            leaders_per_node(&cluster.addresses[1]),
            cluster.logs
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stops node [`RETURNING`] with SIGTERM, waits until the others lead everything, and starts
/// it again over its data.
async fn stop_and_restart(cluster: &mut Cluster) {
    assert!(cluster.stop(RETURNING).await.success());
    let survivor = cluster.addresses[1].clone();
    eventually(cluster, "the survivors lead every group", || {
        leaders_per_node(&survivor).is_some_and(|leaders| {
            leaders
                .iter()
                .all(|(node, n)| *node != i64::from(RETURNING) || *n == 0)
                && leaders.iter().map(|(_, n)| n).sum::<i64>() == GROUPS as i64
        })
    })
    .await;
    cluster.restart(RETURNING);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_even_out_after_a_node_restarts_and_no_acknowledged_write_is_lost() {
    let dir = TestDir::new();
    let mut cluster = start_cluster_with(dir.path(), 3, &["--leader-balance-interval-ms", "500"]);
    let first = cluster.addresses[0].clone();
    cluster.create_topic(&first, TOPIC, 3, 3).await;
    cluster.wait_healthy(GROUPS).await;
    eventually(&cluster, "leaders even at start", || {
        leaders_per_node(&first).is_some_and(|l| even(&l)) && every_leader_preferred(&cluster)
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let producer = spawn_producer(cluster.bootstrap_from(1), TOPIC, Arc::clone(&stop)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let moves_before = survivors_metric_sum(&cluster, "cairn_cluster_leader_balance_moves_total");
    stop_and_restart(&mut cluster).await;
    cluster.wait_healthy(GROUPS).await;
    let survivor = cluster.addresses[1].clone();
    eventually(&cluster, "leaders even after the restart", || {
        leaders_per_node(&survivor).is_some_and(|l| even(&l)) && every_leader_preferred(&cluster)
    })
    .await;
    let moves_after = survivors_metric_sum(&cluster, "cairn_cluster_leader_balance_moves_total");
    assert!(
        moves_after > moves_before,
        "leaderships were moved back ({moves_before} -> {moves_after})"
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, _, _) = producer.await.unwrap();
    assert!(!acknowledged.is_empty());
    let records = consume_all(&cluster.bootstrap_from(0), TOPIC).await;
    let (lost, _) = tally(&acknowledged, &records);
    assert_eq!(lost, 0, "acknowledged writes lost");

    // Balanced already: a pass asked for moves nothing, and every node answers it.
    let out = cli_ok(&first, &["cluster", "balance-leaders", "--format", "json"]);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["moved_count"], 0, "{out}");
    let answered = report["nodes"].as_array().unwrap();
    assert_eq!(answered.len(), 3, "{out}");
    assert!(answered.iter().all(|n| n["answered"] == true), "{out}");
}

/// A new topic is led by its preferred replicas as soon as it has leaders: each partition's
/// first replica calls the first election, so no partition waits out an election timeout and
/// none needs a balancing move later. Automatic balancing is off and the election timeout long,
/// so a replica that stood on its own timer would win, stay leader, and show here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_topic_is_led_by_its_preferred_replicas_from_the_start() {
    let dir = TestDir::new();
    let cluster = start_cluster_with(
        dir.path(),
        3,
        &[
            "--leader-balance-interval-ms",
            "0",
            "--raft-election-timeout-ms",
            "3000..6000",
        ],
    );
    let first = cluster.addresses[0].clone();
    cluster.create_topic(&first, "fresh", 6, 3).await;
    // `__consumer_offsets` (8) and `fresh` (6).
    cluster.wait_healthy(8 + 6).await;
    let imbalance: Vec<Option<f64>> = (1..=3)
        .map(|node| {
            cluster
                .metrics(node)
                .and_then(|body| metric_sample(&body, "cairn_cluster_preferred_leader_imbalance"))
        })
        .collect();
    assert_eq!(
        imbalance,
        vec![Some(0.0); 3],
        "partitions led off their preferred replicas, per node; leaders {:?}; logs in {:?}",
        leaders_per_node(&first),
        cluster.logs
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balance_leaders_moves_leaderships_back_on_demand() {
    let dir = TestDir::new();
    let mut cluster = start_cluster_with(dir.path(), 3, &["--leader-balance-interval-ms", "0"]);
    let first = cluster.addresses[0].clone();
    cluster.create_topic(&first, TOPIC, 3, 3).await;
    cluster.wait_healthy(GROUPS).await;
    stop_and_restart(&mut cluster).await;
    cluster.wait_healthy(GROUPS).await;
    let returning = cluster.addresses[0].clone();
    let led_by_returning = |address: &str| {
        leaders_per_node(address).and_then(|leaders| {
            leaders
                .iter()
                .find(|(node, _)| *node == i64::from(RETURNING))
                .map(|(_, n)| *n)
        })
    };
    assert_eq!(
        led_by_returning(&returning),
        Some(0),
        "automatic balancing is off: the returned node leads nothing"
    );

    let bad = cli(&first, &["cluster", "balance-leaders", "--topic", "nope"]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("nope"), "{stderr}");
    let negative = cli(&first, &["cluster", "balance-leaders", "--max-moves", "-1"]);
    assert_eq!(negative.status.code(), Some(2), "a usage error");

    let out = cli_ok(&first, &["cluster", "balance-leaders", "--format", "json"]);
    let report: Value = serde_json::from_str(&out).unwrap();
    let moved = report["moved_count"].as_u64().unwrap();
    assert!(moved >= 1, "{out}");
    assert!(
        report["moved"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["to"].as_i64().is_some()),
        "{out}"
    );
    // Whatever stayed says why.
    for stayed in report["not_moved"].as_array().unwrap() {
        assert!(!stayed["detail"].as_str().unwrap().is_empty(), "{out}");
    }
    eventually(&cluster, "leaders even after the asked-for pass", || {
        leaders_per_node(&returning).is_some_and(|l| even(&l))
    })
    .await;
    assert!(led_by_returning(&returning).is_some_and(|n| n > 0));
    let text = cli_ok(&first, &["cluster", "balance-leaders"]);
    assert!(text.starts_with("moved 0 leaderships"), "{text}");
}

//! Faults under load on three real `cairn serve` processes (issue 13's "Done means"): a producer
//! writes continuously with acks=all while the leader of one partition is killed with SIGKILL
//! and later restarted, and the leader of another is paused with SIGSTOP for longer than the
//! election timeout and then resumed. Afterwards every acknowledged record is readable exactly
//! once, where it was acknowledged, and every replica holds the same bytes. A second test runs a
//! seeded, repeatable loop of such rounds and prints its tally; `CAIRN_FAULT_SEED` and
//! `CAIRN_FAULT_ROUNDS` repeat or lengthen it.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::TestDir;
use common::cluster::{
    Cluster, Rng, consume_all, fault_seed_and_rounds, spawn_producer, start_cluster, tally_in,
    wait_replicas_agree,
};

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 3;

/// Longer than the default election timeout's upper end (2 s) plus openraft's lease.
const PAUSE: Duration = Duration::from_secs(5);

/// The live node leading `partition` now.
async fn leader_of(cluster: &Cluster, partition: usize) -> i32 {
    let alive = (0..3).find(|i| cluster.is_running(i + 1)).unwrap();
    cluster
        .wait_for_leaders(&cluster.addresses[alive], TOPIC)
        .await[partition]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_and_a_paused_leader_lose_nothing_and_replicas_agree() {
    let dir = TestDir::new();
    let mut cluster = start_cluster(dir.path(), 3);
    cluster
        .create_topic(&cluster.addresses[0], TOPIC, PARTITIONS, 3)
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let producing = spawn_producer(cluster.bootstrap_from(0), TOPIC, Arc::clone(&stop)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let killed = leader_of(&cluster, 0).await;
    cluster.kill(killed);
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.restart(killed);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let paused = leader_of(&cluster, 1).await;
    cluster.pause(paused);
    tokio::time::sleep(PAUSE).await;
    cluster.resume(paused);
    tokio::time::sleep(Duration::from_secs(2)).await;

    stop.store(true, Ordering::Relaxed);
    let (acknowledged, failed, sent) = producing.await.unwrap();
    let records = consume_all(&cluster.bootstrap_from(0), TOPIC).await;
    let (lost, duplicates) = tally_in(dir.path(), TOPIC, 3, &acknowledged, &records);
    println!(
        "sent {sent}, acknowledged {}, failed {failed}; acknowledged writes lost: {lost} of {}; duplicates: {duplicates}",
        acknowledged.len(),
        acknowledged.len()
    );
    assert!(
        acknowledged.len() > sent / 2,
        "too few acknowledged: {} of {sent}",
        acknowledged.len()
    );
    assert_eq!((lost, duplicates), (0, 0));
    wait_replicas_agree(dir.path(), TOPIC, PARTITIONS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_loop_of_kills_and_pauses_loses_and_duplicates_nothing() {
    let (seed, rounds) = fault_seed_and_rounds(0x5eed_ca12, 4);
    let mut rng = Rng(seed.max(1));
    let dir = TestDir::new();
    let mut cluster = start_cluster(dir.path(), 3);
    cluster
        .create_topic(&cluster.addresses[0], TOPIC, PARTITIONS, 3)
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let producing = spawn_producer(cluster.bootstrap_from(0), TOPIC, Arc::clone(&stop)).await;
    let started = Instant::now();
    for round in 0..rounds {
        // One node at a time, so a majority always remains: a leader half of the time.
        let target = if rng.next().is_multiple_of(2) {
            leader_of(&cluster, usize::try_from(rng.next() % 3).unwrap()).await
        } else {
            i32::try_from(rng.next() % 3).unwrap() + 1
        };
        let hold = Duration::from_millis(500 + rng.next() % 4000);
        if rng.next().is_multiple_of(2) {
            println!("round {round}: SIGKILL node {target}, restart after {hold:?}");
            cluster.kill(target);
            tokio::time::sleep(hold).await;
            cluster.restart(target);
        } else {
            println!("round {round}: SIGSTOP node {target} for {hold:?}");
            cluster.pause(target);
            tokio::time::sleep(hold).await;
            cluster.resume(target);
        }
        tokio::time::sleep(Duration::from_millis(1000 + rng.next() % 2000)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, failed, sent) = producing.await.unwrap();
    let records = consume_all(&cluster.bootstrap_from(0), TOPIC).await;
    let (lost, duplicates) = tally_in(dir.path(), TOPIC, 3, &acknowledged, &records);
    println!(
        "seed {seed}, {rounds} rounds in {:.0?}: sent {sent}, failed {failed}; acknowledged writes lost: {lost} of {}; duplicates: {duplicates}",
        started.elapsed(),
        acknowledged.len()
    );
    assert_eq!((lost, duplicates), (0, 0), "seed {seed}");
    wait_replicas_agree(dir.path(), TOPIC, PARTITIONS).await;
}

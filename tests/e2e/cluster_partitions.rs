//! Network partitions (issue 14, item 1) on three real `cairn serve` processes, each in its own
//! network namespace (`common::netns`), while an idempotent producer writes with acks=all from
//! the test's namespace, which reaches every node throughout.
//!
//! - A partition's leader is cut off from both other nodes, symmetrically: a producer that can
//!   reach only the old leader gets no acknowledgement; the majority elects a new leader and
//!   takes writes; after healing, the old leader drops what it never committed.
//! - The same with a one-way cut: the leader's packets to the others are lost, theirs to it
//!   arrive.
//!
//! Afterwards every acknowledged record is read exactly once where it was acknowledged, and the
//! three copies of every partition are byte-identical. Skips loudly without root.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairn_client::{OutgoingRecord, Producer, ProducerConfig};

mod common;

use common::cluster::{
    Cluster, consume_all, spawn_producer, start_cluster_in, tally, wait_replicas_agree,
};
use common::netns::TestNet;
use common::*;

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 3;

/// Longer than the election timeout's upper end (2 s) plus openraft's leader lease.
const CUT_FOR: Duration = Duration::from_secs(6);

/// How a leader is cut off from the other nodes.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// Nothing passes either way.
    Symmetric,
    /// The leader's packets to the others are dropped; theirs reach it.
    LeaderCannotSend,
}

/// The leader of partition 0 as node `observer` (1-based) sees it, once it is not `not`.
async fn leader_seen_by(cluster: &Cluster, observer: usize, not: Option<i32>) -> i32 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let leaders = cluster
            .wait_for_leaders(&cluster.addresses[observer - 1], TOPIC)
            .await;
        if Some(leaders[0]) != not {
            return leaders[0];
        }
        assert!(
            Instant::now() < deadline,
            "node {observer} never saw a leader for partition 0 other than {not:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Cuts partition 0's leader off from the others as `cut` says while a producer writes, checks
/// that the old leader acknowledges nothing and the majority moves on, heals, and checks that
/// nothing acknowledged is lost or duplicated and that the copies agree.
async fn isolate_a_leader(cut: Cut) {
    let Some(net) = TestNet::create(3) else {
        return;
    };
    let dir = TestDir::new();
    let cluster = start_cluster_in(dir.path(), &net, 3);
    cluster
        .create_topic(&cluster.addresses[0], TOPIC, PARTITIONS, 3)
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let producing = spawn_producer(cluster.bootstrap_from(0), TOPIC, Arc::clone(&stop)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let old = leader_seen_by(&cluster, 1, None).await;
    let old_node = usize::try_from(old).unwrap();
    let others: Vec<usize> = (1..=3).filter(|n| *n != old_node).collect();
    // A producer that knows only the old leader: whatever it sends during the cut must not be
    // acknowledged, since no majority can have it.
    let config = ProducerConfig {
        request_timeout: Duration::from_secs(2),
        delivery_timeout: Duration::from_secs(4),
        ..ProducerConfig::default()
    };
    let stranded = Producer::connect(&cluster.addresses[old_node - 1], config)
        .await
        .unwrap();
    println!("cutting node {old} (leader of partition 0) off: {cut:?}");
    for other in &others {
        match cut {
            Cut::Symmetric => net.cut(old_node, *other),
            Cut::LeaderCannotSend => net.cut_one_way(old_node, *other),
        }
    }
    let cut_at = Instant::now();
    let mut stranded_sends = Vec::new();
    for i in 0..20 {
        let record = OutgoingRecord {
            partition: Some(0),
            ..OutgoingRecord::keyed(format!("s{i}"), format!("stranded{i}"))
        };
        stranded_sends.push(stranded.send(TOPIC, record).await);
    }
    let queued_after = cut_at.elapsed();
    let new = leader_seen_by(&cluster, others[0], Some(old)).await;
    println!(
        "node {new} leads partition 0 after {:?} (the stranded sends were queued after {queued_after:?})",
        cut_at.elapsed()
    );
    let remaining = CUT_FOR.saturating_sub(cut_at.elapsed());
    tokio::time::sleep(remaining).await;
    let mut stranded_acks = 0;
    for send in stranded_sends {
        if let Ok(delivery) = send
            && delivery.await.is_ok()
        {
            stranded_acks += 1;
        }
    }
    net.heal();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, failed, sent) = producing.await.unwrap();

    let records = consume_all(&cluster.bootstrap_from(others[0] - 1), TOPIC).await;
    let (lost, duplicates) = tally(&acknowledged, &records);
    let stranded_read = records
        .iter()
        .filter(|(_, _, v)| v.starts_with("stranded"))
        .count();
    println!(
        "{cut:?}: sent {sent}, acknowledged {}, failed {failed}; acknowledged writes lost: {lost} of {}; duplicates: {duplicates}; sends to the cut-off leader acknowledged: {stranded_acks} of 20 (readable afterwards: {stranded_read})",
        acknowledged.len(),
        acknowledged.len()
    );
    assert_eq!(
        stranded_acks, 0,
        "the cut-off leader acknowledged writes it could not replicate"
    );
    assert_eq!((lost, duplicates), (0, 0));
    assert!(!acknowledged.is_empty(), "nothing was acknowledged at all");
    // The old leader's uncommitted suffix is gone: every copy holds the same bytes.
    wait_replicas_agree(dir.path(), TOPIC, PARTITIONS).await;
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_both_ways_acknowledges_nothing_and_the_majority_moves_on() {
    isolate_a_leader(Cut::Symmetric).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_send_acknowledges_nothing_and_the_majority_moves_on() {
    isolate_a_leader(Cut::LeaderCannotSend).await;
}

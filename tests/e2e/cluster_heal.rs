//! A damaged replica heals, on three real `cairn serve` processes (issue 14 item 4): a byte is
//! flipped inside a committed batch of a stopped follower's segment file; restarted, the node's
//! scrub finds the damage, the copy fetches the entry from a healthy peer and rewrites it in
//! place, `cairn_cluster_heals_total` says so, the segment ends byte for byte as it was, and
//! the cluster keeps every acknowledged record exactly once.
//!
//! Segment files are preallocated: batches are found by following their length fields and
//! single ranges are read and written (`read_exact_at`, `write_all_at`), never the whole file.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::cluster::{
    Cluster, consume_all, spawn_producer, start_cluster, tally, wait_replicas_agree,
};

const TOPIC: &str = "orders";

/// The topic's partitions (the producer writes round-robin over them); partition 0 is damaged.
const PARTITIONS: i32 = 3;

/// Partition groups on the cluster: the topic's and `__consumer_offsets`'.
const GROUPS: usize = PARTITIONS as usize + cairn_broker::DEFAULT_OFFSETS_TOPIC_PARTITIONS as usize;

/// Bytes before a batch's records (Kafka RecordBatch v2, `segments-format.md`).
const RECORDS_AT: usize = 61;

/// Where the record count sits in a batch header.
const RECORD_COUNT_AT: usize = 57;

/// The first segment of `orders-0` on node `node`.
fn first_segment(dir: &Path, node: i32) -> PathBuf {
    let replicas = dir.join(format!("node-{node}")).join("replicas");
    let partition = std::fs::read_dir(&replicas)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with("orders-0.g") && !n.ends_with(".deleting")
            })
        })
        .expect("a replica directory for orders-0");
    partition.join(format!("{:020}.log", 0))
}

/// Every data batch of `segment` (position and length), by following the length fields.
fn data_batches(segment: &Path) -> Vec<(u64, usize)> {
    let file = File::open(segment).unwrap();
    let size = file.metadata().unwrap().len();
    let mut found = Vec::new();
    let mut position = 0u64;
    let mut prefix = [0u8; RECORDS_AT];
    while position + RECORDS_AT as u64 <= size {
        file.read_exact_at(&mut prefix, position).unwrap();
        let length = i32::from_be_bytes(prefix[8..12].try_into().unwrap());
        if length <= 0 {
            break;
        }
        let frame = 12 + usize::try_from(length).unwrap();
        let records = i32::from_be_bytes(prefix[RECORD_COUNT_AT..RECORDS_AT].try_into().unwrap());
        if records > 0 {
            found.push((position, frame));
        }
        position += frame as u64;
    }
    found
}

fn read_range(segment: &Path, position: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    File::open(segment)
        .unwrap()
        .read_exact_at(&mut out, position)
        .unwrap();
    out
}

fn flip_inside(segment: &Path, position: u64, len: usize) {
    let at = position + (RECORDS_AT + (len - RECORDS_AT) / 2) as u64;
    let file = OpenOptions::new()
        .write(true)
        .read(true)
        .open(segment)
        .unwrap();
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, at).unwrap();
    byte[0] ^= 0x10;
    file.write_all_at(&byte, at).unwrap();
}

/// The value of the unlabelled metric `name` in node `node`'s `/metrics`, once it answers.
fn metric(cluster: &Cluster, node: i32, name: &str) -> Option<u64> {
    let body = cluster.metrics(node)?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Three nodes, `TOPIC` written for 2 s by an idempotent `acks=all` producer, then a follower
/// of partition 0 stopped cleanly: the cluster, what was acknowledged, and the follower's id.
async fn stopped_follower_after_load(dir: &Path) -> (Cluster, BTreeMap<String, (i32, i64)>, i32) {
    let mut cluster = start_cluster(dir, 3);
    cluster
        .create_topic(&cluster.addresses[0], TOPIC, PARTITIONS, 3)
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let producing = spawn_producer(cluster.bootstrap_from(0), TOPIC, Arc::clone(&stop)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, _, _) = producing.await.unwrap();
    assert!(!acknowledged.is_empty(), "nothing acknowledged");

    let leader = cluster.wait_for_leaders(&cluster.addresses[0], TOPIC).await[0];
    let follower = (1..=3).find(|n| *n != leader).unwrap();
    cluster.stop(follower).await;
    (cluster, acknowledged, follower)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_damaged_while_stopped_heals_after_restart_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, acknowledged, follower) = stopped_follower_after_load(dir.path()).await;
    let segment = first_segment(dir.path(), follower);
    let batches = data_batches(&segment);
    assert!(batches.len() >= 3, "too few batches: {}", batches.len());
    // Not the last batch: a damaged tail of the active segment is a torn write to recovery.
    let (position, len) = batches[batches.len() / 2];
    let good = read_range(&segment, position, len);
    flip_inside(&segment, position, len);

    cluster.restart(follower);
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&cluster, follower, "cairn_cluster_heals_total") != Some(1) {
        if Instant::now() > deadline {
            let index = usize::try_from(follower - 1).unwrap();
            let log = std::fs::read_to_string(&cluster.logs[index]).unwrap_or_default();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("orders") || l.contains("heal") || l.contains("damag"))
                .collect();
            panic!(
                "node {follower} never healed; its log:\n{}",
                lines.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        read_range(&segment, position, len),
        good,
        "healed bytes differ"
    );

    // Whole again (every group led, none under-replicated) before reading everything back.
    cluster.wait_healthy(GROUPS).await;
    let records = consume_all(&cluster.bootstrap_from(0), TOPIC).await;
    let (lost, duplicates) = tally(&acknowledged, &records);
    if lost > 0 {
        let seen: std::collections::BTreeSet<&str> =
            records.iter().map(|(_, _, v)| v.as_str()).collect();
        let missing: Vec<_> = acknowledged
            .iter()
            .filter(|(v, _)| !seen.contains(v.as_str()))
            .map(|(_, at)| *at)
            .collect();
        panic!("{lost} acknowledged records not read back, at {missing:?}");
    }
    assert_eq!(duplicates, 0);
}

/// The last batch of a stopped follower's segment is damaged, where start-up recovery may take
/// it for a torn write rather than damage to heal: whichever path the follower takes, it must
/// be caught up again with the leader's copy, no node may panic, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_last_batch_is_damaged_is_caught_up_again_and_no_node_panics() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, acknowledged, follower) = stopped_follower_after_load(dir.path()).await;
    let segment = first_segment(dir.path(), follower);
    let batches = data_batches(&segment);
    let (position, len) = *batches.last().expect("a batch");
    flip_inside(&segment, position, len);

    cluster.restart(follower);
    cluster.wait_healthy(GROUPS).await;
    wait_replicas_agree(dir.path(), TOPIC, PARTITIONS).await;
    for (index, log) in cluster.logs.iter().enumerate() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        assert!(
            !text.contains("panicked"),
            "node {} panicked; log in {log:?}",
            index + 1
        );
    }
    let records = consume_all(&cluster.bootstrap_from(0), TOPIC).await;
    let (lost, duplicates) = tally(&acknowledged, &records);
    assert_eq!(lost, 0, "acknowledged records lost");
    assert_eq!(duplicates, 0);
}

//! A replicated `__consumer_offsets` stays bounded although compaction does not run on
//! replicated partitions: every replica deletes the whole segments whose commits were all
//! superseded, the coordinator commits a long-unchanged offset again so that it does not pin
//! the log, and every group's offsets read back the same, from a new coordinator too.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failure is a failed test"
)]

mod common;

use std::time::Duration;

use cairn_broker::{BrokerError, OffsetCommit, TopicPartition};
use cairn_raft::testing::mem_transport::MemNetwork;
use common::three_nodes::{Node, cluster_with};

/// `segment.bytes` of the test cluster's `__consumer_offsets`: a few dozen commits each.
const SEGMENT_BYTES: u32 = 4096;
/// Commits of the busy partition: past the garbage the coordinator leaves alone.
const COMMITS: i64 = 3000;

fn commit(partition: u32, offset: i64) -> Vec<OffsetCommit> {
    vec![OffsetCommit {
        partition: TopicPartition {
            topic: "orders".into(),
            partition,
        },
        offset,
        metadata: String::new(),
    }]
}

/// Commits on whichever live node coordinates group `g` (waiting while none does); returns it.
async fn commit_anywhere(nodes: &[Node], skip: Option<u64>, commits: &[OffsetCommit]) -> u64 {
    for _ in 0..400 {
        for node in nodes.iter().filter(|n| Some(n.id) != skip) {
            match node.broker.commit_offsets("g", "", -1, commits).await {
                Ok(()) => return node.id,
                Err(
                    BrokerError::NotCoordinator { .. }
                    | BrokerError::CoordinatorLoadInProgress { .. }
                    | BrokerError::CoordinatorNotAvailable { .. }
                    | BrokerError::UnknownTopic { .. },
                ) => {}
                Err(other) => panic!("node {}: {other}", node.id),
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no node took the commit");
}

/// Group `g`'s committed offsets of `orders` 0 and 1, as node `id` answers.
fn committed(nodes: &[Node], id: u64) -> Result<Vec<Option<i64>>, BrokerError> {
    let node = nodes.iter().find(|n| n.id == id).unwrap();
    let asked: Vec<TopicPartition> = (0..2)
        .map(|partition| TopicPartition {
            topic: "orders".into(),
            partition,
        })
        .collect();
    Ok(node
        .broker
        .fetch_offsets("g", &asked)?
        .into_iter()
        .map(|c| c.committed.map(|v| v.offset))
        .collect())
}

/// (log start, high watermark) of the offsets partition holding group `g`, on every node.
fn offsets_bounds(nodes: &[Node]) -> Vec<(u64, u64)> {
    nodes
        .iter()
        .map(|node| {
            let info = node.broker.describe_topic("__consumer_offsets").unwrap();
            // The group's partition is the one its commits went to.
            let busiest = info
                .partitions
                .iter()
                .max_by_key(|p| p.high_watermark)
                .unwrap();
            (busiest.log_start_offset.0, busiest.high_watermark.0)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn superseded_commits_are_deleted_on_every_copy_and_every_offset_reads_back() {
    let net = MemNetwork::new();
    let nodes = cluster_with(&net, |spec| spec.with_offsets_segment_bytes(SEGMENT_BYTES)).await;
    for _ in 0..100 {
        match nodes[0].broker.create_topic("orders", 2, 3, &[]).await {
            Ok(_) => break,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    // Partition 1 is committed once, first: left alone, its record would hold every later one.
    let first = commit_anywhere(&nodes, None, &commit(1, 7)).await;
    for offset in 0..COMMITS {
        commit_anywhere(&nodes, None, &commit(0, offset)).await;
    }

    // Every copy deletes the superseded start of the log.
    let mut waited = 0;
    loop {
        let bounds = offsets_bounds(&nodes);
        let caught_up = bounds.iter().all(|(_, end)| *end >= COMMITS as u64);
        // What stays: at most the garbage the coordinator leaves alone (1,024 records) behind
        // the oldest commit in force, and the segment that holds it.
        if caught_up && bounds.iter().all(|(start, end)| end - start < 1200) {
            break;
        }
        assert!(
            waited < 600,
            "the offsets log was not trimmed on every copy: {bounds:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    let coordinator = commit_anywhere(&nodes, None, &commit(0, COMMITS)).await;
    assert_eq!(coordinator, first, "no leadership moved");
    assert_eq!(
        committed(&nodes, coordinator).unwrap(),
        [Some(COMMITS), Some(7)]
    );

    // Another node, reading only what is left, answers the same.
    net.set_down(coordinator, true);
    let mut waited = 0;
    let answer = loop {
        let answers: Vec<_> = nodes
            .iter()
            .filter(|n| n.id != coordinator)
            .filter_map(|n| committed(&nodes, n.id).ok())
            .collect();
        if let Some(answer) = answers.into_iter().next() {
            break answer;
        }
        assert!(waited < 400, "no new coordinator");
        tokio::time::sleep(Duration::from_millis(25)).await;
        waited += 1;
    };
    assert_eq!(answer, [Some(COMMITS), Some(7)]);
}

//! What topics cost and leave on disk: the node-wide partition limit, creates that fail leaving
//! nothing behind, start-up removing what a crash mid-create left, and the longest valid names.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::path::Path;
use std::sync::Arc;

use cairn_broker::{Broker, BrokerConfig, BrokerError, MAX_TOPIC_NAME_CHARS};
use cairn_log::SystemClock;

async fn open_with_limit(dir: &Path, max_partitions: u32) -> Broker {
    let cfg = BrokerConfig {
        max_partitions,
        ..common::config(dir)
    };
    common::open_with(cfg, Arc::new(SystemClock)).await
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        // The broker's own files, not the topics under test.
        .filter(|name| {
            !name.starts_with("__consumer_offsets") && name != "producer-ids" && name != "node.meta"
        })
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn creates_past_the_node_partition_limit_are_refused_counting_the_offsets_topic() {
    let dir = tempfile::tempdir().unwrap();
    // __consumer_offsets takes 8 of the 12.
    let broker = open_with_limit(dir.path(), 12).await;
    let err = broker.create_topic("orders", 5, 1, &[]).await.unwrap_err();
    match &err {
        BrokerError::TooManyPartitions {
            requested,
            existing,
            limit,
        } => assert_eq!((*requested, *existing, *limit), (5, 8, 12)),
        other => panic!("expected TooManyPartitions, got {other}"),
    }
    assert!(err.to_string().contains("limit of 12"), "{err}");
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
    broker.create_topic("orders", 3, 1, &[]).await.unwrap();
    let err = broker.add_partitions("orders", 5).await.unwrap_err();
    assert!(
        matches!(err, BrokerError::TooManyPartitions { .. }),
        "{err}"
    );
    broker.add_partitions("orders", 4).await.unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn a_create_that_fails_half_way_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_with_limit(dir.path(), 4096).await;
    // Partition 2's directory cannot be made: a file holds its name.
    std::fs::write(dir.path().join("orders-2"), "in the way").unwrap();
    let err = broker.create_topic("orders", 4, 1, &[]).await.unwrap_err();
    assert!(err.to_string().contains("orders-2"), "{err}");
    assert_eq!(
        entries(dir.path()),
        ["orders-2"],
        "partitions 0 and 1 are gone"
    );
    assert!(broker.describe_topic("orders").is_err());
    std::fs::remove_file(dir.path().join("orders-2")).unwrap();
    broker.create_topic("orders", 4, 1, &[]).await.unwrap();
    // A failed partition increase removes only the new partitions.
    std::fs::write(dir.path().join("orders-5"), "in the way").unwrap();
    broker.add_partitions("orders", 6).await.unwrap_err();
    let left = entries(dir.path());
    assert_eq!(
        left,
        [
            "orders-0",
            "orders-1",
            "orders-2",
            "orders-3",
            "orders-5",
            "orders.topic"
        ]
    );
    assert_eq!(broker.describe_topic("orders").unwrap().partitions.len(), 4);
    broker.shutdown().await;
}

#[tokio::test]
async fn start_up_removes_what_a_crash_mid_create_left_and_keeps_committed_topics() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_with_limit(dir.path(), 4096).await;
    broker.create_topic("orders", 2, 1, &[]).await.unwrap();
    broker.shutdown().await;
    drop(broker);
    // A crash after the logs of "ghost" were made and before its topic file was renamed in.
    for leftover in ["ghost-0", "ghost-1", "orders-2"] {
        std::fs::create_dir(dir.path().join(leftover)).unwrap();
    }
    std::fs::write(
        dir.path().join(".0123456789abcdef.topic.tmp"),
        "partitions=2\n",
    )
    .unwrap();
    let broker = open_with_limit(dir.path(), 4096).await;
    assert_eq!(
        entries(dir.path()),
        ["orders-0", "orders-1", "orders.topic"]
    );
    assert_eq!(broker.describe_topic("orders").unwrap().partitions.len(), 2);
    broker.create_topic("ghost", 1, 1, &[]).await.unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn the_longest_valid_names_create_reopen_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_with_limit(dir.path(), 4096).await;
    let names: Vec<String> = (246..=MAX_TOPIC_NAME_CHARS)
        .map(|len| format!("{}.x", "o".repeat(len - 2)))
        .collect();
    for name in &names {
        broker.create_topic(name, 2, 1, &[]).await.unwrap();
    }
    broker.shutdown().await;
    drop(broker);
    let broker = open_with_limit(dir.path(), 4096).await;
    for name in &names {
        assert_eq!(broker.describe_topic(name).unwrap().partitions.len(), 2);
        broker.delete_topic(name).await.unwrap();
    }
    // The names go at once; the files are freed in the background, paced.
    let start = std::time::Instant::now();
    while !entries(dir.path()).is_empty() {
        let left = entries(dir.path());
        assert!(
            left.iter().all(|n| cairn_log::is_log_dir_being_deleted(n)),
            "{left:?}"
        );
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "{left:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    broker.shutdown().await;
}

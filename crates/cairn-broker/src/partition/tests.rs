//! The seam's own contract, on a real log in a temporary directory: waiting on the high
//! watermark, and what a stopped partition answers.

use std::sync::Arc;

use cairn_codec::batch::{Batch, BatchBuilder, Compression, RecordInput};
use cairn_log::SystemClock;
use tokio::time::Instant;

use super::*;

fn node() -> NodeIdentity {
    NodeIdentity {
        node_id: 7,
        advertised_address: "127.0.0.1:7070".into(),
    }
}

fn open(dir: &Path) -> Partition {
    Partition::open(
        Arc::from("orders"),
        0,
        dir.join("orders-0"),
        LogConfig::default(),
        Arc::new(SystemClock),
        LocalOptions::default(),
    )
    .expect("a fresh log opens")
}

fn batch(value: &'static [u8]) -> Batch {
    let mut builder = BatchBuilder::new(Compression::None);
    builder
        .push(&RecordInput {
            key: None,
            value: Some(value),
            headers: &[],
            timestamp_ms: 1,
        })
        .expect("one record fits");
    Batch::validate(builder.build().expect("builds")).expect("valid")
}

#[tokio::test]
async fn the_high_watermark_wait_returns_at_once_when_already_past_and_none_at_the_deadline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let partition = open(dir.path());
    let empty = partition.offsets().expect("serving");
    assert_eq!(empty, PartitionOffsets::default());
    assert_eq!(
        partition
            .wait_for_high_watermark(Offset(0), Instant::now())
            .await,
        None,
        "nothing past 0 and the deadline has come"
    );
    let appended = partition
        .append(batch(b"a"), AckLevel::All)
        .await
        .expect("appended");
    assert_eq!(appended, Some(Offset(0)));
    // Committed when acknowledged at All: the high watermark is already past it.
    assert_eq!(
        partition
            .wait_for_high_watermark(Offset(0), Instant::now())
            .await,
        Some(Offset(1))
    );
    let read = partition.read(0, 1 << 20).expect("readable");
    assert_eq!(read.next_offset(), Offset(1));
    assert_eq!(read.high_watermark(), Offset(1));
    assert_eq!(read.batches().count(), 1);
    assert_eq!(
        read.data().len(),
        partition.size_bytes().expect("serving") as usize
    );
    partition.close().await.expect("closes");
}

#[tokio::test]
async fn a_waiter_wakes_when_an_append_moves_the_high_watermark() {
    let dir = tempfile::tempdir().expect("temp dir");
    let partition = Arc::new(open(dir.path()));
    let waiter = {
        let partition = Arc::clone(&partition);
        tokio::spawn(async move {
            let far = Instant::now() + std::time::Duration::from_secs(600);
            partition.wait_for_high_watermark(Offset(0), far).await
        })
    };
    partition
        .append(batch(b"a"), AckLevel::Leader)
        .await
        .expect("appended");
    assert_eq!(waiter.await.expect("joins"), Some(Offset(1)));
    partition.close().await.expect("closes");
}

#[tokio::test]
async fn a_stopped_partition_refuses_reads_and_writes_and_names_no_in_sync_copy() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A file where the partition's directory should be: the log will not open.
    let blocked = dir.path().join("orders-0");
    std::fs::write(&blocked, b"not a directory").expect("write");
    let partition = Partition::open_or_stop(
        Arc::from("orders"),
        0,
        blocked,
        LogConfig::default(),
        Arc::new(SystemClock),
        LocalOptions::default(),
    )
    .expect("stopped, not failed");
    let stopped = |err: BrokerError| matches!(err, BrokerError::PartitionStopped { .. });
    assert!(stopped(partition.read(0, 1).expect_err("stopped")));
    assert!(stopped(partition.offsets().expect_err("stopped")));
    assert!(stopped(
        partition
            .append(batch(b"a"), AckLevel::All)
            .await
            .expect_err("stopped")
    ));
    assert_eq!(
        partition
            .wait_for_high_watermark(
                Offset(0),
                Instant::now() + std::time::Duration::from_secs(600)
            )
            .await,
        None,
        "a stopped partition never moves, so nobody waits on it"
    );
    let leadership = partition.leadership(&node());
    assert_eq!(leadership.leader, Some(7));
    assert_eq!(leadership.replicas, vec![7]);
    assert!(leadership.in_sync_replicas.is_empty());
    assert!(matches!(
        partition.problem().map(|p| p.condition),
        Some(PartitionCondition::Stopped { .. })
    ));
    partition.close().await.expect("nothing to close");
}

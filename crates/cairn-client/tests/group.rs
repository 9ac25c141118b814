//! `GroupConsumer` against an in-process server: a second member joining triggers an orderly
//! rebalance (the first is told of revoked partitions after committing them, the second is
//! told of its new ones and starts at the committed offsets), so two members consume every
//! record exactly once; manual commits with auto-commit off; `close` leaves the group; and
//! `GroupAdmin` sees it all.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_client::{
    Admin, ConsumedRecord, GroupAdmin, GroupConsumer, GroupConsumerConfig, OffsetReset,
    OutgoingRecord, Producer, ProducerConfig, RebalanceListener, TopicPartition,
};
use tokio::sync::oneshot;

mod common;

async fn start(dir: &std::path::Path) -> (String, oneshot::Sender<()>) {
    let (brokers, stop, _server) = common::start(dir);
    common::admin(&brokers).await;
    (brokers, stop)
}

async fn produce(brokers: &str, topic: &str, from: usize, count: usize) {
    let producer = Producer::connect(brokers, ProducerConfig::default())
        .await
        .unwrap();
    let mut deliveries = Vec::with_capacity(count);
    for i in from..from + count {
        let record = OutgoingRecord::keyed(format!("k{}", i % 13), format!("v{i}"));
        deliveries.push(producer.send(topic, record).await.unwrap());
    }
    for delivery in deliveries {
        delivery.await.unwrap();
    }
    producer.close().await.unwrap();
}

/// One callback: its name and its partitions.
type Event = (&'static str, Vec<TopicPartition>);

/// Records every callback.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Event>>>);

impl RebalanceListener for Events {
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .unwrap()
            .push(("assigned", partitions.to_vec()));
    }

    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .unwrap()
            .push(("revoked", partitions.to_vec()));
    }

    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        self.0.lock().unwrap().push(("lost", partitions.to_vec()));
    }
}

fn config(group: &str) -> GroupConsumerConfig {
    let mut cfg = GroupConsumerConfig::new(group);
    cfg.auto_offset_reset = OffsetReset::Earliest;
    cfg.auto_commit_interval = Duration::from_millis(200);
    cfg
}

fn key(r: &ConsumedRecord) -> (i32, i64) {
    (r.partition, r.offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_rebalance_in_order_and_consume_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let (brokers, _stop) = start(dir.path()).await;
    Admin::connect(&brokers)
        .await
        .unwrap()
        .create_topic("orders", 4, 0, Default::default())
        .await
        .unwrap();
    produce(&brokers, "orders", 0, 2000).await;

    let first_events = Events::default();
    let mut first = GroupConsumer::subscribe(
        &brokers,
        config("g"),
        &["orders"],
        Box::new(first_events.clone()),
    )
    .await
    .unwrap();
    let mut seen: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    // The first member reads a part, then a second joins.
    while seen.len() < 500 {
        for r in first.poll(Duration::from_millis(200)).await.unwrap() {
            *seen.entry(key(&r)).or_default() += 1;
        }
    }
    let second_events = Events::default();
    let mut second = GroupConsumer::subscribe(
        &brokers,
        config("g"),
        &["orders"],
        Box::new(second_events.clone()),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 2000 || first.assignment().len() != 2 || second.assignment().len() != 2 {
        assert!(
            Instant::now() < deadline,
            "gave up at {} records",
            seen.len()
        );
        for consumer in [&mut first, &mut second] {
            for r in consumer.poll(Duration::from_millis(50)).await.unwrap() {
                *seen.entry(key(&r)).or_default() += 1;
            }
        }
        let (a, b) = (first.assignment(), second.assignment());
        assert!(a.is_disjoint(&b), "two owners: {a:?} {b:?}");
    }
    assert!(
        seen.values().all(|&n| n == 1),
        "a record was consumed twice"
    );
    assert_eq!(first.assignment().len(), 2);
    assert_eq!(second.assignment().len(), 2);
    let first_log = first_events.0.lock().unwrap().clone();
    assert_eq!(first_log[0].0, "assigned");
    assert_eq!(first_log[0].1.len(), 4);
    assert_eq!(first_log[1].0, "revoked", "{first_log:?}");
    let revoked: BTreeSet<TopicPartition> = first_log[1].1.iter().cloned().collect();
    assert_eq!(
        revoked,
        second.assignment(),
        "what one gave up, the other got"
    );
    let second_log = second_events.0.lock().unwrap().clone();
    assert!(second_log.iter().all(|(what, _)| *what == "assigned"));

    first.close().await.unwrap();
    second.close().await.unwrap();
    let admin = GroupAdmin::connect(&brokers).await.unwrap();
    let described = admin.describe_group("g").await.unwrap();
    assert!(described.members.is_empty(), "close leaves the group");
    assert!(
        described.offsets.iter().all(|o| o.lag == 0),
        "{described:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_commits_are_what_a_restarted_member_resumes_from() {
    let dir = tempfile::tempdir().unwrap();
    let (brokers, _stop) = start(dir.path()).await;
    Admin::connect(&brokers)
        .await
        .unwrap()
        .create_topic("orders", 1, 0, Default::default())
        .await
        .unwrap();
    produce(&brokers, "orders", 0, 100).await;
    let mut cfg = config("manual");
    cfg.enable_auto_commit = false;
    let mut consumer = GroupConsumer::subscribe(
        &brokers,
        cfg.clone(),
        &["orders"],
        Box::new(Events::default()),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    while got.len() < 100 {
        got.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    let partition = TopicPartition {
        topic: "orders".into(),
        partition: 0,
    };
    consumer
        .commit_offsets(&BTreeMap::from([(partition.clone(), 40)]), "half way")
        .await
        .unwrap();
    consumer.close().await.unwrap();
    let admin = GroupAdmin::connect(&brokers).await.unwrap();
    let committed = admin.committed_offsets("manual").await.unwrap();
    assert_eq!(
        committed[0].offset, 40,
        "close without auto-commit commits nothing more"
    );
    assert_eq!(committed[0].metadata, "half way");

    let mut again =
        GroupConsumer::subscribe(&brokers, cfg, &["orders"], Box::new(Events::default()))
            .await
            .unwrap();
    let mut resumed = Vec::new();
    while resumed.len() < 60 {
        resumed.extend(again.poll(Duration::from_millis(200)).await.unwrap());
    }
    assert_eq!(resumed[0].offset, 40);
    assert_eq!(resumed.len(), 60);
    again.close().await.unwrap();
}

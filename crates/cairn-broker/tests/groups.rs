//! The group coordinator through the broker: joins and heartbeats, commits that survive a
//! restart (they live in `__consumer_offsets`), fencing of zombies, reset and delete, and the
//! typed errors of bad input; session timeouts that a step of the wall clock does not move.
//! Nothing committed is lost or moved by a refused call.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_broker::{
    AckLevel, Broker, BrokerConfig, BrokerError, GroupState, HeartbeatInput, HeartbeatOutput,
    OffsetCommit, ProducePayload, ProduceRecord, ProduceRequest, ResetTo, TopicPartition,
};
use cairn_log::batch::Compression;
use cairn_log::{ManualClock, SystemClock};

async fn open(dir: &std::path::Path) -> Broker {
    let cfg = BrokerConfig {
        offsets_topic_partitions: 3,
        ..common::config(dir)
    };
    common::open_with(cfg, Arc::new(SystemClock)).await
}

async fn produce(broker: &Broker, topic: &str, partition: i64, count: usize) {
    let records = (0..count)
        .map(|i| ProduceRecord {
            value: Some(Bytes::from(format!("v{i}"))),
            ..Default::default()
        })
        .collect();
    broker
        .produce(ProduceRequest {
            topic: topic.to_string(),
            partition: Some(partition),
            acks: AckLevel::All,
            payload: ProducePayload::Records {
                records,
                compression: Compression::None,
            },
            producer: None,
        })
        .await
        .unwrap();
}

fn tp(topic: &str, partition: u32) -> TopicPartition {
    TopicPartition {
        topic: topic.to_string(),
        partition,
    }
}

fn commit(topic: &str, partition: u32, offset: i64) -> OffsetCommit {
    OffsetCommit {
        partition: tp(topic, partition),
        offset,
        metadata: format!("at {offset}"),
    }
}

fn join(broker: &Broker, group: &str, topics: &[&str]) -> HeartbeatOutput {
    broker
        .group_heartbeat(
            group,
            HeartbeatInput {
                client_id: "test".into(),
                subscribed: Some(topics.iter().map(|t| t.to_string()).collect()),
                ..HeartbeatInput::default()
            },
        )
        .unwrap()
}

fn committed(broker: &Broker, group: &str) -> Vec<(String, u32, i64)> {
    broker
        .fetch_offsets(group, &[])
        .unwrap()
        .into_iter()
        .map(|c| {
            (
                c.partition.topic,
                c.partition.partition,
                c.committed.unwrap().offset,
            )
        })
        .collect()
}

#[tokio::test]
async fn commits_survive_a_restart_and_describe_shows_lag() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path()).await;
        broker.create_topic("orders", 2, 1, &[]).await.unwrap();
        produce(&broker, "orders", 0, 10).await;
        produce(&broker, "orders", 1, 4).await;
        let member = join(&broker, "inventory", &["orders"]);
        assert_eq!(member.assignment.len(), 2);
        broker
            .commit_offsets(
                "inventory",
                &member.member_id,
                member.member_epoch,
                &[commit("orders", 0, 7), commit("orders", 1, 4)],
            )
            .await
            .unwrap();
        let described = broker.describe_group("inventory").unwrap();
        assert_eq!(described.state, GroupState::Stable);
        assert_eq!(described.members.len(), 1);
        let lags: Vec<(i64, i64)> = described.offsets.iter().map(|o| (o.end, o.lag)).collect();
        assert_eq!(lags, vec![(10, 3), (4, 0)]);
        broker.shutdown().await;
    }
    let broker = open(dir.path()).await;
    assert_eq!(
        committed(&broker, "inventory"),
        vec![("orders".into(), 0, 7), ("orders".into(), 1, 4)]
    );
    let listed = broker.list_groups();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].state,
        GroupState::Empty,
        "members do not survive a restart"
    );
    let fetched = broker
        .fetch_offsets("inventory", &[tp("orders", 0)])
        .unwrap();
    assert_eq!(fetched[0].committed.as_ref().unwrap().metadata, "at 7");
    // The old member id is unknown now: it must rejoin.
    let err = broker
        .group_heartbeat(
            "inventory",
            HeartbeatInput {
                member_id: "gone".into(),
                member_epoch: 3,
                ..HeartbeatInput::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, BrokerError::UnknownMember { .. }), "{err}");
}

#[tokio::test]
async fn a_zombie_cannot_commit_and_a_refused_commit_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker.create_topic("orders", 2, 1, &[]).await.unwrap();
    produce(&broker, "orders", 0, 10).await;
    let a = join(&broker, "g", &["orders"]);
    broker
        .commit_offsets("g", &a.member_id, a.member_epoch, &[commit("orders", 0, 5)])
        .await
        .unwrap();
    // a leaves; a second member takes over and commits; a's late commit is refused.
    broker
        .group_heartbeat(
            "g",
            HeartbeatInput {
                member_id: a.member_id.clone(),
                member_epoch: -1,
                ..HeartbeatInput::default()
            },
        )
        .unwrap();
    let b = join(&broker, "g", &["orders"]);
    broker
        .commit_offsets("g", &b.member_id, b.member_epoch, &[commit("orders", 0, 8)])
        .await
        .unwrap();
    let err = broker
        .commit_offsets("g", &a.member_id, a.member_epoch, &[commit("orders", 0, 6)])
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::UnknownMember { .. }), "{err}");
    let cases: Vec<(&str, &str, i32, Vec<OffsetCommit>)> = vec![
        (
            "g",
            &b.member_id,
            b.member_epoch + 5,
            vec![commit("orders", 0, 9)],
        ),
        (
            "g",
            &b.member_id,
            b.member_epoch,
            vec![commit("orders", 0, 11)],
        ),
        (
            "g",
            &b.member_id,
            b.member_epoch,
            vec![commit("orders", 0, -1)],
        ),
        (
            "g",
            &b.member_id,
            b.member_epoch,
            vec![commit("orders", 0, 9), commit("orders", 7, 0)],
        ),
        (
            "g",
            &b.member_id,
            b.member_epoch,
            vec![commit("nope", 0, 0)],
        ),
        ("g", "", -1, vec![commit("orders", 0, 1)]),
        ("", "", -1, vec![commit("orders", 0, 1)]),
        ("g", &b.member_id, b.member_epoch, vec![]),
    ];
    for (group, member, epoch, offsets) in cases {
        let err = broker
            .commit_offsets(group, member, epoch, &offsets)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(!text.is_empty());
        assert_eq!(
            committed(&broker, "g"),
            vec![("orders".into(), 0, 8)],
            "{text} moved a committed offset"
        );
    }
    let err = broker
        .commit_offsets(
            "g",
            &b.member_id,
            b.member_epoch,
            &[OffsetCommit {
                metadata: "x".repeat(5000),
                ..commit("orders", 0, 9)
            }],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::OffsetMetadataTooLarge { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn reset_and_delete_need_an_empty_group() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker.create_topic("orders", 2, 1, &[]).await.unwrap();
    produce(&broker, "orders", 0, 10).await;
    produce(&broker, "orders", 1, 3).await;
    let a = join(&broker, "g", &["orders"]);
    let err = broker
        .reset_offsets("g", "orders", &[], ResetTo::Earliest)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::NonEmptyGroup { members: 1, .. }),
        "{err}"
    );
    let err = broker.delete_group("g").await.unwrap_err();
    assert!(matches!(err, BrokerError::NonEmptyGroup { .. }), "{err}");
    broker
        .group_heartbeat(
            "g",
            HeartbeatInput {
                member_id: a.member_id,
                member_epoch: -1,
                ..HeartbeatInput::default()
            },
        )
        .unwrap();
    broker
        .reset_offsets("g", "orders", &[], ResetTo::Latest)
        .await
        .unwrap();
    assert_eq!(
        committed(&broker, "g"),
        vec![("orders".into(), 0, 10), ("orders".into(), 1, 3)]
    );
    broker
        .reset_offsets("g", "orders", &[0], ResetTo::Offset(4))
        .await
        .unwrap();
    for bad in [ResetTo::Offset(-1), ResetTo::Offset(11)] {
        let err = broker
            .reset_offsets("g", "orders", &[0], bad)
            .await
            .unwrap_err();
        assert!(matches!(err, BrokerError::OffsetNotInRange { .. }), "{err}");
    }
    let err = broker
        .reset_offsets("g", "orders", &[5], ResetTo::Earliest)
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::UnknownPartition { .. }), "{err}");
    assert_eq!(
        committed(&broker, "g"),
        vec![("orders".into(), 0, 4), ("orders".into(), 1, 3)]
    );
    broker.delete_group("g").await.unwrap();
    assert_eq!(broker.describe_group("g").unwrap().state, GroupState::Dead);
    assert!(broker.list_groups().is_empty());
    let err = broker.delete_group("g").await.unwrap_err();
    assert!(matches!(err, BrokerError::UnknownGroup { .. }), "{err}");
    let err = broker.describe_group("never").unwrap_err();
    assert!(matches!(err, BrokerError::UnknownGroup { .. }), "{err}");
    let err = broker.describe_group("bad\u{7}id").unwrap_err();
    assert!(matches!(err, BrokerError::InvalidGroupId { .. }), "{err}");
    // Deleted offsets stay deleted across a restart: the tombstones are durable.
    broker.shutdown().await;
    drop(broker);
    let broker = open(dir.path()).await;
    assert!(broker.list_groups().is_empty());
}

#[tokio::test]
async fn clients_cannot_touch_the_offsets_topic() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    let topics: BTreeSet<String> = broker.list_topics(true).into_iter().collect();
    assert!(topics.contains("__consumer_offsets"));
    assert!(broker.list_topics(false).is_empty());
    let err = broker
        .create_topic("__consumer_offsets", 1, 1, &[])
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::InternalTopic { .. }), "{err}");
    let err = broker.delete_topic("__consumer_offsets").await.unwrap_err();
    assert!(matches!(err, BrokerError::InternalTopic { .. }), "{err}");
    let err = broker
        .add_partitions("__consumer_offsets", 9)
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::InternalTopic { .. }), "{err}");
    let retention = [("cleanup.policy".to_string(), "delete".to_string())];
    let err = broker
        .alter_configs("__consumer_offsets", &retention, &[])
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::InternalTopic { .. }), "{err}");
    let err = broker
        .produce(ProduceRequest {
            topic: "__consumer_offsets".into(),
            partition: Some(0),
            acks: AckLevel::All,
            payload: ProducePayload::Records {
                records: vec![ProduceRecord::default()],
                compression: Compression::None,
            },
            producer: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::InternalTopic { .. }), "{err}");
    let info = broker.describe_topic("__consumer_offsets").unwrap();
    assert_eq!(info.partitions.len(), 3);
    assert!(
        info.configs
            .iter()
            .any(|(k, v)| k == "cleanup.policy" && v == "compact")
    );
}

#[tokio::test]
async fn a_compacted_topic_refuses_records_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    let configs = [("cleanup.policy".to_string(), "compact".to_string())];
    broker
        .create_topic("customers", 1, 1, &configs)
        .await
        .unwrap();
    let request = |key: Option<&str>| ProduceRequest {
        topic: "customers".into(),
        partition: None,
        acks: AckLevel::All,
        payload: ProducePayload::Records {
            records: vec![ProduceRecord {
                key: key.map(|k| Bytes::from(k.to_string())),
                value: Some(Bytes::from_static(b"v")),
                ..Default::default()
            }],
            compression: Compression::None,
        },
        producer: None,
    };
    broker.produce(request(Some("c-1"))).await.unwrap();
    let err = broker.produce(request(None)).await.unwrap_err();
    assert!(
        matches!(err, BrokerError::KeylessRecordOnCompactedTopic { .. }),
        "{err}"
    );
}

/// A broker over `dir` (one offsets partition) on a manual clock set to `start_ms`, with a
/// one-partition `orders` topic.
async fn open_on_manual_clock(dir: &std::path::Path, start_ms: i64) -> (Broker, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(start_ms));
    let cfg = BrokerConfig {
        offsets_topic_partitions: 1,
        ..common::config(dir)
    };
    let broker = common::open_with(cfg, Arc::clone(&clock) as Arc<dyn cairn_log::Clock>).await;
    broker.create_topic("orders", 1, 1, &[]).await.unwrap();
    (broker, clock)
}

#[tokio::test]
async fn sessions_expire_on_elapsed_time_not_on_wall_clock_steps() {
    let dir = tempfile::tempdir().unwrap();
    let start_ms = 1_767_225_600_000;
    let (broker, clock) = open_on_manual_clock(dir.path(), start_ms).await;
    join(&broker, "billing", &["orders"]);
    let members = || {
        broker
            .describe_group("billing")
            .map_or(0, |d| d.members.len())
    };

    // The wall clock jumps an hour ahead (an NTP step, a migrated VM): the expiry task, which
    // checks every 100 ms, must not count that hour as silence.
    clock.set(start_ms + 3_600_000);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(members(), 1, "a wall-clock step ended a session");

    // 45 s really pass without a heartbeat: the member is removed.
    clock.advance(45_001);
    let deadline = Instant::now() + Duration::from_secs(30);
    while members() != 0 {
        assert!(Instant::now() < deadline, "the session never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn next_record_age_is_the_age_of_the_first_unconsumed_record() {
    let dir = tempfile::tempdir().unwrap();
    let start_ms = 1_767_225_600_000;
    let (broker, clock) = open_on_manual_clock(dir.path(), start_ms).await;
    produce(&broker, "orders", 0, 2).await; // offsets 0, 1 at start_ms
    clock.advance(3_000);
    produce(&broker, "orders", 0, 1).await; // offset 2 at start_ms + 3 s
    clock.advance(4_000);
    let age = |offset| broker.next_record_age_ms(&tp("orders", 0), offset).unwrap();
    assert_eq!(age(0), 7_000);
    assert_eq!(age(1), 7_000);
    assert_eq!(age(2), 4_000);
    assert_eq!(age(3), 0, "caught up: nothing to consume");
    assert!(matches!(
        broker.next_record_age_ms(&tp("gone", 0), 0),
        Err(BrokerError::UnknownTopic { .. })
    ));
}

#[tokio::test]
async fn every_group_epoch_move_counts_as_one_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker.create_topic("orders", 2, 1, &[]).await.unwrap();
    assert_eq!(broker.group_rebalance_count(), 0);
    let first = join(&broker, "billing", &["orders"]);
    assert_eq!(broker.group_rebalance_count(), 1);
    join(&broker, "billing", &["orders"]);
    assert_eq!(broker.group_rebalance_count(), 2);
    // A plain heartbeat that changes nothing is no rebalance.
    broker
        .group_heartbeat(
            "billing",
            HeartbeatInput {
                member_id: first.member_id.clone(),
                member_epoch: first.member_epoch,
                owned: first.assignment.clone(),
                ..HeartbeatInput::default()
            },
        )
        .unwrap();
    assert_eq!(broker.group_rebalance_count(), 2);
    broker
        .group_heartbeat(
            "billing",
            HeartbeatInput {
                member_id: first.member_id,
                member_epoch: -1,
                ..HeartbeatInput::default()
            },
        )
        .unwrap();
    assert_eq!(broker.group_rebalance_count(), 3);
}

#[tokio::test]
async fn a_heartbeat_naming_an_impossible_topic_or_epoch_is_refused_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    let long = "x".repeat(250);
    for bad in ["", "bad/name", "..", long.as_str()] {
        let err = broker
            .group_heartbeat(
                "inventory",
                HeartbeatInput {
                    client_id: "test".into(),
                    subscribed: Some([bad.to_string()].into()),
                    ..HeartbeatInput::default()
                },
            )
            .unwrap_err();
        assert!(
            matches!(err, cairn_broker::BrokerError::InvalidTopicName { .. }),
            "{bad:?}: {err}"
        );
    }
    // Nothing was kept: the group was never made.
    assert!(broker.describe_group("inventory").is_err());
    // An epoch that means nothing is named as such, not as an unknown member.
    let err = broker
        .group_heartbeat(
            "inventory",
            HeartbeatInput {
                member_epoch: -2,
                ..HeartbeatInput::default()
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("member epoch -2"), "{err}");
    // A topic that does not exist yet is a valid subscription.
    let member = join(&broker, "inventory", &["created-later"]);
    assert!(member.assignment.is_empty());
}

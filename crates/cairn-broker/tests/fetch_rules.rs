//! The fetch rules and the partition seam as the broker's callers see them: a group member's
//! fetch is fenced before anything is read, a subscription hands out each batch once and in
//! order, every ack level answers, and leaders, epochs, replicas and nodes come from the broker.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_broker::{
    AckLevel, Broker, BrokerError, FetchRequest, GroupFetch, HeartbeatInput, LeaderEpoch,
    NodeIdentity, Offset, ProducePayload, ProduceRecord, ProduceRequest, SubscribeRequest,
    TopicPartition, decode_records,
};
use cairn_codec::batch::Compression;

use common::open;

fn produce_request(topic: &str, values: &[&str], acks: AckLevel) -> ProduceRequest {
    ProduceRequest {
        topic: topic.into(),
        partition: Some(0),
        acks,
        payload: ProducePayload::Records {
            records: values
                .iter()
                .map(|v| ProduceRecord {
                    key: Some(Bytes::from_static(b"k")),
                    value: Some(Bytes::from(v.to_string())),
                    ..Default::default()
                })
                .collect(),
            compression: Compression::None,
        },
        producer: None,
    }
}

fn fetch_request(topic: &str, partition: i64, group: Option<GroupFetch>) -> FetchRequest {
    FetchRequest {
        topic: topic.into(),
        partition,
        offset: 0,
        max_bytes: 0,
        max_wait: Duration::ZERO,
        min_bytes: 1,
        group,
    }
}

#[tokio::test]
async fn a_group_fetch_is_fenced_before_anything_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker.create_topic("orders", 1, 1, &[]).await.unwrap();
    let stranger = GroupFetch {
        group_id: "billing".into(),
        member_id: "nobody".into(),
        member_epoch: 1,
    };
    let err = broker
        .fetch(&fetch_request("orders", 0, Some(stranger.clone())))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::UnknownMember { .. }), "{err}");
    let err = broker
        .fetch(&fetch_request("orders", -1, Some(stranger)))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::InvalidRequest(_)), "{err}");

    let member = broker
        .group_heartbeat(
            "billing",
            HeartbeatInput {
                client_id: "test".into(),
                subscribed: Some(BTreeSet::from(["orders".to_string()])),
                ..HeartbeatInput::default()
            },
        )
        .unwrap();
    let owner = GroupFetch {
        group_id: "billing".into(),
        member_id: member.member_id.clone(),
        member_epoch: member.member_epoch,
    };
    assert!(
        member.assignment.contains(&TopicPartition {
            topic: "orders".into(),
            partition: 0
        }),
        "{member:?}"
    );
    broker
        .fetch(&fetch_request("orders", 0, Some(owner.clone())))
        .await
        .unwrap();
    let zombie = GroupFetch {
        member_epoch: owner.member_epoch + 1,
        ..owner
    };
    let err = broker
        .fetch(&fetch_request("orders", 0, Some(zombie)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::FencedMemberEpoch { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn every_ack_level_appends_and_only_none_answers_without_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker.create_topic("orders", 1, 1, &[]).await.unwrap();
    let all = broker
        .produce(produce_request("orders", &["a", "b"], AckLevel::All))
        .await
        .unwrap();
    assert_eq!(all.partitions[0].base_offset, Some(Offset(0)));
    let leader = broker
        .produce(produce_request("orders", &["c"], AckLevel::Leader))
        .await
        .unwrap();
    assert_eq!(leader.partitions[0].base_offset, Some(Offset(2)));
    let none = broker
        .produce(produce_request("orders", &["d"], AckLevel::None))
        .await
        .unwrap();
    assert!(none.partitions[0].error.is_none(), "{none:?}");
    assert_eq!(none.partitions[0].base_offset, None);
    // The unacknowledged append still lands: a later acknowledged one follows it.
    let after = broker
        .produce(produce_request("orders", &["e"], AckLevel::All))
        .await
        .unwrap();
    assert_eq!(after.partitions[0].base_offset, Some(Offset(4)));
}

#[tokio::test]
async fn a_subscription_hands_out_each_batch_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(open(dir.path()).await);
    broker.create_topic("orders", 1, 1, &[]).await.unwrap();
    broker
        .produce(produce_request("orders", &["a", "b"], AckLevel::All))
        .await
        .unwrap();
    let mut subscription = broker
        .subscribe(SubscribeRequest {
            topic: "orders".into(),
            partition: 0,
            offset: 1,
            max_bytes: 0,
        })
        .unwrap();
    assert_eq!(subscription.position(), 1);
    let first = subscription.next().await.unwrap();
    let values: Vec<Bytes> = decode_records(&first, Offset(1), 1 << 20)
        .unwrap()
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    assert_eq!(
        values,
        vec![Bytes::from_static(b"b")],
        "from the offset asked"
    );
    assert_eq!(subscription.position(), 2);

    // The next read waits for data; it is produced while the subscription waits.
    let waiting = tokio::spawn(async move {
        let read = subscription.next().await;
        (read, subscription.position())
    });
    broker
        .produce(produce_request("orders", &["c"], AckLevel::All))
        .await
        .unwrap();
    let (read, position) = waiting.await.unwrap();
    let read = read.unwrap();
    let records = decode_records(&read, Offset(2), 1 << 20).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].offset, Offset(2));
    assert_eq!(position, 3);
}

#[tokio::test]
async fn a_subscription_is_checked_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(open(dir.path()).await);
    broker.create_topic("orders", 1, 1, &[]).await.unwrap();
    let subscribe = |topic: &str, partition, max_bytes| SubscribeRequest {
        topic: topic.into(),
        partition,
        offset: 0,
        max_bytes,
    };
    let err = broker.subscribe(subscribe("orders", 0, -1)).unwrap_err();
    assert!(matches!(err, BrokerError::InvalidRequest(_)), "{err}");
    let err = broker.subscribe(subscribe("nope", 0, 0)).unwrap_err();
    assert!(matches!(err, BrokerError::UnknownTopic { .. }), "{err}");
    let err = broker.subscribe(subscribe("orders", 3, 0)).unwrap_err();
    assert!(matches!(err, BrokerError::UnknownPartition { .. }), "{err}");
}

#[tokio::test]
async fn leaders_replicas_and_nodes_come_from_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let broker: Broker = open(dir.path()).await;
    let this = NodeIdentity {
        node_id: 1,
        advertised_address: "127.0.0.1:7070".into(),
    };
    assert_eq!(broker.node(), &this);
    assert_eq!(broker.nodes(), vec![this]);
    broker.create_topic("orders", 2, 1, &[]).await.unwrap();
    let info = broker.describe_topic("orders").unwrap();
    for partition in &info.partitions {
        assert_eq!(partition.leader, 1);
        assert_eq!(partition.leader_epoch, LeaderEpoch(0));
        assert_eq!(partition.replicas, vec![1]);
        assert_eq!(partition.in_sync_replicas, vec![1]);
    }
}

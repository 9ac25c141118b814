//! Quotas through the real gRPC stack, in process: a produce over its principal's byte-rate
//! quota is answered late, successfully, with the `cairn-throttle-time-ms` header, and
//! `/metrics` shows the throttle time; creations past max_topics or max_partitions are refused
//! with QUOTA_EXCEEDED naming the limit; bad quotas are typed INVALID_ARGUMENT naming the field.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use cairn_proto::v1::admin_client::AdminClient;
use cairn_proto::v1::producer_client::ProducerClient;
use cairn_proto::v1::{
    AddPartitionsRequest, CreateTopicRequest, DeleteTopicRequest, ListQuotasRequest,
    ProduceRequest, QuotaEntity, QuotaLimits, Record, RecordList, RemoveQuotaRequest,
    SetQuotaRequest, produce_request::Payload, quota_entity::Entity,
};
use tonic::Code;

fn default_entity() -> Option<QuotaEntity> {
    Some(QuotaEntity {
        entity: Some(Entity::Default(true)),
    })
}

fn produce(topic: &str, value_bytes: usize) -> ProduceRequest {
    ProduceRequest {
        topic: topic.into(),
        partition: Some(0),
        payload: Some(Payload::Records(RecordList {
            records: vec![Record {
                value: Some(vec![b'x'; value_bytes].into()),
                ..Default::default()
            }],
        })),
        ..Default::default()
    }
}

/// Sets the default quota's `limits` (for every principal without one of its own).
async fn set_default_quota(
    admin: &mut AdminClient<tonic::transport::Channel>,
    limits: QuotaLimits,
) {
    admin
        .set_quota(SetQuotaRequest {
            entity: default_entity(),
            limits: Some(limits),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_produce_over_quota_is_delayed_not_failed_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    common::create_topic(&server.url, "orders", 1).await;
    let mut admin = AdminClient::connect(server.url.clone()).await.unwrap();
    set_default_quota(
        &mut admin,
        QuotaLimits {
            producer_byte_rate: Some(1_000),
            ..Default::default()
        },
    )
    .await;
    let listed = admin
        .list_quotas(ListQuotasRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.quotas.len(), 1);

    // About 3,000 bytes at 1,000 B/s with one second's burst allowed: about two seconds late.
    let mut producer = ProducerClient::connect(server.url.clone()).await.unwrap();
    let answer = producer.produce(produce("orders", 3_000)).await.unwrap();
    let throttle_ms: u64 = answer
        .metadata()
        .get("cairn-throttle-time-ms")
        .expect("a throttled answer has the header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1_500..=2_100).contains(&throttle_ms),
        "throttle {throttle_ms} ms"
    );
    assert!(answer.get_ref().results.iter().all(|r| r.error_code == 0));
    let text = common::metrics_page(server.http).await;
    assert!(
        text.contains(
            "cairn_quota_throttled_requests_total{principal=\"User:ANONYMOUS\",kind=\"produce\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("cairn_quota_throttle_seconds_total{principal=\"User:ANONYMOUS\""));

    // Removed, the quota no longer delays anything.
    admin
        .remove_quota(RemoveQuotaRequest {
            entity: default_entity(),
        })
        .await
        .unwrap();
    let answer = producer.produce(produce("orders", 3_000)).await.unwrap();
    assert!(answer.metadata().get("cairn-throttle-time-ms").is_none());
    server.stop.send(()).unwrap();
}

#[tokio::test]
async fn bad_quotas_are_invalid_argument_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let mut admin = AdminClient::connect(server.url.clone()).await.unwrap();
    let cases = [
        (
            default_entity(),
            QuotaLimits {
                request_rate: Some(0),
                ..Default::default()
            },
            "request_rate",
        ),
        (
            default_entity(),
            QuotaLimits {
                consumer_byte_rate: Some(-1),
                ..Default::default()
            },
            "consumer_byte_rate",
        ),
        (default_entity(), QuotaLimits::default(), "limits"),
        (
            Some(QuotaEntity {
                entity: Some(Entity::Principal("Group:x".into())),
            }),
            QuotaLimits {
                max_topics: Some(1),
                ..Default::default()
            },
            "principal",
        ),
        (
            None,
            QuotaLimits {
                max_topics: Some(1),
                ..Default::default()
            },
            "entity",
        ),
    ];
    for (entity, limits, field) in cases {
        let status = admin
            .set_quota(SetQuotaRequest {
                entity,
                limits: Some(limits),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(status.message().contains(field), "{field}: {status:?}");
    }
    let status = admin
        .remove_quota(RemoveQuotaRequest {
            entity: default_entity(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    server.stop.send(()).unwrap();
}

#[tokio::test]
async fn creations_past_max_topics_or_max_partitions_are_refused_naming_the_limit() {
    use tonic_types::StatusExt;
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let mut admin = AdminClient::connect(server.url.clone()).await.unwrap();
    set_default_quota(
        &mut admin,
        QuotaLimits {
            max_topics: Some(1),
            max_partitions: Some(3),
            ..Default::default()
        },
    )
    .await;
    let create = |name: &str, partitions: i32| CreateTopicRequest {
        name: name.into(),
        partitions,
        ..Default::default()
    };
    let limit_of = |status: tonic::Status| {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "QUOTA_EXCEEDED");
        info.metadata.get("limit").cloned().unwrap_or_default()
    };
    admin.create_topic(create("a", 2)).await.unwrap();
    let refused = admin.create_topic(create("b", 1)).await.unwrap_err();
    assert_eq!(limit_of(refused), "max_topics");
    // Deleting a topic gives its room back.
    admin
        .delete_topic(DeleteTopicRequest { name: "a".into() })
        .await
        .unwrap();
    let refused = admin.create_topic(create("b", 4)).await.unwrap_err();
    assert_eq!(limit_of(refused), "max_partitions");
    admin.create_topic(create("b", 3)).await.unwrap();
    let refused = admin
        .add_partitions(AddPartitionsRequest {
            name: "b".into(),
            total_count: 4,
        })
        .await
        .unwrap_err();
    assert_eq!(limit_of(refused), "max_partitions");
    server.stop.send(()).unwrap();
}

#[tokio::test]
async fn a_subscribe_answer_over_its_consumer_quota_is_held_back_and_counted() {
    use cairn_proto::v1::consumer_client::ConsumerClient;
    use cairn_proto::v1::{FetchFormat, SubscribeRequest};
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    common::create_topic(&server.url, "orders", 1).await;
    for _ in 0..3 {
        let record = Record {
            value: Some(vec![b'x'; 2_000].into()),
            ..Default::default()
        };
        common::produce(&server.url, "orders", 0, vec![record]).await;
    }
    let mut admin = AdminClient::connect(server.url.clone()).await.unwrap();
    set_default_quota(
        &mut admin,
        QuotaLimits {
            consumer_byte_rate: Some(3_000),
            ..Default::default()
        },
    )
    .await;
    let mut consumer = ConsumerClient::connect(server.url.clone()).await.unwrap();
    let mut stream = consumer
        .subscribe(SubscribeRequest {
            topic: "orders".into(),
            partition: 0,
            offset: 0,
            max_bytes: 0,
            format: FetchFormat::Records as i32,
        })
        .await
        .unwrap()
        .into_inner();
    // The first answer (6 kB, past the one second's worth of 3 kB/s) is held back about a
    // second, and the throttle is counted. No timing is asserted here.
    let first = stream.message().await.unwrap().unwrap();
    assert!(!first.records.is_empty());
    let text = common::metrics_page(server.http).await;
    assert!(
        text.contains(
            "cairn_quota_throttled_requests_total{principal=\"User:ANONYMOUS\",kind=\"fetch\"} 1"
        ),
        "{text}"
    );
    server.stop.send(()).unwrap();
}

#[tokio::test]
async fn calls_over_the_request_rate_are_delayed_and_answered() {
    use cairn_proto::v1::ListTopicsRequest;
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let mut admin = AdminClient::connect(server.url.clone()).await.unwrap();
    set_default_quota(
        &mut admin,
        QuotaLimits {
            request_rate: Some(2),
            ..Default::default()
        },
    )
    .await;
    // Two calls a second: the second is within the one-second burst, later ones are delayed.
    let mut throttled = 0;
    for _ in 0..4 {
        let answer = admin
            .list_topics(ListTopicsRequest::default())
            .await
            .unwrap();
        throttled += usize::from(answer.metadata().get("cairn-throttle-time-ms").is_some());
    }
    assert!(throttled >= 1, "no call was throttled");
    let text = common::metrics_page(server.http).await;
    assert!(
        text.contains(
            "cairn_quota_throttled_requests_total{principal=\"User:ANONYMOUS\",kind=\"request\"}"
        ),
        "{text}"
    );
    server.stop.send(()).unwrap();
}

//! `Admin` against an in-process server on loopback: every call, and typed error codes.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::HashMap;

use cairn_client::{Admin, ClientError, ErrorCode};

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_and_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (grpc, stop, server) = common::start(dir.path());
    let brokers = format!("127.0.0.1:1,{grpc}"); // the first address refuses; the second answers
    let admin = common::admin(&brokers).await;

    let configs = HashMap::from([("retention.ms".to_string(), "60000".to_string())]);
    let created = admin.create_topic("orders", 3, 0, configs).await.unwrap();
    assert_eq!(created.partitions.len(), 3);
    assert_eq!(
        admin.list_topics(false).await.unwrap(),
        vec!["orders".to_string()]
    );
    let err = admin
        .create_topic("orders", 3, 0, HashMap::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::TopicAlreadyExists));
    assert!(!err.is_retriable());
    let err = admin
        .create_topic("bad/name", 1, 0, HashMap::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidTopic));
    let err = admin.describe_topic("nope").await.unwrap_err();
    assert!(matches!(
        err,
        ClientError::Broker {
            code: ErrorCode::UnknownTopicOrPartition,
            status: tonic::Code::NotFound,
            ..
        }
    ));

    let grown = admin.add_partitions("orders", 5).await.unwrap();
    assert_eq!(grown.partitions.len(), 5);
    let altered = admin
        .alter_configs(
            "orders",
            HashMap::from([("segment.bytes".to_string(), "1048576".to_string())]),
            vec!["retention.ms".into()],
        )
        .await
        .unwrap();
    assert_eq!(altered.configs["segment.bytes"], "1048576");
    assert_eq!(altered.configs["retention.ms"], "604800000");
    let err = admin
        .alter_configs(
            "orders",
            HashMap::from([("no.such".to_string(), "1".to_string())]),
            vec![],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidConfig));
    admin.delete_topic("orders").await.unwrap();
    assert!(admin.list_topics(false).await.unwrap().is_empty());
    assert_eq!(
        admin.list_topics(true).await.unwrap(),
        vec!["__consumer_offsets".to_string()],
        "only the broker's own topic is left"
    );

    let err = Admin::connect("127.0.0.1:1").await.unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }) && err.is_retriable());
    stop.send(()).unwrap();
    server.await.unwrap();
}

//! `Admin` against an in-process server on loopback: every call, and typed error codes.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use cairn_client::{Admin, ClientError, ErrorCode};
use cairn_server::{ServerConfig, run};

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_and_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let grpc = free_port();
    let cfg = ServerConfig {
        data_dir: dir.path().to_path_buf(),
        grpc_addr: grpc,
        http_addr: free_port(),
        node_id: 1,
        advertised_address: None,
        topic_defaults: cairn_broker::TopicConfig::default(),
        max_partitions: cairn_broker::DEFAULT_MAX_PARTITIONS,
        connections: cairn_server::connections::ConnectionLimits::default(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(cfg, async move {
        let _ = stopped.await;
    }));
    let brokers = format!("127.0.0.1:1,{grpc}"); // the first address refuses; the second answers
    let mut admin = None;
    for _ in 0..200 {
        if let Ok(connected) = Admin::connect(&brokers).await {
            admin = Some(connected);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let admin = admin.expect("the server came up");

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
    server.await.unwrap().unwrap();
}

//! The server over real gRPC on loopback: admin, produce, fetch, offsets, health, and typed
//! error details, through the generated tonic clients.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use cairn_broker::TopicConfig;
use cairn_proto::v1::admin_client::AdminClient;
use cairn_proto::v1::consumer_client::ConsumerClient;
use cairn_proto::v1::producer_client::ProducerClient;
use cairn_proto::v1::{
    CreateTopicRequest, FetchRequest, ListOffsetsRequest, OffsetSpec, ProduceRequest, Record,
    RecordList, produce_request::Payload,
};
use cairn_server::{ServerConfig, run};
use tonic_types::StatusExt;

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn start(
    dir: &std::path::Path,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let grpc = free_port();
    let cfg = ServerConfig {
        data_dir: dir.to_path_buf(),
        grpc_addr: grpc,
        http_addr: free_port(),
        node_id: 1,
        advertised_address: None,
        topic_defaults: TopicConfig::default(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        run(cfg, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    let url = format!("http://{grpc}");
    for _ in 0..200 {
        if AdminClient::connect(url.clone()).await.is_ok() {
            return (url, stop, server);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("server did not come up at {url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_fetch_round_trip_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let (url, stop, server) = start(dir.path()).await;
    let mut admin = AdminClient::connect(url.clone()).await.unwrap();
    let created = admin
        .create_topic(CreateTopicRequest {
            name: "orders".into(),
            partitions: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.topic.unwrap().partitions.len(), 2);

    let mut producer = ProducerClient::connect(url.clone()).await.unwrap();
    let records = (0..10)
        .map(|i| Record {
            key: Some(format!("k{i}").into()),
            value: Some(format!("v{i}").into()),
            ..Default::default()
        })
        .collect();
    let produced = producer
        .produce(ProduceRequest {
            topic: "orders".into(),
            partition: Some(1),
            payload: Some(Payload::Records(RecordList { records })),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(produced.placements.len(), 10);
    assert_eq!(produced.placements[9].offset, 9);

    let mut consumer = ConsumerClient::connect(url.clone()).await.unwrap();
    let fetched = consumer
        .fetch(FetchRequest {
            topic: "orders".into(),
            partition: 1,
            offset: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.high_watermark, 10);
    assert_eq!(fetched.records.len(), 7);
    assert_eq!(fetched.records[0].offset, 3);
    assert_eq!(fetched.records[0].value.as_deref(), Some(&b"v3"[..]));
    let latest = consumer
        .list_offsets(ListOffsetsRequest {
            topic: "orders".into(),
            spec: OffsetSpec::Latest as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        latest.offsets.iter().map(|o| o.offset).collect::<Vec<_>>(),
        vec![0, 10]
    );

    // Errors are typed: a stable reason in the standard ErrorInfo detail.
    let err = consumer
        .fetch(FetchRequest {
            topic: "nope".into(),
            partition: 0,
            offset: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert_eq!(
        err.get_details_error_info().unwrap().reason,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    let err = admin
        .create_topic(CreateTopicRequest {
            name: "bad/name".into(),
            partitions: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.get_details_error_info().unwrap().reason,
        "INVALID_TOPIC"
    );
    let err = consumer
        .fetch(FetchRequest {
            topic: "orders".into(),
            partition: 1,
            offset: 0,
            max_bytes: -1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.get_details_error_info().unwrap().reason,
        "INVALID_REQUEST"
    );

    let channel = tonic::transport::Channel::from_shared(url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    // Idempotent producing: a retry is answered with its first offsets; a gap is refused.
    let id = producer
        .init_producer_id(cairn_proto::v1::InitProducerIdRequest {})
        .await
        .unwrap()
        .into_inner();
    let idempotent = |base_sequence: i32| ProduceRequest {
        topic: "orders".into(),
        partition: Some(0),
        payload: Some(Payload::Records(RecordList {
            records: vec![Record {
                value: Some("x".into()),
                ..Default::default()
            }],
        })),
        producer: Some(cairn_proto::v1::ProducerIdentity {
            producer_id: id.producer_id,
            producer_epoch: id.producer_epoch,
            base_sequence,
        }),
        ..Default::default()
    };
    let first = producer.produce(idempotent(0)).await.unwrap().into_inner();
    let retry = producer.produce(idempotent(0)).await.unwrap().into_inner();
    assert_eq!(first.placements[0].offset, retry.placements[0].offset);
    let err = producer.produce(idempotent(5)).await.unwrap_err();
    assert_eq!(
        err.get_details_error_info().unwrap().reason,
        "OUT_OF_ORDER_SEQUENCE"
    );

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "cairn.v1.Producer".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    stop.send(()).unwrap();
    server.await.unwrap();
}

//! The server over real gRPC on loopback: admin, produce, fetch, offsets, health, and typed
//! error details, through the generated tonic clients; and the activity they leave in the HTTP
//! `/metrics` exposition.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use cairn_codec::batch::{BatchBuilder, Compression, RecordInput};
use cairn_proto::v1::admin_client::AdminClient;
use cairn_proto::v1::consumer_client::ConsumerClient;
use cairn_proto::v1::producer_client::ProducerClient;
use cairn_proto::v1::{
    CreateTopicRequest, FetchFormat, FetchRequest, ListOffsetsRequest, OffsetSpec, ProduceRequest,
    Record, RecordList, produce_request::Payload,
};
use tonic_types::StatusExt;

mod common;

use common::{Started, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_fetch_round_trip_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let Started {
        url, stop, server, ..
    } = start(dir.path()).await;
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

/// The value of the one sample line for `series` (a metric name with its labels).
fn sample(body: &str, series: &str) -> f64 {
    let prefix = format!("{series} ");
    let values: Vec<f64> = body
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.parse().unwrap())
        .collect();
    assert_eq!(values.len(), 1, "want one {series} sample in:\n{body}");
    values[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_produce_and_fetch_activity() {
    let dir = tempfile::tempdir().unwrap();
    let Started {
        url,
        http,
        stop,
        server,
    } = start(dir.path()).await;
    let mut admin = AdminClient::connect(url.clone()).await.unwrap();
    admin
        .create_topic(CreateTopicRequest {
            name: "metered".into(),
            partitions: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let before = common::metrics_page(http).await;
    assert_eq!(
        sample(&before, "cairn_produce_latency_seconds_count{acks=\"all\"}"),
        0.0
    );

    let mut producer = ProducerClient::connect(url.clone()).await.unwrap();
    // Five plain records of 2 key + 3 value bytes each: 25 payload bytes.
    let records = (0..5)
        .map(|i| Record {
            key: Some(format!("k{i}").into()),
            value: Some(format!("v-{i}").into()),
            ..Default::default()
        })
        .collect();
    common::produce(&url, "metered", 0, records).await;
    // And a pre-encoded batch of three, counted by its encoded size.
    let mut builder = BatchBuilder::new(Compression::None);
    for value in [&b"a"[..], b"bb", b"ccc"] {
        let record = RecordInput {
            key: None,
            value: Some(value),
            headers: &[],
            timestamp_ms: 1,
        };
        builder.push(&record).unwrap();
    }
    let batch = builder.build().unwrap();
    let batch_bytes = batch.len() as f64;
    producer
        .produce(ProduceRequest {
            topic: "metered".into(),
            partition: Some(0),
            payload: Some(Payload::RecordBatch(batch)),
            ..Default::default()
        })
        .await
        .unwrap();
    producer
        .produce(ProduceRequest {
            topic: "no-such-topic".into(),
            payload: Some(Payload::Records(RecordList {
                records: vec![Record::default()],
            })),
            ..Default::default()
        })
        .await
        .unwrap_err();

    let mut consumer = ConsumerClient::connect(url.clone()).await.unwrap();
    for format in [FetchFormat::Records, FetchFormat::RecordBatches] {
        consumer
            .fetch(FetchRequest {
                topic: "metered".into(),
                partition: 0,
                offset: 0,
                format: format as i32,
                ..Default::default()
            })
            .await
            .unwrap();
    }

    let body = common::metrics_page(http).await;
    // The offsets the endpoint always reported are still there.
    let watermark = "cairn_partition_high_watermark{topic=\"metered\",partition=\"0\"}";
    assert_eq!(sample(&body, watermark), 8.0);
    let produce_ok = "cairn_produce_requests_total{topic=\"metered\",outcome=\"ok\"}";
    assert_eq!(sample(&body, produce_ok), 2.0);
    let produce_unknown = "cairn_produce_requests_total{topic=\"\",outcome=\"error\"}";
    assert_eq!(sample(&body, produce_unknown), 1.0);
    assert!(!body.contains("no-such-topic"), "{body}");
    let produced = "cairn_produce_records_total{topic=\"metered\"}";
    assert_eq!(sample(&body, produced), 8.0);
    let produced_bytes = "cairn_produce_bytes_total{topic=\"metered\"}";
    assert_eq!(sample(&body, produced_bytes), 25.0 + batch_bytes);
    let latency_count = "cairn_produce_latency_seconds_count{acks=\"all\"}";
    assert_eq!(sample(&body, latency_count), 3.0);
    let latency_inf = "cairn_produce_latency_seconds_bucket{acks=\"all\",le=\"+Inf\"}";
    assert_eq!(sample(&body, latency_inf), 3.0);
    let fetch_ok = "cairn_fetch_requests_total{topic=\"metered\",outcome=\"ok\"}";
    assert_eq!(sample(&body, fetch_ok), 2.0);
    // Decoded records plus the record counts of the raw batches' headers.
    let fetched = "cairn_fetch_records_total{topic=\"metered\"}";
    assert_eq!(sample(&body, fetched), 16.0);
    assert!(sample(&body, "cairn_fetch_bytes_total{topic=\"metered\"}") > 2.0 * batch_bytes);
    assert_eq!(sample(&body, "cairn_fetch_latency_seconds_count"), 2.0);

    stop.send(()).unwrap();
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_group_members_state_and_lag() {
    use cairn_proto::v1::groups_client::GroupsClient;
    use cairn_proto::v1::{CommitOffsetsRequest, HeartbeatRequest, OffsetCommit};
    let dir = tempfile::tempdir().unwrap();
    let Started {
        url,
        http,
        stop,
        server,
    } = start(dir.path()).await;
    let mut admin = AdminClient::connect(url.clone()).await.unwrap();
    admin
        .create_topic(CreateTopicRequest {
            name: "orders".into(),
            partitions: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut producer = ProducerClient::connect(url.clone()).await.unwrap();
    // Created a minute ago, so the lag in seconds has a known floor.
    let minute_ago_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    let records = (0..7)
        .map(|i| Record {
            value: Some(format!("v{i}").into()),
            timestamp_ms: minute_ago_ms + i,
            ..Default::default()
        })
        .collect();
    producer
        .produce(ProduceRequest {
            topic: "orders".into(),
            partition: Some(0),
            payload: Some(Payload::Records(RecordList { records })),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut groups = GroupsClient::connect(url).await.unwrap();
    let member = groups
        .heartbeat(HeartbeatRequest {
            group_id: "billing".into(),
            subscribed_topics: vec!["orders".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    groups
        .commit_offsets(CommitOffsetsRequest {
            group_id: "billing".into(),
            member_id: member.member_id,
            member_epoch: member.member_epoch,
            offsets: vec![OffsetCommit {
                topic: "orders".into(),
                partition: 0,
                offset: 3,
                metadata: String::new(),
            }],
        })
        .await
        .unwrap();
    let body = common::metrics_page(http).await;
    assert_eq!(sample(&body, "cairn_group_members{group=\"billing\"}"), 1.0);
    assert_eq!(
        sample(
            &body,
            "cairn_group_state{group=\"billing\",state=\"stable\"}"
        ),
        1.0
    );
    let p0 = "group=\"billing\",topic=\"orders\",partition=\"0\"";
    assert_eq!(
        sample(&body, &format!("cairn_group_committed_offset{{{p0}}}")),
        3.0
    );
    assert_eq!(sample(&body, &format!("cairn_group_lag{{{p0}}}")), 4.0);
    let p1 = "group=\"billing\",topic=\"orders\",partition=\"1\"";
    assert_eq!(sample(&body, &format!("cairn_group_lag{{{p1}}}")), 0.0);
    // The next record to consume is offset 3, stamped a minute ago plus 3 ms; the bound above
    // is only there to catch a unit mistake (milliseconds reported as seconds).
    let lag_seconds = sample(&body, &format!("cairn_group_lag_seconds{{{p0}}}"));
    assert!((59.99..3600.0).contains(&lag_seconds), "{lag_seconds}");
    // No committed offset on partition 1: no age to report.
    assert!(
        !body.contains(&format!("cairn_group_lag_seconds{{{p1}}}")),
        "{body}"
    );
    assert_eq!(sample(&body, "cairn_group_rebalances_total"), 1.0);
    let heartbeats = "cairn_group_requests_total{method=\"Heartbeat\",code=\"OK\"}";
    assert_eq!(sample(&body, heartbeats), 1.0);
    let commits = "cairn_group_requests_total{method=\"CommitOffsets\",code=\"OK\"}";
    assert_eq!(sample(&body, commits), 1.0);
    let creates = "cairn_admin_requests_total{method=\"CreateTopic\",code=\"OK\"}";
    assert_eq!(sample(&body, creates), 1.0);
    stop.send(()).unwrap();
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_names_leaders_replicas_and_nodes_from_the_broker() {
    use cairn_proto::v1::MetadataRequest;
    use cairn_proto::v1::metadata_client::MetadataClient;

    let dir = tempfile::tempdir().unwrap();
    let Started {
        url, stop, server, ..
    } = start(dir.path()).await;
    common::create_topic(&url, "orders", 2).await;
    let answer = MetadataClient::connect(url.clone())
        .await
        .unwrap()
        .get_metadata(MetadataRequest::default())
        .await
        .unwrap()
        .into_inner();
    // The test server is node 1 and advertises its bound gRPC address.
    assert_eq!(answer.node_id, 1);
    assert_eq!(answer.nodes.len(), 1, "{:?}", answer.nodes);
    assert_eq!(answer.nodes[0].node_id, 1);
    assert_eq!(format!("http://{}", answer.nodes[0].address), url);
    let topic = answer
        .topics
        .iter()
        .find(|t| t.name == "orders")
        .expect("the topic is listed");
    assert_eq!(topic.partitions.len(), 2);
    for (index, partition) in topic.partitions.iter().enumerate() {
        assert_eq!(partition.partition, index as i32);
        assert_eq!(partition.leader_id, 1, "a single node leads everything");
        assert_eq!(partition.leader_epoch, 0);
        assert_eq!(partition.replicas, vec![1]);
        assert_eq!(partition.in_sync_replicas, vec![1]);
    }
    stop.send(()).unwrap();
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_both_of_its_versions_through_either() {
    use tonic_reflection::pb::{v1, v1alpha};
    let dir = tempfile::tempdir().unwrap();
    let Started {
        url, stop, server, ..
    } = start(dir.path()).await;
    let channel = tonic::transport::Channel::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();

    let ask = v1::ServerReflectionRequest {
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
        ..Default::default()
    };
    let answer = v1::server_reflection_client::ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::iter([ask]))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("v1: {answer:?}");
    };
    let through_v1: Vec<String> = list.service.into_iter().map(|s| s.name).collect();

    let ask = v1alpha::ServerReflectionRequest {
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
        ..Default::default()
    };
    let answer = v1alpha::server_reflection_client::ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([ask]))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("v1alpha: {answer:?}");
    };
    let through_v1alpha: Vec<String> = list.service.into_iter().map(|s| s.name).collect();

    for names in [&through_v1, &through_v1alpha] {
        for service in [
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "grpc.health.v1.Health",
            "cairn.v1.Producer",
        ] {
            assert!(
                names.iter().any(|n| n == service),
                "{service} not in {names:?}"
            );
        }
    }
    stop.send(()).unwrap();
    server.await.unwrap();
}

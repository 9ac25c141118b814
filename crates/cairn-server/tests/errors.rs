//! Refusals as a stock gRPC client sees them (tonic's generated clients, and a raw-bytes client
//! for what a generated one cannot send): each with its gRPC code, its ErrorInfo reason, and a
//! message short enough for any client's metadata limits.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use bytes::{Buf, BufMut, Bytes};
use cairn_codec::batch::{BatchBuilder, Compression, ProducerFields, RecordInput, batch_crc};
use cairn_proto::v1::admin_client::AdminClient;
use cairn_proto::v1::consumer_client::ConsumerClient;
use cairn_proto::v1::groups_client::GroupsClient;
use cairn_proto::v1::producer_client::ProducerClient;
use cairn_proto::v1::{
    CreateTopicRequest, FILE_DESCRIPTOR_SET, FetchRequest, HeartbeatRequest, ProduceRequest,
    ProducerIdentity, Record, RecordList, produce_request::Payload,
};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// Bytes no protobuf message decodes: field 1 with wire type 7, which does not exist.
const UNDECODABLE: &[u8] = &[0x0f];
/// Longest message a refusal may carry here: far below grpcio's 8 KiB metadata soft limit.
const MESSAGE_MAX_BYTES: usize = 1200;

/// Sends and receives message bytes as they are, so a test can send what no generated client
/// would encode.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// A channel to the server at `url`.
async fn connect(url: &str) -> Channel {
    Channel::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Stops the server and waits until it has stopped cleanly.
async fn stop(started: common::Started) {
    started.stop.send(()).unwrap();
    started.server.await.unwrap();
}

/// Calls `path` with `message` as the request's bytes and returns the refusal (a stream's
/// first error for streaming methods). Panics when the call succeeds.
async fn raw_call(
    channel: &Channel,
    path: &str,
    streaming_request: bool,
    message: Bytes,
) -> Status {
    let mut grpc = tonic::client::Grpc::new(channel.clone())
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX);
    grpc.ready().await.unwrap();
    let path: http::uri::PathAndQuery = path.parse().unwrap();
    let answer = if streaming_request {
        let requests = tokio_stream::iter(vec![message]);
        grpc.streaming(tonic::Request::new(requests), path.clone(), RawCodec)
            .await
    } else {
        grpc.server_streaming(tonic::Request::new(message), path.clone(), RawCodec)
            .await
    };
    match answer {
        Err(status) => status,
        Ok(stream) => match stream.into_inner().message().await {
            Err(status) => status,
            Ok(answer) => panic!("{path} answered {answer:?}"),
        },
    }
}

/// Asserts `status` has `code`, an ErrorInfo with `reason`, and a short message.
fn assert_refusal(what: &str, status: &Status, code: Code, reason: &str) {
    assert_eq!(status.code(), code, "{what}: {status:?}");
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("{what}: no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, reason, "{what}: {status:?}");
    assert_eq!(info.domain, "cairn.io");
    assert!(
        status.message().len() <= MESSAGE_MAX_BYTES
            && status.details().len() <= 2 * MESSAGE_MAX_BYTES,
        "{what}: {} message bytes, {} detail bytes",
        status.message().len(),
        status.details().len()
    );
    for value in info.metadata.values() {
        assert!(value.len() <= 100, "{what}: metadata value {value:?}");
    }
}

/// Every method of the cairn.v1 API as (path, takes a request stream), from its descriptors.
fn cairn_methods() -> Vec<(String, bool)> {
    let files = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
    let mut methods = Vec::new();
    for file in &files.file {
        for service in &file.service {
            for method in &service.method {
                methods.push((
                    format!("/{}.{}/{}", file.package(), service.name(), method.name()),
                    method.client_streaming(),
                ));
            }
        }
    }
    assert!(methods.len() >= 19, "{methods:?}");
    methods
}

#[tokio::test]
async fn undecodable_requests_are_invalid_argument_on_every_method() {
    let dir = tempfile::tempdir().unwrap();
    let started = common::start(dir.path()).await;
    let channel = connect(&started.url).await;
    let mut methods = cairn_methods();
    methods.push(("/grpc.health.v1.Health/Check".into(), false));
    methods.push(("/grpc.health.v1.Health/Watch".into(), false));
    // Reflection is left out: tonic-reflection ends its stream with OK on an undecodable
    // request (it drops the request stream's error), so there is no refusal to check.
    for (path, streaming) in methods {
        let status = raw_call(&channel, &path, streaming, Bytes::from_static(UNDECODABLE)).await;
        assert_refusal(&path, &status, Code::InvalidArgument, "INVALID_REQUEST");
    }
    stop(started).await;
}

/// Sends `body` to each unary method of `paths` on a fresh broker and checks each refusal.
async fn each_refuses(paths: &[&str], body: Bytes, code: Code, reason: &str) {
    let dir = tempfile::tempdir().unwrap();
    let started = common::start(dir.path()).await;
    let channel = connect(&started.url).await;
    for path in paths {
        let status = raw_call(&channel, path, false, body.clone()).await;
        assert_refusal(path, &status, code, reason);
    }
    stop(started).await;
}

#[tokio::test]
async fn oversized_requests_are_resource_exhausted_on_every_service() {
    let huge = Bytes::from(vec![0_u8; cairn_server::MAX_REQUEST_BYTES + 1]);
    let paths = [
        "/cairn.v1.Producer/Produce",
        "/cairn.v1.Consumer/Fetch",
        "/cairn.v1.Consumer/Subscribe",
        "/cairn.v1.Consumer/ListOffsets",
        "/cairn.v1.Admin/CreateTopic",
        "/cairn.v1.Groups/Heartbeat",
        "/cairn.v1.Metadata/GetMetadata",
        "/grpc.health.v1.Health/Check",
    ];
    each_refuses(&paths, huge, Code::ResourceExhausted, "REQUEST_TOO_LARGE").await;
}

#[tokio::test]
async fn requests_over_tonics_default_limit_are_decoded_by_every_service() {
    // 5 MiB: above tonic's 4 MiB default, below MAX_REQUEST_BYTES. Every Cairn service decodes
    // it (and refuses its zeros as undecodable), none answers REQUEST_TOO_LARGE.
    let large = Bytes::from(vec![0_u8; 5 << 20]);
    let paths = [
        "/cairn.v1.Producer/Produce",
        "/cairn.v1.Consumer/Fetch",
        "/cairn.v1.Admin/CreateTopic",
        "/cairn.v1.Groups/Heartbeat",
        "/cairn.v1.Groups/DescribeGroup",
        "/cairn.v1.Metadata/GetMetadata",
    ];
    each_refuses(&paths, large, Code::InvalidArgument, "INVALID_REQUEST").await;
}

#[tokio::test]
async fn a_ten_thousand_character_name_is_refused_with_a_short_message() {
    let dir = tempfile::tempdir().unwrap();
    let started = common::start(dir.path()).await;
    let url = started.url.clone();
    let name = "t".repeat(10_000);

    let mut admin = AdminClient::connect(url.clone()).await.unwrap();
    let status = admin
        .create_topic(CreateTopicRequest {
            name: name.clone(),
            partitions: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_refusal("create", &status, Code::InvalidArgument, "INVALID_TOPIC");
    let topic = &status.get_details_error_info().unwrap().metadata["topic"];
    assert_eq!(*topic, format!("{}…(10000 bytes)", "t".repeat(64)));
    assert!(
        status.message().contains("…(10000 bytes)"),
        "{}",
        status.message()
    );

    let status = ProducerClient::connect(url.clone())
        .await
        .unwrap()
        .produce(ProduceRequest {
            topic: name.clone(),
            partition: Some(0),
            payload: Some(Payload::Records(RecordList {
                records: vec![Record::default()],
            })),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_refusal(
        "produce",
        &status,
        Code::NotFound,
        "UNKNOWN_TOPIC_OR_PARTITION",
    );

    let status = ConsumerClient::connect(url.clone())
        .await
        .unwrap()
        .fetch(FetchRequest {
            topic: name.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_refusal(
        "fetch",
        &status,
        Code::NotFound,
        "UNKNOWN_TOPIC_OR_PARTITION",
    );

    let status = GroupsClient::connect(url.clone())
        .await
        .unwrap()
        .heartbeat(HeartbeatRequest {
            group_id: name.clone(),
            subscribed_topics: vec!["orders".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_refusal(
        "heartbeat",
        &status,
        Code::InvalidArgument,
        "INVALID_GROUP_ID",
    );

    let status = admin
        .create_topic(CreateTopicRequest {
            name: "orders".into(),
            partitions: 1,
            configs: [("k".repeat(10_000), "v".repeat(10_000))].into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_refusal("config", &status, Code::InvalidArgument, "INVALID_CONFIG");
    stop(started).await;
}

/// A one-record batch of `producer_id` at sequence 0, with `extra` attribute bits set.
fn batch(producer_id: i64, extra: u16) -> Bytes {
    const ATTRIBUTES_POS: usize = 21;
    const CRC_POS: usize = 17;
    let mut builder = BatchBuilder::new(Compression::None);
    builder.set_producer(ProducerFields {
        producer_id,
        producer_epoch: 0,
        base_sequence: 0,
    });
    builder
        .push(&RecordInput {
            key: Some(b"k"),
            value: Some(b"v"),
            headers: &[],
            timestamp_ms: 1,
        })
        .unwrap();
    let mut bytes = builder.build().unwrap().to_vec();
    let attributes = u16::from_be_bytes([bytes[ATTRIBUTES_POS], bytes[ATTRIBUTES_POS + 1]]);
    bytes[ATTRIBUTES_POS..ATTRIBUTES_POS + 2].copy_from_slice(&(attributes | extra).to_be_bytes());
    let crc = batch_crc(&bytes).unwrap();
    bytes[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(bytes)
}

#[tokio::test]
async fn unknown_producers_and_transactional_batches_are_refused_with_their_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let started = common::start(dir.path()).await;
    common::create_topic(&started.url, "orders", 1).await;
    let mut producer = ProducerClient::connect(started.url.clone()).await.unwrap();
    let status = producer
        .produce(ProduceRequest {
            topic: "orders".into(),
            partition: Some(0),
            producer: Some(ProducerIdentity {
                producer_id: 777_777,
                producer_epoch: 0,
                base_sequence: 0,
            }),
            payload: Some(Payload::Records(RecordList {
                records: vec![Record::default()],
            })),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_refusal(
        "unknown id",
        &status,
        Code::FailedPrecondition,
        "UNKNOWN_PRODUCER_ID",
    );
    let info = status.get_details_error_info().unwrap();
    assert_eq!(info.metadata["producer_id"], "777777");

    let issued = producer
        .init_producer_id(cairn_proto::v1::InitProducerIdRequest::default())
        .await
        .unwrap()
        .into_inner()
        .producer_id;
    let send = |batch: Bytes| ProduceRequest {
        topic: "orders".into(),
        partition: Some(0),
        payload: Some(Payload::RecordBatch(batch)),
        ..Default::default()
    };
    let status = producer
        .produce(send(batch(issued, 1 << 4)))
        .await
        .unwrap_err();
    assert_refusal(
        "transactional",
        &status,
        Code::Unimplemented,
        "TRANSACTIONS_UNSUPPORTED",
    );
    let status = producer
        .produce(send(batch(issued, 1 << 5)))
        .await
        .unwrap_err();
    assert_refusal("control", &status, Code::InvalidArgument, "INVALID_RECORD");
    let status = producer
        .produce(send(batch(issued + 1, 0)))
        .await
        .unwrap_err();
    assert_refusal(
        "unissued batch",
        &status,
        Code::FailedPrecondition,
        "UNKNOWN_PRODUCER_ID",
    );
    let written = producer.produce(send(batch(issued, 0))).await.unwrap();
    assert_eq!(
        written.into_inner().results[0].base_offset,
        0,
        "nothing refused was written"
    );
    stop(started).await;
}

#[tokio::test]
async fn a_sequence_gap_names_the_producer_topic_and_partition() {
    let dir = tempfile::tempdir().unwrap();
    let started = common::start(dir.path()).await;
    common::create_topic(&started.url, "orders", 2).await;
    let mut producer = ProducerClient::connect(started.url.clone()).await.unwrap();
    let issued = producer
        .init_producer_id(cairn_proto::v1::InitProducerIdRequest::default())
        .await
        .unwrap()
        .into_inner();
    let at = |base_sequence: i32| ProduceRequest {
        topic: "orders".into(),
        partition: Some(1),
        producer: Some(ProducerIdentity {
            producer_id: issued.producer_id,
            producer_epoch: issued.producer_epoch,
            base_sequence,
        }),
        payload: Some(Payload::Records(RecordList {
            records: vec![Record::default()],
        })),
        ..Default::default()
    };
    producer.produce(at(0)).await.unwrap();
    let status = producer.produce(at(5)).await.unwrap_err();
    assert_refusal(
        "gap",
        &status,
        Code::FailedPrecondition,
        "OUT_OF_ORDER_SEQUENCE",
    );
    let metadata = status.get_details_error_info().unwrap().metadata;
    assert_eq!(metadata["producer_id"], issued.producer_id.to_string());
    assert_eq!(metadata["topic"], "orders");
    assert_eq!(metadata["partition"], "1");
    stop(started).await;
}

#[tokio::test]
async fn a_refused_partition_count_names_its_topic() {
    let dir = tempfile::tempdir().unwrap();
    let started = common::start(dir.path()).await;
    common::create_topic(&started.url, "orders", 3).await;
    let mut admin = AdminClient::connect(started.url.clone()).await.unwrap();
    for total_count in [2, 5000] {
        let status = admin
            .add_partitions(cairn_proto::v1::AddPartitionsRequest {
                name: "orders".into(),
                total_count,
            })
            .await
            .unwrap_err();
        let what = format!("to {total_count}");
        assert_refusal(&what, &status, Code::InvalidArgument, "INVALID_PARTITIONS");
        assert!(status.message().contains("orders"), "{}", status.message());
        let metadata = status.get_details_error_info().unwrap().metadata;
        assert_eq!(metadata["topic"], "orders", "{what}");
    }
    stop(started).await;
}

#[tokio::test]
async fn a_heartbeat_owning_a_negative_partition_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let started = common::start(dir.path()).await;
    common::create_topic(&started.url, "orders", 2).await;
    let mut groups = GroupsClient::connect(started.url.clone()).await.unwrap();
    let joined = groups
        .heartbeat(HeartbeatRequest {
            group_id: "billing".into(),
            subscribed_topics: vec!["orders".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let owning = |partitions: Vec<i32>| HeartbeatRequest {
        group_id: "billing".into(),
        member_id: joined.member_id.clone(),
        member_epoch: joined.member_epoch,
        owned_partitions: vec![cairn_proto::v1::TopicPartitions {
            topic: "orders".into(),
            partitions,
        }],
        ..Default::default()
    };
    let status = groups.heartbeat(owning(vec![0, -3])).await.unwrap_err();
    assert_refusal(
        "negative",
        &status,
        Code::InvalidArgument,
        "INVALID_REQUEST",
    );
    assert!(
        status.message().contains("-3") && status.message().contains("orders"),
        "{}",
        status.message()
    );
    // Past the partition count: ignored, as Kafka's coordinator does (see HeartbeatInput).
    let answer = groups
        .heartbeat(owning(vec![0, 1, 9]))
        .await
        .unwrap()
        .into_inner();
    let assigned: Vec<i32> = answer
        .assignment
        .iter()
        .flat_map(|t| t.partitions.clone())
        .collect();
    assert_eq!(assigned, vec![0, 1]);
    stop(started).await;
}

#[tokio::test]
async fn a_fetch_naming_a_member_without_its_group_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let started = common::start(dir.path()).await;
    common::create_topic(&started.url, "orders", 1).await;
    let mut consumer = ConsumerClient::connect(started.url.clone()).await.unwrap();
    for (member_id, member_epoch) in [("cairn-1-zombie", 0), ("", 3)] {
        let status = consumer
            .fetch(FetchRequest {
                topic: "orders".into(),
                member_id: member_id.into(),
                member_epoch,
                ..Default::default()
            })
            .await
            .unwrap_err();
        let what = format!("{member_id:?} at {member_epoch}");
        assert_refusal(&what, &status, Code::InvalidArgument, "INVALID_REQUEST");
        let message = status.message();
        assert!(
            message.contains("member_id") && message.contains("group_id"),
            "{what}: {message}"
        );
    }
    // Neither set: a plain fetch.
    consumer
        .fetch(FetchRequest {
            topic: "orders".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    stop(started).await;
}

#[tokio::test]
async fn a_timestamp_below_minus_one_is_refused_naming_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let started = common::start(dir.path()).await;
    common::create_topic(&started.url, "orders", 1).await;
    let mut producer = ProducerClient::connect(started.url.clone()).await.unwrap();
    let stamped = |timestamps: &[i64]| ProduceRequest {
        topic: "orders".into(),
        partition: Some(0),
        payload: Some(Payload::Records(RecordList {
            records: timestamps
                .iter()
                .map(|&timestamp_ms| Record {
                    value: Some(b"v".to_vec().into()),
                    timestamp_ms,
                    ..Default::default()
                })
                .collect(),
        })),
        ..Default::default()
    };
    let status = producer.produce(stamped(&[5, -1, -5])).await.unwrap_err();
    assert_refusal("-5", &status, Code::InvalidArgument, "INVALID_TIMESTAMP");
    let metadata = status.get_details_error_info().unwrap().metadata;
    assert_eq!(metadata["record_index"], "2");
    assert!(
        status.message().contains("record 2") && status.message().contains("-5"),
        "{}",
        status.message()
    );
    // -1 is Kafka's "no timestamp": taken, and nothing of the refused request was written.
    let written = producer.produce(stamped(&[-1])).await.unwrap().into_inner();
    assert_eq!(written.results[0].base_offset, 0);
    stop(started).await;
}

#[tokio::test]
async fn list_offsets_naming_a_partition_twice_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let started = common::start(dir.path()).await;
    common::create_topic(&started.url, "orders", 3).await;
    let mut consumer = ConsumerClient::connect(started.url.clone()).await.unwrap();
    let status = consumer
        .list_offsets(cairn_proto::v1::ListOffsetsRequest {
            topic: "orders".into(),
            partitions: vec![2, 0, 2],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_refusal("twice", &status, Code::InvalidArgument, "INVALID_REQUEST");
    let metadata = status.get_details_error_info().unwrap().metadata;
    assert_eq!(
        (metadata["topic"].as_str(), metadata["partition"].as_str()),
        ("orders", "2")
    );
    // Each once: one answer per partition asked for.
    let answer = consumer
        .list_offsets(cairn_proto::v1::ListOffsetsRequest {
            topic: "orders".into(),
            partitions: vec![2, 0],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let answered: Vec<i32> = answer.offsets.iter().map(|o| o.partition).collect();
    assert_eq!(answered, vec![0, 2]);
    stop(started).await;
}

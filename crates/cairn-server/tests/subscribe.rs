//! `Subscribe` through tonic's generated client, as any stock gRPC client sees it: the broker
//! frames these answers itself (batches sent from the segment map without a copy), so this
//! checks that what arrives is plain `FetchResponse` messages and plain gRPC statuses.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use cairn_codec::batch::Batch;
use cairn_proto::v1::consumer_client::ConsumerClient;
use cairn_proto::v1::{FetchFormat, Record, SubscribeRequest};
use tonic_types::StatusExt;

mod common;

use common::{Started, start};

/// Produces records `k{i}`/`v{i}` for `i` in `first..first + count` to partition 0 of `orders`.
async fn produce(url: &str, first: usize, count: usize) {
    let records = (first..first + count)
        .map(|i| Record {
            key: Some(format!("k{i}").into()),
            value: Some(format!("v{i}").into()),
            ..Default::default()
        })
        .collect();
    common::produce(url, "orders", 0, records).await;
}

fn subscribe(offset: i64, format: FetchFormat) -> SubscribeRequest {
    SubscribeRequest {
        topic: "orders".into(),
        partition: 0,
        offset,
        max_bytes: 0,
        format: format as i32,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_client_reads_both_formats_and_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let Started {
        url, stop, server, ..
    } = start(dir.path()).await;
    common::create_topic(&url, "orders", 1).await;
    produce(&url, 0, 4).await;
    produce(&url, 4, 6).await;
    let mut consumer = ConsumerClient::connect(url.clone()).await.unwrap();

    // Raw batches: whole stored batches, the first of which may start before the offset.
    let mut stream = consumer
        .subscribe(subscribe(2, FetchFormat::RecordBatches))
        .await
        .unwrap()
        .into_inner();
    let answer = stream.message().await.unwrap().unwrap();
    assert_eq!(
        (answer.partition, answer.high_watermark, answer.next_offset),
        (0, 10, 10)
    );
    assert!(answer.records.is_empty());
    let mut rest = answer.record_batches.clone();
    let mut offsets = Vec::new();
    while !rest.is_empty() {
        let batch = Batch::validate_prefix(&rest).unwrap();
        rest = rest.slice(batch.len_bytes()..);
        let base = batch.header().base_offset;
        for record in batch.records(1 << 20).unwrap().iter() {
            let record = record.unwrap();
            let offset = base + i64::from(record.offset_delta);
            assert_eq!(record.value, Some(format!("v{offset}").as_bytes()));
            offsets.push(offset);
        }
    }
    assert_eq!(offsets, (0..10).collect::<Vec<_>>());
    // The stream goes on with what is produced later.
    produce(&url, 10, 1).await;
    let later = stream.message().await.unwrap().unwrap();
    assert_eq!(later.next_offset, 11);
    assert!(!later.record_batches.is_empty());
    drop(stream);

    // Decoded records start exactly at the offset asked for.
    let mut stream = consumer
        .subscribe(subscribe(3, FetchFormat::Records))
        .await
        .unwrap()
        .into_inner();
    let answer = stream.message().await.unwrap().unwrap();
    assert!(answer.record_batches.is_empty());
    let offsets: Vec<i64> = answer.records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (3..11).collect::<Vec<_>>());
    assert_eq!(answer.records[0].key.as_deref(), Some(&b"k3"[..]));
    drop(stream);

    // Refusals are gRPC statuses with the broker's error code, as from any other call.
    let mut unknown = subscribe(0, FetchFormat::RecordBatches);
    unknown.topic = "nope".into();
    let err = consumer.subscribe(unknown).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert_eq!(
        err.get_details_error_info().unwrap().reason,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    let mut negative = subscribe(0, FetchFormat::RecordBatches);
    negative.max_bytes = -1;
    let err = consumer.subscribe(negative).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let mut format = subscribe(0, FetchFormat::RecordBatches);
    format.format = 99;
    let err = consumer.subscribe(format).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    // Past the end of the log: the stream opens, and its first answer is the error.
    let mut stream = consumer
        .subscribe(subscribe(500, FetchFormat::RecordBatches))
        .await
        .unwrap()
        .into_inner();
    let err = stream.message().await.unwrap_err();
    let info = err.get_details_error_info().unwrap();
    assert_eq!(info.reason, "OFFSET_OUT_OF_RANGE");
    // The log's own words do not name the partition; the answer does, in metadata and message.
    assert_eq!(
        (
            info.metadata["topic"].as_str(),
            info.metadata["partition"].as_str()
        ),
        ("orders", "0"),
        "{err:?}"
    );
    assert!(err.message().starts_with("orders-0: "), "{err:?}");

    stop.send(()).unwrap();
    server.await.unwrap();
}

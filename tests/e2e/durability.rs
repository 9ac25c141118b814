//! The promise that matters most, through the real binary: under `flush.policy=always` with
//! acks=all, a `kill -9` of the broker in the middle of concurrent produces loses no
//! acknowledged record, and after a restart every one is readable at the offset it was
//! acknowledged with, with offsets dense from 0.
//!
//! A `kill -9` is a process crash: the page cache survives it, so this checks that nothing is
//! acknowledged before it is written and that recovery keeps it all. What a power loss does to
//! unsynced pages is modelled on the files themselves by cairn-log's torn-tail tests.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cairn_proto::v1::admin_client::AdminClient;
use cairn_proto::v1::consumer_client::ConsumerClient;
use cairn_proto::v1::producer_client::ProducerClient;
use cairn_proto::v1::{
    CreateTopicRequest, FetchRequest, ProduceRequest, Record, RecordList, produce_request::Payload,
};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_produce_loses_no_acknowledged_record() {
    let data = tempfile::tempdir().unwrap();
    let (server, grpc) = start_broker(data.path());
    let url = format!("http://{grpc}");
    let mut admin = AdminClient::connect(url.clone()).await.unwrap();
    admin
        .create_topic(CreateTopicRequest {
            name: "orders".into(),
            partitions: 2,
            ..Default::default()
        })
        .await
        .unwrap();

    // Acknowledged records: (partition, offset) -> value.
    let acked: Arc<Mutex<BTreeMap<(i32, i64), String>>> = Arc::default();
    // Set just before the kill: a failure before it is the test's failure, after it the end.
    let killing = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..4)
        .map(|producer| {
            let (url, acked) = (url.clone(), Arc::clone(&acked));
            let killing = Arc::clone(&killing);
            tokio::spawn(async move {
                let mut client = ProducerClient::connect(url).await.unwrap();
                for seq in 0.. {
                    let value = format!("p{producer}-{seq}");
                    let records = (0..5)
                        .map(|i| Record {
                            value: Some(format!("{value}-{i}").into()),
                            ..Default::default()
                        })
                        .collect();
                    let request = ProduceRequest {
                        topic: "orders".into(),
                        partition: Some(producer % 2),
                        payload: Some(Payload::Records(RecordList { records })),
                        ..Default::default()
                    };
                    // After the kill, calls fail: stop. Only answers count as acknowledgements.
                    let response = match client.produce(request).await {
                        Ok(response) => response,
                        Err(_) if killing.load(Ordering::SeqCst) => return,
                        Err(err) => panic!("produce failed before the kill: {err}"),
                    };
                    let mut acked = acked.lock().unwrap();
                    for (i, placement) in response.into_inner().placements.iter().enumerate() {
                        acked.insert(
                            (placement.partition, placement.offset),
                            format!("{value}-{i}"),
                        );
                    }
                }
            })
        })
        .collect();
    // Let a few hundred produces be acknowledged, then kill -9 mid-stream.
    let deadline = Instant::now() + PATIENCE;
    while acked.lock().unwrap().len() < 2000 {
        assert!(
            !producers.iter().all(|p| p.is_finished()),
            "every producer stopped before 2000 acknowledgements"
        );
        assert!(
            Instant::now() < deadline,
            "2000 acknowledgements never came"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    killing.store(true, Ordering::SeqCst);
    send(&server, libc::SIGKILL);
    let _ = wait_exit(server);
    for producer in producers {
        producer.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    let (server, grpc) = start_broker(data.path());
    let url = format!("http://{grpc}");
    let mut consumer = ConsumerClient::connect(url).await.unwrap();
    let mut stored: BTreeMap<(i32, i64), String> = BTreeMap::new();
    for partition in 0..2 {
        let mut offset = 0;
        loop {
            let request = FetchRequest {
                topic: "orders".into(),
                partition,
                offset,
                max_bytes: 1 << 20,
                ..Default::default()
            };
            let response = consumer.fetch(request).await.unwrap().into_inner();
            if response.records.is_empty() {
                break;
            }
            for record in &response.records {
                assert_eq!(
                    record.offset,
                    stored.keys().filter(|(p, _)| *p == partition).count() as i64,
                    "dense offsets"
                );
                stored.insert(
                    (partition, record.offset),
                    String::from_utf8(record.value.clone().unwrap().to_vec()).unwrap(),
                );
            }
            offset = response.next_offset;
        }
    }
    for (place, value) in &acked {
        assert_eq!(
            stored.get(place),
            Some(value),
            "acknowledged record at {place:?} lost or changed"
        );
    }
    assert!(stored.len() >= acked.len());
    send(&server, libc::SIGTERM);
    assert!(wait_exit(server).status.success());
}

//! The broker core without the network: topic admin, produce with Kafka's partitioning, fetch
//! with long polls, offset lookups, and a restart that keeps everything.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_broker::StorageErrorKind;
use cairn_broker::{
    AckLevel, Broker, BrokerError, FetchRequest, OffsetQuery, ProducePayload, ProduceRecord,
    ProduceRequest, decode_records, partition_for_key,
};
use cairn_log::Offset;
use cairn_log::batch::{BatchBuilder, Compression, RecordInput, encode_meta_entry};

use common::open;

fn keyed(key: &str, value: &str) -> ProduceRecord {
    ProduceRecord {
        key: Some(Bytes::from(key.to_string())),
        value: Some(Bytes::from(value.to_string())),
        ..Default::default()
    }
}

fn records_request(
    topic: &str,
    partition: Option<i64>,
    records: Vec<ProduceRecord>,
) -> ProduceRequest {
    ProduceRequest {
        topic: topic.to_string(),
        partition,
        acks: AckLevel::All,
        payload: ProducePayload::Records {
            records,
            compression: Compression::None,
        },
        producer: None,
    }
}

async fn fetch_all(broker: &Broker, topic: &str, partition: i64) -> Vec<(u64, String, String)> {
    let mut out = Vec::new();
    let mut offset = 0i64;
    loop {
        let request = FetchRequest {
            topic: topic.into(),
            partition,
            offset,
            max_bytes: 0,
            max_wait: Duration::ZERO,
            min_bytes: 1,
            group: None,
        };
        let read = broker.fetch(&request).await.unwrap();
        if read.is_empty() {
            return out;
        }
        for record in decode_records(&read, Offset(offset as u64), 1 << 20).unwrap() {
            let key = String::from_utf8(record.key.unwrap().to_vec()).unwrap();
            let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
            out.push((record.offset.0, key, value));
        }
        offset = read.next_offset().as_i64();
    }
}

#[tokio::test]
async fn topic_admin_validates_names_counts_and_configs() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    let info = broker
        .create_topic("orders", 3, 1, &[("retention.ms".into(), "60000".into())])
        .await
        .unwrap();
    assert_eq!(info.partitions.len(), 3);
    assert!(
        info.configs
            .contains(&("retention.ms".to_string(), "60000".to_string()))
    );
    assert!(matches!(
        broker.create_topic("orders", 3, 1, &[]).await,
        Err(BrokerError::TopicExists { .. })
    ));
    for bad in ["", "bad/name", "..", &"x".repeat(300)] {
        assert!(
            matches!(
                broker.create_topic(bad, 1, 1, &[]).await,
                Err(BrokerError::InvalidTopicName { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        broker.create_topic("t", 0, 1, &[]).await,
        Err(BrokerError::InvalidPartitions { .. })
    ));
    assert!(matches!(
        broker.create_topic("t", -1, 1, &[]).await,
        Err(BrokerError::InvalidPartitions { .. })
    ));
    let err = broker
        .create_topic("t", 1, 1, &[("no.such".into(), "1".into())])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no.such"), "{err}");
    let err = broker
        .create_topic("t", 1, 1, &[("retention.ms".into(), "soon".into())])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("retention.ms"), "{err}");
    assert_eq!(broker.list_topics(false), vec!["orders".to_string()]);

    let info = broker.add_partitions("orders", 5).await.unwrap();
    assert_eq!(info.partitions.len(), 5);
    assert!(matches!(
        broker.add_partitions("orders", 2).await,
        Err(BrokerError::InvalidPartitions { .. })
    ));
    let info = broker
        .alter_configs(
            "orders",
            &[("segment.bytes".into(), "1048576".into())],
            &["retention.ms".into()],
        )
        .await
        .unwrap();
    assert!(
        info.configs
            .contains(&("segment.bytes".to_string(), "1048576".to_string()))
    );
    assert!(
        info.configs
            .contains(&("retention.ms".to_string(), "604800000".to_string()))
    );
    assert!(
        broker
            .alter_configs("orders", &[("segment.bytes".into(), "-1".into())], &[])
            .await
            .is_err()
    );
    // One key both set and deleted is refused, naming it, and nothing changes.
    let both = broker
        .alter_configs(
            "orders",
            &[("retention.ms".into(), "1000".into())],
            &["retention.ms".into()],
        )
        .await
        .unwrap_err();
    assert!(both.to_string().contains("retention.ms"), "{both}");
    assert!(
        broker
            .describe_topic("orders")
            .unwrap()
            .configs
            .contains(&("retention.ms".to_string(), "604800000".to_string()))
    );

    broker.shutdown().await;
    drop(broker);
    let broker = open(dir.path()).await;
    let info = broker.describe_topic("orders").unwrap();
    assert_eq!(info.partitions.len(), 5);
    assert!(
        info.configs
            .contains(&("segment.bytes".to_string(), "1048576".to_string()))
    );
    broker.delete_topic("orders").await.unwrap();
    assert_eq!(
        broker.list_topics(true),
        vec!["__consumer_offsets".to_string()]
    );
    assert!(!dir.path().join("orders-0").exists());
    assert!(matches!(
        broker.describe_topic("orders"),
        Err(BrokerError::UnknownTopic { .. })
    ));
}

#[tokio::test]
async fn keyed_records_land_where_kafka_would_put_them_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker.create_topic("orders", 4, 1, &[]).await.unwrap();
    let mut expected: Vec<Vec<(String, String)>> = vec![Vec::new(); 4];
    for round in 0..5 {
        let records: Vec<ProduceRecord> = (0..40)
            .map(|i| keyed(&format!("customer-{}", i % 13), &format!("{round}-{i}")))
            .collect();
        let result = broker
            .produce(records_request("orders", None, records.clone()))
            .await
            .unwrap();
        for (record, (partition, offset)) in records.iter().zip(&result.placements) {
            let key = record.key.as_ref().unwrap();
            assert_eq!(
                *partition,
                partition_for_key(key, NonZeroU32::new(4).unwrap())
            );
            let list = &mut expected[*partition as usize];
            assert_eq!(
                offset.unwrap().0,
                list.len() as u64,
                "dense offsets per partition"
            );
            list.push((
                String::from_utf8(key.to_vec()).unwrap(),
                String::from_utf8(record.value.clone().unwrap().to_vec()).unwrap(),
            ));
        }
    }
    for partition in 0..4 {
        let got: Vec<(String, String)> = fetch_all(&broker, "orders", partition)
            .await
            .into_iter()
            .map(|(_, k, v)| (k, v))
            .collect();
        assert_eq!(got, expected[partition as usize]);
    }
}

#[tokio::test]
async fn keyless_records_of_one_request_stay_together() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker.create_topic("events", 6, 1, &[]).await.unwrap();
    let mut used = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let records = (0..10)
            .map(|i| ProduceRecord {
                value: Some(Bytes::from(format!("v{i}"))),
                ..Default::default()
            })
            .collect();
        let result = broker
            .produce(records_request("events", None, records))
            .await
            .unwrap();
        assert_eq!(
            result.partitions.len(),
            1,
            "a request's keyless records share a partition"
        );
        used.insert(result.partitions[0].partition);
    }
    assert!(used.len() > 1, "requests spread over partitions: {used:?}");
}

#[tokio::test]
async fn pre_encoded_batches_are_validated_and_stored_as_sent() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker.create_topic("orders", 2, 1, &[]).await.unwrap();
    let mut builder = BatchBuilder::new(Compression::Lz4);
    for i in 0..5 {
        let value = format!("v{i}");
        builder
            .push(&RecordInput {
                key: Some(b"k"),
                value: Some(value.as_bytes()),
                headers: &[],
                timestamp_ms: 1000 + i,
            })
            .unwrap();
    }
    let bytes = builder.build().unwrap();
    let request = |payload: Bytes, partition: Option<i64>| ProduceRequest {
        topic: "orders".into(),
        partition,
        acks: AckLevel::All,
        payload: ProducePayload::Batch(payload),
        producer: None,
    };
    let result = broker
        .produce(request(bytes.clone(), Some(1)))
        .await
        .unwrap();
    assert_eq!(result.partitions[0].base_offset, Some(Offset(0)));
    let read = broker
        .fetch(&FetchRequest {
            topic: "orders".into(),
            partition: 1,
            offset: 0,
            max_bytes: 0,
            max_wait: Duration::ZERO,
            min_bytes: 1,
            group: None,
        })
        .await
        .unwrap();
    assert_eq!(
        &read.data()[16..],
        &bytes[16..],
        "stored byte for byte after the assigned fields"
    );

    let mut corrupt = bytes.to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(
        broker
            .produce(request(Bytes::from(corrupt), Some(1)))
            .await
            .is_err()
    );
    let meta = encode_meta_entry(b"sneaky", 0).unwrap();
    assert!(
        broker.produce(request(meta, Some(1))).await.is_err(),
        "control batches cannot be produced"
    );
    assert!(
        broker.produce(request(bytes.clone(), None)).await.is_err(),
        "a batch needs a partition"
    );
    assert!(matches!(
        broker.produce(request(bytes.clone(), Some(2))).await,
        Err(BrokerError::UnknownPartition { .. })
    ));
    assert_eq!(
        broker
            .list_offset("orders", 1, OffsetQuery::Latest)
            .unwrap(),
        Offset(5)
    );
}

#[tokio::test]
async fn a_long_poll_fetch_wakes_when_data_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(open(dir.path()).await);
    broker.create_topic("orders", 1, 1, &[]).await.unwrap();
    let request = FetchRequest {
        topic: "orders".into(),
        partition: 0,
        offset: 0,
        max_bytes: 0,
        max_wait: Duration::ZERO,
        min_bytes: 1,
        group: None,
    };
    assert!(
        broker.fetch(&request).await.unwrap().is_empty(),
        "no wait, no data"
    );
    let waiting = {
        let broker = Arc::clone(&broker);
        let request = FetchRequest {
            max_wait: Duration::from_secs(20),
            ..request.clone()
        };
        tokio::spawn(async move { broker.fetch(&request).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    broker
        .produce(records_request("orders", Some(0), vec![keyed("a", "b")]))
        .await
        .unwrap();
    let read = waiting.await.unwrap().unwrap();
    assert!(!read.is_empty(), "the waiting fetch saw the record");
    let err = broker
        .fetch(&FetchRequest {
            max_bytes: -1,
            ..request.clone()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::InvalidRequest(_)), "{err}");
    let err = broker
        .fetch(&FetchRequest {
            offset: 5,
            ..request
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BrokerError::Log(e) if e.kind() == StorageErrorKind::OffsetOutOfRange),
        "{err}"
    );
}

#[tokio::test]
async fn offsets_by_time_and_a_restart_keep_everything() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker.create_topic("orders", 1, 1, &[]).await.unwrap();
    for ts in [1000i64, 2000, 3000] {
        let record = ProduceRecord {
            timestamp_ms: ts,
            ..keyed("k", &ts.to_string())
        };
        broker
            .produce(records_request("orders", Some(0), vec![record]))
            .await
            .unwrap();
    }
    assert_eq!(
        broker
            .list_offset("orders", 0, OffsetQuery::Earliest)
            .unwrap(),
        Offset(0)
    );
    assert_eq!(
        broker
            .list_offset("orders", 0, OffsetQuery::Timestamp(1500))
            .unwrap(),
        Offset(1)
    );
    assert_eq!(
        broker
            .list_offset("orders", 0, OffsetQuery::Timestamp(9999))
            .unwrap(),
        Offset(3)
    );
    let before = fetch_all(&broker, "orders", 0).await;
    broker.shutdown().await;
    drop(broker);
    let broker = open(dir.path()).await;
    assert_eq!(fetch_all(&broker, "orders", 0).await, before);
    let too_big = ProduceRecord {
        value: Some(Bytes::from(vec![0u8; 2 << 20])),
        ..Default::default()
    };
    assert!(
        broker
            .produce(records_request("orders", Some(0), vec![too_big]))
            .await
            .unwrap()
            .partitions[0]
            .error
            .is_some()
    );
}

#[tokio::test]
async fn idempotent_retries_get_their_first_offsets_and_gaps_are_refused() {
    use cairn_log::batch::ProducerFields;

    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker.create_topic("orders", 1, 1, &[]).await.unwrap();
    let (producer_id, producer_epoch) = broker.init_producer_id().await.unwrap();
    let send = |base_sequence: i32, values: &[&str]| {
        let records = values.iter().map(|v| keyed("k", v)).collect();
        ProduceRequest {
            producer: Some(ProducerFields {
                producer_id,
                producer_epoch,
                base_sequence,
            }),
            ..records_request("orders", Some(0), records)
        }
    };
    let first = broker.produce(send(0, &["a", "b"])).await.unwrap();
    assert_eq!(first.partitions[0].base_offset, Some(Offset(0)));
    broker.produce(send(2, &["c"])).await.unwrap();
    let retry = broker.produce(send(0, &["a", "b"])).await.unwrap();
    assert_eq!(
        retry.partitions[0].base_offset,
        Some(Offset(0)),
        "a retry is answered, not rewritten"
    );
    let gap = broker.produce(send(7, &["x"])).await.unwrap();
    let err = gap.partitions[0]
        .error
        .as_ref()
        .expect("a sequence gap is refused")
        .to_string();
    assert!(err.contains("out-of-order"), "{err}");
    assert_eq!(
        broker
            .list_offset("orders", 0, OffsetQuery::Latest)
            .unwrap(),
        Offset(3)
    );

    broker.shutdown().await;
    drop(broker);
    let broker = open(dir.path()).await;
    let retry = broker.produce(send(2, &["c"])).await.unwrap();
    assert_eq!(
        retry.partitions[0].base_offset,
        Some(Offset(2)),
        "producer state is rebuilt from the log"
    );
    assert_eq!(
        broker
            .list_offset("orders", 0, OffsetQuery::Latest)
            .unwrap(),
        Offset(3)
    );
    let (next_id, _) = broker.init_producer_id().await.unwrap();
    assert!(next_id > producer_id, "ids never repeat across restarts");
}

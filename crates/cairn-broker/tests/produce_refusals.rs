//! What produce refuses before anything is written: producer ids the broker never issued
//! (Kafka's UNKNOWN_PRODUCER_ID), transactional batches (no transaction coordinator) and
//! control batches from clients, each with its typed error and nothing appended.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use bytes::Bytes;
use cairn_broker::StorageErrorKind;
use cairn_broker::{
    AckLevel, Broker, BrokerError, OffsetQuery, ProducePayload, ProduceRecord, ProduceRequest,
};
use cairn_log::Offset;
use cairn_log::batch::{BatchBuilder, Compression, ProducerFields, RecordInput, batch_crc};

use common::open;

/// `attributes` (int16) sits after baseOffset, batchLength, partitionLeaderEpoch, magic, crc.
const ATTRIBUTES_POS: usize = 21;
const CRC_POS: usize = 17;
const TRANSACTIONAL_BIT: u16 = 1 << 4;
const CONTROL_BIT: u16 = 1 << 5;

fn records(producer_id: i64) -> ProduceRequest {
    ProduceRequest {
        topic: "orders".to_string(),
        partition: Some(0),
        acks: AckLevel::All,
        payload: ProducePayload::Records {
            records: vec![ProduceRecord {
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"v")),
                ..Default::default()
            }],
            compression: Compression::None,
        },
        producer: Some(ProducerFields {
            producer_id,
            producer_epoch: 0,
            base_sequence: 0,
        }),
    }
}

/// A one-record batch of `producer_id` with `extra` attribute bits set (CRC fixed up).
fn batch(producer_id: i64, extra: u16) -> ProduceRequest {
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
    ProduceRequest {
        payload: ProducePayload::Batch(Bytes::from(bytes)),
        producer: None,
        ..records(producer_id)
    }
}

fn end_offset(broker: &Broker) -> Offset {
    broker
        .list_offset("orders", 0, OffsetQuery::Latest)
        .unwrap()
}

#[tokio::test]
async fn producer_ids_never_issued_are_refused_until_issued_and_after_a_restart_still_known() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker.create_topic("orders", 1, 1, &[]).await.unwrap();

    for request in [
        records(0),
        batch(0, 0),
        records(123_456),
        batch(i64::MAX, 0),
    ] {
        let err = broker.produce(request).await.unwrap_err();
        assert!(
            matches!(err, BrokerError::UnknownProducerId { .. }),
            "{err:?}"
        );
    }
    assert_eq!(end_offset(&broker), Offset(0), "nothing was written");

    let (issued, _) = broker.init_producer_id().await.unwrap();
    broker.produce(records(issued)).await.unwrap();
    let err = broker.produce(records(issued + 1)).await.unwrap_err();
    assert!(
        matches!(err, BrokerError::UnknownProducerId { producer_id } if producer_id == issued + 1)
    );

    broker.shutdown().await;
    drop(broker);
    let broker = open(dir.path()).await;
    let retry = batch(issued, 0);
    // Sequence 0 again: the id is still known after the restart, and the retry is a duplicate
    // answered with its first offset rather than refused as unknown.
    let again = broker.produce(retry).await.unwrap();
    assert_eq!(again.partitions[0].base_offset, Some(Offset(0)));
    assert_eq!(end_offset(&broker), Offset(1));
    // Non-idempotent produce (no producer id) is unaffected.
    let plain = ProduceRequest {
        producer: None,
        ..records(0)
    };
    broker.produce(plain).await.unwrap();
}

#[tokio::test]
async fn transactional_and_control_batches_are_refused_with_their_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path()).await;
    broker.create_topic("orders", 1, 1, &[]).await.unwrap();
    let (issued, _) = broker.init_producer_id().await.unwrap();

    let err = broker
        .produce(batch(issued, TRANSACTIONAL_BIT))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::TransactionsUnsupported),
        "{err:?}"
    );
    let err = broker
        .produce(batch(issued, CONTROL_BIT))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BrokerError::Log(e) if e.kind() == StorageErrorKind::InvalidBatch),
        "{err:?}"
    );
    assert_eq!(end_offset(&broker), Offset(0), "nothing was written");
    broker.produce(batch(issued, 0)).await.unwrap();
    assert_eq!(end_offset(&broker), Offset(1));
}

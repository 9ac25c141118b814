//! Idempotent produce calls as a stock gRPC client makes them (producer id, epoch 0, a base
//! sequence), and the expiration check both the single-node and the cluster e2e tests run.

use std::time::Duration;

use cairn_client::{OutgoingRecord, Producer, ProducerConfig};
use cairn_proto::v1::producer_client::ProducerClient;
use cairn_proto::v1::{
    InitProducerIdRequest, ProduceRequest, ProducerIdentity, Record, RecordList, produce_request,
};
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// A producer id issued by the broker at `address`.
pub async fn issued_id(client: &mut ProducerClient<Channel>) -> i64 {
    client
        .init_producer_id(InitProducerIdRequest::default())
        .await
        .unwrap()
        .into_inner()
        .producer_id
}

/// Produces one record to partition 0 of `topic` as producer `id` at sequence `sequence`: its
/// base offset, or the refusal's reason (the `ErrorInfo` reason, e.g. `UNKNOWN_PRODUCER_ID`).
pub async fn produce_as(
    client: &mut ProducerClient<Channel>,
    topic: &str,
    id: i64,
    sequence: i32,
) -> Result<i64, String> {
    let request = ProduceRequest {
        topic: topic.to_string(),
        partition: Some(0),
        producer: Some(ProducerIdentity {
            producer_id: id,
            producer_epoch: 0,
            base_sequence: sequence,
        }),
        payload: Some(produce_request::Payload::Records(RecordList {
            records: vec![Record {
                value: Some(format!("{id}-{sequence}").into_bytes().into()),
                ..Record::default()
            }],
        })),
        ..ProduceRequest::default()
    };
    match client.produce(request).await {
        Ok(answer) => Ok(answer.into_inner().results[0].base_offset),
        Err(status) => Err(status
            .get_details_error_info()
            .map_or_else(|| status.message().to_string(), |info| info.reason)),
    }
}

/// The check, against a broker (or cluster leader of partition 0 of `topic`) at `address`
/// started with `--producer-id-expiration-ms 1000`, and `bootstrap` for the client library:
/// - a producer silent past the expiration is forgotten: its next sequence is refused as
///   `UNKNOWN_PRODUCER_ID`, while one that wrote meanwhile goes on;
/// - Cairn's own producer, idle past the expiration, carries on under a new id, and every
///   record it was told was written is there exactly once.
///
/// Returns the records of partition 0 the check wrote, for the caller to count.
pub async fn check_expiration(address: &str, bootstrap: &str, topic: &str) -> usize {
    let mut client = ProducerClient::connect(format!("http://{address}"))
        .await
        .unwrap();
    let (silent, busy) = (issued_id(&mut client).await, issued_id(&mut client).await);
    produce_as(&mut client, topic, silent, 0).await.unwrap();
    produce_as(&mut client, topic, silent, 1).await.unwrap();
    produce_as(&mut client, topic, busy, 0).await.unwrap();
    let library = Producer::connect(bootstrap, ProducerConfig::default())
        .await
        .unwrap();
    let record = |i: usize| OutgoingRecord {
        partition: Some(0),
        ..OutgoingRecord::keyed(format!("k{i}"), format!("v{i}"))
    };
    library.send(topic, record(0)).await.unwrap().await.unwrap();
    // Past the expiration (1 s) for `silent` and the library's producer, while `busy` writes
    // every 0.3 s: the look for expired producers runs after writes, at most every tenth of
    // the expiration.
    for sequence in 1..=5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        produce_as(&mut client, topic, busy, sequence)
            .await
            .unwrap();
    }
    assert_eq!(
        produce_as(&mut client, topic, silent, 2).await,
        Err("UNKNOWN_PRODUCER_ID".to_string()),
        "a producer silent for 1.5 s is forgotten"
    );
    assert!(
        produce_as(&mut client, topic, busy, 6).await.is_ok(),
        "one that wrote 0 s ago is not"
    );
    // The library's producer was forgotten too: its next record is refused as unknown, and it
    // goes on under a new producer id.
    library.send(topic, record(1)).await.unwrap().await.unwrap();
    library.send(topic, record(2)).await.unwrap().await.unwrap();
    library.close().await.unwrap();
    // silent 0-1, busy 0-6, the library's 0-2.
    2 + 7 + 3
}

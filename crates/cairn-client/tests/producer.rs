//! `Producer` against an in-process server on loopback: keyed records land where Kafka's
//! partitioner puts them, in order, exactly once; keyless records sent one at a time still move
//! between partitions; a broker restart in the middle of a stream
//! is ridden out by retries without a loss or a duplicate (idempotence across the restart).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::time::Duration;

use bytes::Bytes;
use cairn_client::{
    ClientError, ConsumedRecord, Consumer, ErrorCode, OutgoingRecord, Producer, ProducerConfig,
    Seek,
};

mod common;

use common::{admin, free_port, serve};

/// A broker on loopback with a data directory of its own and one topic; dropping it stops the
/// broker and removes the directory.
struct Broker {
    brokers: String,
    _stop: tokio::sync::oneshot::Sender<()>,
    _server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// Starts a [`Broker`] and creates `topic` with `partitions` and `configs` on it.
async fn broker_with_topic(
    topic: &str,
    partitions: i32,
    configs: HashMap<String, String>,
) -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let grpc = free_port();
    let (stop, server) = serve(dir.path(), grpc, free_port());
    let brokers = grpc.to_string();
    admin(&brokers)
        .await
        .create_topic(topic, partitions, 0, configs)
        .await
        .unwrap();
    Broker {
        brokers,
        _stop: stop,
        _server: server,
        _dir: dir,
    }
}

/// Every record of `partitions` from the earliest offset to the end.
async fn read_all(brokers: &str, topic: &str, partitions: i32) -> Vec<ConsumedRecord> {
    let all: Vec<i32> = (0..partitions).collect();
    let mut consumer = Consumer::assign(brokers, topic, &all, Seek::Earliest)
        .await
        .unwrap();
    let ends: BTreeMap<i32, i64> = consumer
        .list_offsets(&all, Seek::Latest)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let mut records = Vec::new();
    while consumer.positions().iter().any(|(p, pos)| *pos < ends[p]) {
        records.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    records
}

/// Checks that every (key, n) value appears exactly once and in order of n per key.
fn check_exactly_once_in_order(
    records: &[ConsumedRecord],
    expected_per_key: &HashMap<String, u32>,
) {
    let mut last: HashMap<String, i64> = HashMap::new();
    let mut seen: HashMap<String, u32> = HashMap::new();
    for record in records {
        let value = String::from_utf8(record.value.clone().unwrap().to_vec()).unwrap();
        let (key, n) = value.split_once(':').unwrap();
        let n: i64 = n.parse().unwrap();
        let previous = last.insert(key.to_string(), n).unwrap_or(-1);
        assert_eq!(
            n,
            previous + 1,
            "key {key}: {n} after {previous} (a gap, duplicate or reorder)"
        );
        *seen.entry(key.to_string()).or_default() += 1;
    }
    assert_eq!(&seen, expected_per_key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_round_trip_in_order_where_kafka_would_put_them() {
    let broker = broker_with_topic("orders", 4, HashMap::new()).await;
    let brokers = broker.brokers.clone();
    let producer = Producer::connect(&brokers, ProducerConfig::default())
        .await
        .unwrap();
    let keys = 97;
    let total = 20_000_u32;
    let mut deliveries = Vec::new();
    let mut expected: HashMap<String, u32> = HashMap::new();
    for i in 0..total {
        let key = format!("customer-{}", i % keys);
        let n = expected.entry(key.clone()).or_default();
        let value = format!("{key}:{n}");
        *n += 1;
        deliveries.push(
            producer
                .send("orders", OutgoingRecord::keyed(key, value))
                .await
                .unwrap(),
        );
    }
    let mut offsets: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for delivery in deliveries {
        let placement = delivery.await.unwrap();
        offsets
            .entry(placement.partition)
            .or_default()
            .push(placement.offset);
    }
    for (partition, mut list) in offsets {
        list.sort_unstable();
        let dense: Vec<i64> = (0..list.len() as i64).collect();
        assert_eq!(
            list, dense,
            "partition {partition}: offsets are dense from 0"
        );
    }

    let records = read_all(&brokers, "orders", 4).await;
    assert_eq!(records.len(), total as usize);
    let four = NonZeroU32::new(4).unwrap();
    for record in &records {
        let key = record.key.as_ref().unwrap();
        assert_eq!(
            record.partition as u32,
            cairn_codec::partition_for_key(key, four),
            "murmur2 placement"
        );
    }
    check_exactly_once_in_order(&records, &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_records_sent_one_at_a_time_move_between_partitions() {
    // Low load: each record is acknowledged before the next is sent, so each leaves alone in a
    // batch that never fills. The partitioner must still move on after twice a batch's worth of
    // bytes (KIP-794), not keep every keyless record on one partition until some batch fills.
    let broker = broker_with_topic("events", 3, HashMap::new()).await;
    let brokers = broker.brokers.clone();
    let batch_size = 4096;
    let config = ProducerConfig {
        batch_size,
        ..ProducerConfig::default()
    };
    let producer = Producer::connect(&brokers, config).await.unwrap();
    let mut placed = Vec::new();
    for i in 0..600 {
        let record = OutgoingRecord {
            value: Some(Bytes::from(format!("{i:0>100}"))),
            ..OutgoingRecord::default()
        };
        let delivery = producer.send("events", record).await.unwrap();
        placed.push(delivery.await.unwrap().partition);
    }
    // The longest stay: 2 * batch_size bytes of records of more than 100 bytes each.
    let most = 2 * batch_size / 100;
    let mut runs = Vec::new();
    let mut run = 1;
    for pair in placed.windows(2) {
        if pair[0] == pair[1] {
            run += 1;
        } else {
            runs.push(run);
            run = 1;
        }
    }
    runs.push(run);
    assert!(
        runs.iter().all(|&r| r <= most),
        "a partition kept more than {most} records in a row: {runs:?}"
    );
    assert!(runs.len() >= 600 / most, "too few moves: {runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (grpc, http) = (free_port(), free_port());
    let (stop, server) = serve(dir.path(), grpc, http);
    let brokers = grpc.to_string();
    admin(&brokers)
        .await
        .create_topic("payments", 2, 0, HashMap::new())
        .await
        .unwrap();
    let config = ProducerConfig {
        request_timeout: Duration::from_secs(2),
        retry_backoff: Duration::from_millis(50),
        retry_backoff_max: Duration::from_millis(200),
        delivery_timeout: Duration::from_secs(60),
        linger: Duration::from_millis(2),
        batch_size: 2048,
        ..ProducerConfig::default()
    };
    let producer = Producer::connect(&brokers, config).await.unwrap();
    let mut expected: HashMap<String, u32> = HashMap::new();
    let mut deliveries = Vec::new();
    let mut first = Some((stop, server));
    let mut _restarted = None;
    for i in 0..6_000_u32 {
        if i == 2_000
            && let Some((stop, server)) = first.take()
        {
            // Stop the broker while batches are in flight, and bring it back on the same
            // addresses a moment later.
            drop(stop);
            server.await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            _restarted = Some(serve(dir.path(), grpc, http));
        }
        let key = format!("account-{}", i % 13);
        let n = expected.entry(key.clone()).or_default();
        let value = format!("{key}:{n}");
        *n += 1;
        deliveries.push(
            producer
                .send("payments", OutgoingRecord::keyed(key, value))
                .await
                .unwrap(),
        );
        if i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    for delivery in deliveries {
        delivery.await.unwrap();
    }
    let records = read_all(&brokers, "payments", 2).await;
    assert_eq!(records.len(), 6_000);
    check_exactly_once_in_order(&records, &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sends_are_typed_errors_and_the_producer_keeps_working() {
    let configs = HashMap::from([("max.message.bytes".to_string(), "2048".to_string())]);
    let broker = broker_with_topic("small", 1, configs).await;
    let brokers = broker.brokers.clone();
    let producer = Producer::connect(&brokers, ProducerConfig::default())
        .await
        .unwrap();

    let err = producer
        .send("missing", OutgoingRecord::keyed("k", "v"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownTopicOrPartition));
    assert!(err.to_string().contains("missing"), "{err}");

    let err = producer
        .send(
            "small",
            OutgoingRecord {
                partition: Some(5),
                ..OutgoingRecord::keyed("k", "v")
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownTopicOrPartition));
    assert!(
        err.to_string()
            .contains("has 1 partition (0 to 0); partition 5"),
        "{err}"
    );

    // A create time before the epoch (below -1, "none") is refused before it is queued, as
    // the broker refuses it in plain records.
    let err = producer
        .send(
            "small",
            OutgoingRecord {
                timestamp_ms: -5,
                ..OutgoingRecord::keyed("k", "v")
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidTimestamp));
    assert!(err.to_string().contains("-5"), "{err}");

    // Too large for the topic: refused by the broker. A batch fails as a whole, as in Kafka,
    // so the neighbours here are flushed into batches of their own.
    let before = producer
        .send("small", OutgoingRecord::keyed("a", "1"))
        .await
        .unwrap();
    producer.flush().await.unwrap();
    let big = producer
        .send(
            "small",
            OutgoingRecord::keyed("b", Bytes::from(vec![b'x'; 4096])),
        )
        .await
        .unwrap();
    producer.flush().await.unwrap();
    let after = producer
        .send("small", OutgoingRecord::keyed("c", "2"))
        .await
        .unwrap();
    assert_eq!(before.await.unwrap().offset, 0);
    let refused: ClientError = big.await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::RecordTooLarge));
    assert_eq!(
        after.await.unwrap().offset,
        1,
        "the next record takes the next offset"
    );
    producer.flush().await.unwrap();

    // Once the topic's partition count is known, `send` checks the partition on its fast path
    // (one lock, no await): the same refusal, and the buffer bytes the record took are given
    // back. With room for three such records, ten refusals that kept their bytes would leave a
    // good record waiting for room forever.
    let small_buffer = ProducerConfig {
        buffer_memory: 3 * 1100,
        batch_size: 1100,
        ..ProducerConfig::default()
    };
    let producer = Producer::connect(&brokers, small_buffer).await.unwrap();
    let value = Bytes::from(vec![b'v'; 1000]);
    let warm = producer
        .send("small", OutgoingRecord::keyed("k", value.clone()))
        .await
        .unwrap();
    warm.await.unwrap();
    for _ in 0..10 {
        let err = producer
            .send(
                "small",
                OutgoingRecord {
                    partition: Some(3),
                    ..OutgoingRecord::keyed("k", value.clone())
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::UnknownTopicOrPartition));
        assert!(
            err.to_string()
                .contains("has 1 partition (0 to 0); partition 3 does not exist"),
            "{err}"
        );
    }
    let good = tokio::time::timeout(
        Duration::from_secs(10),
        producer.send("small", OutgoingRecord::keyed("k", value)),
    )
    .await
    .expect("the refused records gave their buffer bytes back")
    .unwrap();
    good.await.unwrap();
}

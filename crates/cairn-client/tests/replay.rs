//! `Replay` (and `Consumer::poll_batches`) against an in-process server on loopback: every
//! keyed record comes back exactly once, in offset order within its partition, in both fetch
//! formats; a checkpoint resumes exactly where the last replay stopped; follow mode sees records
//! produced after the captured end; checkpoints that do not fit are typed errors.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use cairn_client::{
    Checkpoint, ClientError, Compression, Consumer, ErrorCode, OutgoingRecord, Producer,
    ProducerConfig, Replay, ReplayConfig, ReplayFormat, Seek,
};

mod common;

use common::{admin, start};

/// Long enough for a healthy server; it only keeps a broken build from hanging the suite.
const PATIENCE: Duration = Duration::from_secs(30);

/// Produces `count` records keyed `customer-{i % 37}` with values `customer-K:N` (N counting
/// per key from `first[K]`), in small lz4 batches so a replay crosses many batch boundaries.
async fn produce(brokers: &str, topic: &str, count: u32, next: &mut HashMap<String, u32>) {
    let config = ProducerConfig {
        batch_size: 4096,
        compression: Compression::Lz4,
        ..ProducerConfig::default()
    };
    let producer = Producer::connect(brokers, config).await.unwrap();
    let mut deliveries = Vec::new();
    for i in 0..count {
        let key = format!("customer-{}", i % 37);
        let n = next.entry(key.clone()).or_default();
        let value = format!("{key}:{n}");
        *n += 1;
        deliveries.push(
            producer
                .send(topic, OutgoingRecord::keyed(key, value))
                .await
                .unwrap(),
        );
    }
    for delivery in deliveries {
        delivery.await.unwrap();
    }
    producer.flush().await.unwrap();
}

/// What a replay handed out: (partition, offset, key, sequence number within the key).
type Seen = Vec<(i32, i64, String, u32)>;

/// Reads up to `limit` records (all, without one) and returns them with the replay.
async fn drain(replay: &mut Replay, limit: Option<usize>) -> Seen {
    let mut seen = Vec::new();
    while limit.is_none_or(|limit| seen.len() < limit) {
        let Some(record) = tokio::time::timeout(PATIENCE, replay.next()).await.unwrap() else {
            break;
        };
        let record = record.unwrap();
        let value = std::str::from_utf8(record.value.unwrap()).unwrap();
        let (key, n) = value.split_once(':').unwrap();
        assert_eq!(
            record.key,
            Some(key.as_bytes()),
            "the key travels with its value"
        );
        seen.push((
            record.partition,
            record.offset,
            key.to_string(),
            n.parse().unwrap(),
        ));
    }
    seen
}

/// Each key's sequence numbers appear once each, in order, continuing from `first`; each
/// partition's offsets strictly increase.
fn check_in_order(seen: &Seen, first: &HashMap<String, u32>, expected_next: &HashMap<String, u32>) {
    let mut next = first.clone();
    let mut last_offset: BTreeMap<i32, i64> = BTreeMap::new();
    for (partition, offset, key, n) in seen {
        let expected = next.entry(key.clone()).or_default();
        assert_eq!(n, expected, "{key}: a gap, duplicate or reorder");
        *expected += 1;
        let previous = last_offset.insert(*partition, *offset);
        assert!(
            previous.is_none_or(|p| p < *offset),
            "partition {partition} went back"
        );
    }
    assert_eq!(&next, expected_next, "every record once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_comes_back_once_in_partition_order_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let (brokers, _stop, _server) = start(dir.path());
    admin(&brokers)
        .await
        .create_topic("orders", 4, 0, HashMap::new())
        .await
        .unwrap();
    let mut expected = HashMap::new();
    produce(&brokers, "orders", 20_000, &mut expected).await;

    for format in [ReplayFormat::RawBatches, ReplayFormat::Decoded] {
        let config = ReplayConfig {
            format,
            // Small chunks and two partitions at a time: many chunk boundaries and turns.
            fetch_max_bytes: 16 << 10,
            max_partitions_in_flight: 2,
            ..ReplayConfig::default()
        };
        let mut replay = Replay::start(&brokers, "orders", config).await.unwrap();
        let seen = drain(&mut replay, None).await;
        check_in_order(&seen, &HashMap::new(), &expected);
        let progress = replay.progress();
        assert_eq!(progress.records, 20_000, "{format:?}");
        assert_eq!(progress.fraction_done(), 1.0);
        assert!(replay.caught_up());
        let ends: BTreeMap<i32, i64> = progress
            .partitions
            .iter()
            .map(|p| (p.partition, p.end_offset))
            .collect();
        assert_eq!(
            replay.checkpoint().offsets(),
            &ends,
            "a finished replay's checkpoint is the end"
        );
        assert!(replay.next().await.is_none(), "stays finished");
    }

    // The consumer's raw path reads the same records as its decoded one.
    let all = [0, 1, 2, 3];
    let mut raw = Consumer::assign(&brokers, "orders", &all, Seek::Earliest)
        .await
        .unwrap();
    let mut raw_records = Vec::new();
    while raw_records.len() < 20_000 {
        let batches = raw.poll_batches(Duration::from_millis(100)).await.unwrap();
        for record in batches.iter().flat_map(|b| b.records()) {
            raw_records.push(record.unwrap().to_record("orders"));
        }
    }
    let mut decoded = Consumer::assign(&brokers, "orders", &all, Seek::Earliest)
        .await
        .unwrap();
    let mut decoded_records = Vec::new();
    while decoded_records.len() < 20_000 {
        decoded_records.extend(decoded.poll(Duration::from_millis(100)).await.unwrap());
    }
    // Alternating the two on one consumer: each poll's fetch sent ahead is in the other
    // format and must be dropped, never take records with it.
    let mut mixed = Consumer::assign(&brokers, "orders", &all, Seek::Earliest)
        .await
        .unwrap();
    let mut mixed_records = Vec::new();
    for round in 0.. {
        if mixed_records.len() >= 20_000 {
            break;
        }
        if round % 2 == 0 {
            mixed_records.extend(mixed.poll(Duration::from_millis(100)).await.unwrap());
        } else {
            let batches = mixed
                .poll_batches(Duration::from_millis(100))
                .await
                .unwrap();
            for record in batches.iter().flat_map(|b| b.records()) {
                mixed_records.push(record.unwrap().to_record("orders"));
            }
        }
    }
    let key = |r: &cairn_client::ConsumedRecord| (r.partition, r.offset);
    raw_records.sort_by_key(key);
    decoded_records.sort_by_key(key);
    mixed_records.sort_by_key(key);
    assert_eq!(raw_records, decoded_records);
    assert_eq!(mixed_records, decoded_records);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_resumes_exactly_where_the_last_replay_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (brokers, _stop, _server) = start(dir.path());
    admin(&brokers)
        .await
        .create_topic("ledger", 3, 0, HashMap::new())
        .await
        .unwrap();
    let mut expected = HashMap::new();
    produce(&brokers, "ledger", 9_000, &mut expected).await;
    let small = ReplayConfig {
        fetch_max_bytes: 8 << 10,
        ..ReplayConfig::default()
    };

    // Stop part way, through the text form as a file would hold it.
    let mut first = Replay::start(&brokers, "ledger", small.clone())
        .await
        .unwrap();
    let mut seen = drain(&mut first, Some(4_321)).await;
    let text = first.checkpoint().to_text();
    drop(first);
    // Records produced since are read by the resumed replay too (its end is captured later).
    produce(&brokers, "ledger", 1_000, &mut expected).await;
    let checkpoint = Checkpoint::parse(&text).unwrap();
    let config = ReplayConfig {
        checkpoint: Some(checkpoint.clone()),
        ..small
    };
    let mut second = Replay::start(&brokers, "ledger", config).await.unwrap();
    let progress = second.progress();
    for p in &progress.partitions {
        assert_eq!(Some(p.start_offset), checkpoint.offset(p.partition));
    }
    seen.extend(drain(&mut second, None).await);
    check_in_order(&seen, &HashMap::new(), &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_mode_goes_on_to_records_produced_after_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (brokers, _stop, _server) = start(dir.path());
    admin(&brokers)
        .await
        .create_topic("events", 2, 0, HashMap::new())
        .await
        .unwrap();
    let mut expected = HashMap::new();
    produce(&brokers, "events", 500, &mut expected).await;
    let before = expected.clone();
    let config = ReplayConfig {
        follow: true,
        ..ReplayConfig::default()
    };
    let mut replay = Replay::start(&brokers, "events", config).await.unwrap();
    let mut seen = drain(&mut replay, Some(500)).await;
    check_in_order(&seen, &HashMap::new(), &before);
    assert!(replay.caught_up());

    produce(&brokers, "events", 300, &mut expected).await;
    seen.extend(drain(&mut replay, Some(300)).await);
    check_in_order(&seen, &HashMap::new(), &expected);
    let checkpoint = replay.checkpoint();
    assert_eq!(checkpoint.offsets().values().sum::<i64>(), 800);
    assert_eq!(replay.progress().fraction_done(), 1.0);
    // Nothing more: the replay waits rather than ending.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), replay.next())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topics_and_checkpoints_that_do_not_fit_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (brokers, _stop, _server) = start(dir.path());
    admin(&brokers)
        .await
        .create_topic("orders", 2, 0, HashMap::new())
        .await
        .unwrap();
    let mut expected = HashMap::new();
    produce(&brokers, "orders", 100, &mut expected).await;
    let with = |checkpoint: Checkpoint| ReplayConfig {
        checkpoint: Some(checkpoint),
        ..ReplayConfig::default()
    };
    let at = |topic: &str, partition: i32, offset: i64| {
        Checkpoint::new(topic, BTreeMap::from([(partition, offset)])).unwrap()
    };

    let err = Replay::start(&brokers, "no-such-topic", ReplayConfig::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(ErrorCode::UnknownTopicOrPartition),
        "{err}"
    );
    assert!(err.to_string().contains("no-such-topic"), "{err}");

    let err = Replay::start(&brokers, "orders", with(at("orders", 2, 0)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::CheckpointUnknownPartition {
                partition: 2,
                partition_count: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = Replay::start(&brokers, "orders", with(at("orders", 0, 1_000_000)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::CheckpointOffsetOutOfRange {
                partition: 0,
                offset: 1_000_000,
                log_start: 0,
                ..
            }
        ),
        "{err}"
    );
    let err = Replay::start(&brokers, "orders", with(at("payments", 0, 0)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::CheckpointTopicMismatch { .. }),
        "{err}"
    );
    let err = Replay::start(
        &brokers,
        "orders",
        ReplayConfig {
            fetch_max_bytes: 0,
            ..ReplayConfig::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ClientError::InvalidArgument(_)), "{err}");
    assert!(matches!(
        Checkpoint::parse("cairn-replay-checkpoint v1\ntopic orders\nzero 0\n"),
        Err(ClientError::MalformedCheckpoint { line: 3, .. })
    ));
}

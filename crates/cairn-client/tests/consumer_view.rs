//! "Records as a consumer sees them" through the three paths that read them, on the same stored
//! batches: the broker's decoded `Fetch` (`Consumer::poll`), the server's directly encoded
//! `Subscribe` (a stock tonic client) and the client's own decoding of raw batches
//! (`Consumer::poll_batches`). The batches are written straight into the partition's log, so
//! they include what no producer may send: control batches, a meta entry, compaction gaps and
//! an offset delta below zero. All three must give the same records, byte for byte, as a model
//! computed from the batches, from every start offset; and all three must refuse the batch with
//! the negative delta as corrupt.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use cairn_client::{ClientError, ConsumedRecord, Consumer, ErrorCode, Seek};
use cairn_codec::batch::{
    Batch, BatchBuilder, Compression, HandBatch, RecordInput, encode_hand_batch, encode_meta_entry,
};
use cairn_log::{LeaderEpoch, Log, LogConfig};
use cairn_proto::v1::consumer_client::ConsumerClient;
use cairn_proto::v1::{FetchFormat, SubscribeRequest};

mod common;

use common::{admin, start};

/// Long enough for a healthy server; it only keeps a broken build from hanging the suite.
const PATIENCE: Duration = Duration::from_secs(30);
const TOPIC: &str = "view";
const BAD_TOPIC: &str = "bad-delta";

/// A stored batch as the model sees it: its records' `(offset delta, record)` and whether a
/// consumer reads them at all.
struct Stored {
    bytes: Bytes,
    deltas: Vec<i32>,
    offset_count: u64,
    readable: bool,
}

fn input<'a>(
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: &'a [(&'a [u8], Option<&'a [u8]>)],
    timestamp_ms: i64,
) -> RecordInput<'a> {
    RecordInput {
        key,
        value,
        headers,
        timestamp_ms,
    }
}

/// Every kind of batch and field a consumer meets, in log order.
fn batches() -> Vec<Stored> {
    const NON_UTF8_KEY: &[u8] = &[0xff, b'k', 0xfe];
    let odd_headers: &[(&[u8], Option<&[u8]>)] = &[(b"", Some(b"")), (NON_UTF8_KEY, Some(b"x"))];
    let plain = [
        input(
            Some(b"order-1"),
            Some(b"created"),
            &[(b"trace", Some(b"t1")), (b"empty", None)],
            1_700_000_000_000,
        ),
        // Null key and tombstone; an empty key and value; odd header keys.
        input(None, None, &[], 1_700_000_000_001),
        input(Some(b""), Some(b""), odd_headers, 5),
    ];
    let mut out = Vec::new();
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut builder = BatchBuilder::new(codec);
        for record in &plain {
            builder.push(record).unwrap();
        }
        out.push(Stored {
            bytes: builder.build().unwrap(),
            deltas: vec![0, 1, 2],
            offset_count: 3,
            readable: true,
        });
    }
    let marker = [(0, input(None, Some(b"commit"), &[], 7))];
    out.insert(
        1,
        Stored {
            bytes: encode_hand_batch(&HandBatch {
                compression: Compression::None,
                control: true,
                last_offset_delta: 0,
                records: &marker,
            })
            .unwrap(),
            deltas: vec![0],
            offset_count: 1,
            readable: false,
        },
    );
    out.insert(
        3,
        Stored {
            bytes: encode_meta_entry(b"raft:no-op", 9).unwrap(),
            deltas: Vec::new(),
            offset_count: 0,
            readable: false,
        },
    );
    // What compaction leaves: deltas 0 and 2 of 0..=3, compressed.
    let kept = [
        (0, input(Some(b"a"), Some(b"kept"), &[], 11)),
        (2, input(Some(b"b"), Some(&[0_u8, 1, 2, 255]), &[], 12)),
    ];
    out.push(Stored {
        bytes: encode_hand_batch(&HandBatch {
            compression: Compression::Zstd,
            control: false,
            last_offset_delta: 3,
            records: &kept,
        })
        .unwrap(),
        deltas: vec![0, 2],
        offset_count: 4,
        readable: true,
    });
    out
}

/// The records a consumer reading from `from` must see, computed from the batches alone.
fn model(stored: &[Stored], from: i64) -> Vec<ConsumedRecord> {
    let mut out = Vec::new();
    let mut base = 0_i64;
    for batch in stored {
        if batch.readable {
            let decoded = Batch::validate(batch.bytes.clone()).unwrap();
            let records = decoded.records(1 << 20).unwrap();
            for (record, delta) in records.iter().zip(&batch.deltas) {
                let record = record.unwrap();
                let offset = base + i64::from(*delta);
                if offset < from {
                    continue;
                }
                out.push(ConsumedRecord {
                    topic: TOPIC.to_string(),
                    partition: 0,
                    offset,
                    timestamp_ms: decoded.record_timestamp(&record),
                    key: record.key.map(Bytes::copy_from_slice),
                    value: record.value.map(Bytes::copy_from_slice),
                    headers: record
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            (
                                String::from_utf8_lossy(k).into_owned(),
                                v.map(Bytes::copy_from_slice),
                            )
                        })
                        .collect(),
                });
            }
        }
        base += batch.offset_count as i64;
    }
    out
}

/// Appends `batches` to partition 0 of `topic` in `data_dir` while no server runs.
fn store(data_dir: &Path, topic: &str, batches: &[Bytes]) -> u64 {
    // The broker's layout: `<data dir>/<topic>-<partition>`.
    let dir = data_dir.join(format!("{topic}-0"));
    let mut log = Log::open(&dir, LogConfig::default(), 0).unwrap();
    let batches: Vec<Batch> = batches
        .iter()
        .map(|b| Batch::validate(b.clone()).unwrap())
        .collect();
    let placed = log.append(&batches, Some(LeaderEpoch(0)), 0).unwrap();
    log.close().unwrap();
    placed.last().unwrap().next_offset.0
}

/// The broker's decoded records (`Fetch` with `FETCH_FORMAT_RECORDS`) from `from` to `end`.
async fn by_broker(
    brokers: &str,
    topic: &str,
    from: i64,
    end: i64,
) -> Result<Vec<ConsumedRecord>, ClientError> {
    let mut consumer = Consumer::assign(brokers, topic, &[0], Seek::Offset(from)).await?;
    let mut out = Vec::new();
    while consumer.positions()[&0] < end {
        out.extend(consumer.poll(Duration::ZERO).await?);
    }
    Ok(out)
}

/// The client's own decoding of raw batches from `from` to `end`.
async fn by_client(
    brokers: &str,
    topic: &str,
    from: i64,
    end: i64,
) -> Result<Vec<ConsumedRecord>, ClientError> {
    let mut consumer = Consumer::assign(brokers, topic, &[0], Seek::Offset(from)).await?;
    let mut out = Vec::new();
    while consumer.positions()[&0] < end {
        if let Some(batches) = consumer.poll_batches(Duration::ZERO).await? {
            for record in batches.records() {
                out.push(record?.to_record(topic));
            }
        }
    }
    Ok(out)
}

/// The server's directly encoded `Subscribe` records from `from` to `end`, read by a stock
/// tonic client.
async fn by_subscribe(
    brokers: &str,
    topic: &str,
    from: i64,
    end: i64,
) -> Result<Vec<ConsumedRecord>, tonic::Status> {
    let mut client = ConsumerClient::connect(format!("http://{brokers}"))
        .await
        .unwrap();
    let mut stream = client
        .subscribe(SubscribeRequest {
            topic: topic.to_string(),
            partition: 0,
            offset: from,
            max_bytes: 100,
            format: FetchFormat::Records as i32,
        })
        .await?
        .into_inner();
    let mut out = Vec::new();
    let mut next = from;
    while next < end {
        let answer = stream.message().await?.unwrap();
        next = answer.next_offset;
        out.extend(answer.records.into_iter().map(|r| ConsumedRecord {
            topic: topic.to_string(),
            partition: 0,
            offset: r.offset,
            timestamp_ms: r.timestamp_ms,
            key: r.key,
            value: r.value,
            headers: r.headers.into_iter().map(|h| (h.key, h.value)).collect(),
        }));
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_three_read_paths_see_the_same_records_and_refuse_the_same_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (brokers, stop, server) = start(dir.path());
    let setup = admin(&brokers).await;
    for topic in [TOPIC, BAD_TOPIC] {
        setup
            .create_topic(topic, 1, 1, HashMap::new())
            .await
            .unwrap();
    }
    drop(setup);
    drop(stop);
    server.await.unwrap();

    let stored = batches();
    let bytes: Vec<Bytes> = stored.iter().map(|s| s.bytes.clone()).collect();
    let end = store(dir.path(), TOPIC, &bytes) as i64;
    let first = input(Some(b"k"), Some(b"fine"), &[], 1);
    let bad = [(0, first), (-1, input(Some(b"k"), Some(b"where?"), &[], 2))];
    let bad_batch = encode_hand_batch(&HandBatch {
        compression: Compression::None,
        control: false,
        last_offset_delta: 1,
        records: &bad,
    })
    .unwrap();
    store(dir.path(), BAD_TOPIC, &[bad_batch]);

    let (brokers, stop, server) = start(dir.path());
    drop(admin(&brokers).await);
    tokio::time::timeout(PATIENCE, async {
        for from in 0..=end {
            let expected = model(&stored, from);
            let broker = by_broker(&brokers, TOPIC, from, end).await.unwrap();
            let client = by_client(&brokers, TOPIC, from, end).await.unwrap();
            let subscribe = by_subscribe(&brokers, TOPIC, from, end).await.unwrap();
            assert_eq!(broker, expected, "the broker's decoded fetch from {from}");
            assert_eq!(client, expected, "the client's raw decoding from {from}");
            assert_eq!(subscribe, expected, "the server's Subscribe from {from}");
        }
        assert_eq!(
            model(&stored, 0).len(),
            17,
            "5 x 3 records and 2 after compaction"
        );

        let broker = by_broker(&brokers, BAD_TOPIC, 0, 2).await.unwrap_err();
        assert!(
            matches!(
                broker,
                ClientError::Broker {
                    code: ErrorCode::CorruptMessage,
                    ..
                }
            ),
            "the broker's decoded fetch: {broker:?}"
        );
        let client = by_client(&brokers, BAD_TOPIC, 0, 2).await.unwrap_err();
        assert!(
            matches!(client, ClientError::CorruptBatch { .. }),
            "the client: {client:?}"
        );
        let subscribe = by_subscribe(&brokers, BAD_TOPIC, 0, 2).await.unwrap_err();
        assert!(
            subscribe.code() == tonic::Code::DataLoss
                && subscribe
                    .message()
                    .contains("offset delta outside the batch's offsets"),
            "Subscribe: {subscribe:?}"
        );
    })
    .await
    .unwrap();
    drop(stop);
    server.await.unwrap();
}

//! `FetchedBatches` against hand-made fetch answers: codecs, records before the offset asked
//! for, compaction gaps, meta entries and control batches, an end bound, and damage.

#![allow(clippy::unwrap_used, reason = "test code")]

use bytes::{Bytes, BytesMut};
use cairn_codec::batch::{
    BatchBuilder, BatchError, Compression, RecordInput, batch_crc, encode_meta_entry, field,
    rewrite_assigned_fields, write_varint, write_varlong,
};
use cairn_codec::{LeaderEpoch, Offset};
use cairn_proto::v1::FetchResponse;

use super::*;

const TOPIC: &str = "orders";

/// A batch of `values` (keyed `k<value>`) at `base`.
fn batch(base: i64, values: &[&str], compression: Compression) -> Bytes {
    let mut builder = BatchBuilder::new(compression);
    for value in values {
        let key = format!("k{value}");
        builder
            .push(&RecordInput {
                key: Some(key.as_bytes()),
                value: Some(value.as_bytes()),
                headers: &[(b"h", Some(b"v"))],
                timestamp_ms: 1_000,
            })
            .unwrap();
    }
    assign(builder.build().unwrap(), base)
}

fn assign(bytes: Bytes, base: i64) -> Bytes {
    let mut bytes = BytesMut::from(&bytes[..]);
    assert!(rewrite_assigned_fields(
        &mut bytes,
        Offset::from_i64(base).unwrap(),
        LeaderEpoch(0)
    ));
    bytes.freeze()
}

/// A batch as compaction leaves it: records at `base + deltas[i]` only, `lastOffsetDelta`
/// kept at `last_delta`.
fn compacted(base: i64, deltas: &[i32], last_delta: i32) -> Bytes {
    let template = batch(base, &["x"], Compression::None);
    let mut records = Vec::new();
    for delta in deltas {
        let value = format!("v{delta}");
        let mut body = vec![0_u8];
        write_varlong(&mut body, 0);
        write_varint(&mut body, *delta);
        write_varint(&mut body, -1);
        write_varint(&mut body, value.len() as i32);
        body.extend_from_slice(value.as_bytes());
        write_varint(&mut body, 0);
        write_varint(&mut records, body.len() as i32);
        records.extend_from_slice(&body);
    }
    let mut bytes = template[..field::RECORDS].to_vec();
    bytes.extend_from_slice(&records);
    let length = (bytes.len() - 12) as i32;
    bytes[field::BATCH_LENGTH..field::BATCH_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    bytes[field::LAST_OFFSET_DELTA..field::LAST_OFFSET_DELTA + 4]
        .copy_from_slice(&last_delta.to_be_bytes());
    bytes[field::RECORD_COUNT..field::RECORD_COUNT + 4]
        .copy_from_slice(&(deltas.len() as i32).to_be_bytes());
    reseal(&mut bytes);
    Bytes::from(bytes)
}

fn reseal(bytes: &mut [u8]) {
    let crc = batch_crc(bytes).unwrap();
    bytes[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// A one-record batch with its last byte flipped, so that only its CRC can tell.
fn damaged_batch(base: i64, value: &str, compression: Compression) -> Bytes {
    let mut damaged = batch(base, &[value], compression).to_vec();
    if let Some(last) = damaged.last_mut() {
        *last ^= 0x40;
    }
    Bytes::from(damaged)
}

fn answer(batches: &[Bytes]) -> FetchResponse {
    FetchResponse {
        record_batches: batches.concat().into(),
        high_watermark: 100,
        ..FetchResponse::default()
    }
}

fn decode(from: i64, until: Option<i64>, batches: &[Bytes]) -> FetchedBatches {
    FetchedBatches::decode(TOPIC, 3, from, until, answer(batches), CrcCheck::OnArrival).unwrap()
}

/// (offset, value) of every record.
fn read(fetched: &FetchedBatches) -> Vec<(i64, String)> {
    fetched
        .records()
        .map(|r| {
            let r = r.unwrap();
            (
                r.offset,
                String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn every_record_of_every_codec_comes_out_in_offset_order() {
    let fetched = decode(
        0,
        None,
        &[
            batch(0, &["a", "b"], Compression::None),
            batch(2, &["c"], Compression::Lz4),
            batch(3, &["d", "e"], Compression::Zstd),
        ],
    );
    let expected: Vec<(i64, String)> = ["a", "b", "c", "d", "e"]
        .iter()
        .enumerate()
        .map(|(i, v)| (i as i64, v.to_string()))
        .collect();
    assert_eq!(read(&fetched), expected);
    assert_eq!(fetched.record_count(), 5);
    assert_eq!(fetched.next_offset(), 5);
    assert_eq!(fetched.partition(), 3);
    let first = fetched.records().next().unwrap().unwrap();
    assert_eq!(first.key, Some(&b"ka"[..]));
    assert_eq!(first.timestamp_ms, 1_000);
    assert_eq!(
        first.headers.iter().collect::<Vec<_>>(),
        [(&b"h"[..], Some(&b"v"[..]))]
    );
    let owned = first.to_record(TOPIC);
    assert_eq!(owned.value.as_deref(), Some(&b"a"[..]));
    assert_eq!(
        owned.headers,
        [("h".to_string(), Some(Bytes::from_static(b"v")))]
    );
}

#[test]
fn records_before_the_offset_asked_for_are_skipped() {
    let fetched = decode(1, None, &[batch(0, &["a", "b", "c"], Compression::Lz4)]);
    assert_eq!(read(&fetched), [(1, "b".into()), (2, "c".into())]);
    assert_eq!(fetched.next_offset(), 3);
}

#[test]
fn the_next_offset_steps_over_a_compaction_gap() {
    // Offsets 10..=15 once; compaction kept 10 and 13.
    let fetched = decode(10, None, &[compacted(10, &[0, 3], 5)]);
    assert_eq!(read(&fetched), [(10, "v0".into()), (13, "v3".into())]);
    assert_eq!(
        fetched.next_offset(),
        16,
        "lastOffset + 1, not base + record count"
    );
    let later = decode(11, None, &[compacted(10, &[0, 3], 5)]);
    assert_eq!(read(&later), [(13, "v3".into())]);
    // A batch compaction emptied still moves the position.
    let empty = decode(16, None, &[compacted(16, &[], 4)]);
    assert!(empty.is_empty());
    assert_eq!(empty.next_offset(), 21);
}

#[test]
fn meta_entries_and_control_batches_are_skipped() {
    let meta = assign(encode_meta_entry(b"raft no-op", 0).unwrap(), 2);
    let mut marker = batch(2, &["commit"], Compression::None).to_vec();
    let attributes = i16::from_be_bytes([marker[field::ATTRIBUTES], marker[field::ATTRIBUTES + 1]]);
    marker[field::ATTRIBUTES..field::ATTRIBUTES + 2]
        .copy_from_slice(&(attributes | 0x20).to_be_bytes());
    reseal(&mut marker);
    let fetched = decode(
        0,
        None,
        &[
            batch(0, &["a", "b"], Compression::None),
            meta,
            Bytes::from(marker),
            batch(3, &["c"], Compression::None),
        ],
    );
    assert_eq!(
        read(&fetched),
        [(0, "a".into()), (1, "b".into()), (3, "c".into())]
    );
    assert_eq!(fetched.next_offset(), 4);
}

#[test]
fn an_end_bound_trims_the_batch_that_straddles_it() {
    let batches = [
        batch(0, &["a", "b"], Compression::None),
        batch(2, &["c", "d"], Compression::Snappy),
        batch(4, &["e"], Compression::None),
    ];
    let fetched = decode(1, Some(3), &batches);
    assert_eq!(read(&fetched), [(1, "b".into()), (2, "c".into())]);
    assert_eq!(
        fetched.next_offset(),
        5,
        "the batches were fetched all the same"
    );
}

#[test]
fn a_flipped_byte_is_a_corrupt_batch_not_data() {
    let damaged = damaged_batch(0, "a", Compression::None);
    let err = FetchedBatches::decode(TOPIC, 3, 0, None, answer(&[damaged]), CrcCheck::OnArrival)
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::CorruptBatch {
                partition: 3,
                offset: 0,
                source: BatchError::CrcMismatch { .. },
                ..
            }
        ),
        "{err:?}"
    );
    let truncated = batch(0, &["a"], Compression::None).slice(..40);
    assert!(
        FetchedBatches::decode(TOPIC, 3, 0, None, answer(&[truncated]), CrcCheck::OnArrival)
            .is_err()
    );
}

#[test]
fn a_crc_checked_before_reading_fails_where_the_damaged_batch_starts() {
    // Uncompressed: the answer decodes, the records before the damaged batch are read, and the
    // damaged batch is an error where its records would be.
    let damaged = damaged_batch(1, "b", Compression::None);
    let fetched = FetchedBatches::decode(
        TOPIC,
        3,
        0,
        None,
        answer(&[batch(0, &["a"], Compression::None), damaged]),
        CrcCheck::BeforeReading,
    )
    .unwrap();
    let mut records = fetched.records();
    assert_eq!(records.next().unwrap().unwrap().value, Some(&b"a"[..]));
    let err = records.next().unwrap().unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::CorruptBatch {
                partition: 3,
                offset: 1,
                source: BatchError::CrcMismatch { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(records.next().is_none(), "nothing after the damage");
    // Compressed: checked before it is decompressed, so the whole answer is refused.
    let damaged = damaged_batch(0, "a", Compression::Lz4);
    let err = FetchedBatches::decode(
        TOPIC,
        3,
        0,
        None,
        answer(&[damaged]),
        CrcCheck::BeforeReading,
    )
    .unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::CorruptBatch {
                source: BatchError::CrcMismatch { .. },
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn offsets_that_go_backwards_are_refused() {
    let err = FetchedBatches::decode(
        TOPIC,
        3,
        0,
        None,
        answer(&[
            batch(5, &["a"], Compression::None),
            batch(5, &["b"], Compression::None),
        ]),
        CrcCheck::OnArrival,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::CorruptBatch {
                source: BatchError::OffsetOutOfSequence {
                    expected: 6,
                    found: 5
                },
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_malformed_record_behind_a_valid_crc_ends_the_iteration_with_an_error() {
    let mut bad = batch(0, &["a", "b"], Compression::None).to_vec();
    // The first record's length varint claims more bytes than the batch has.
    bad[field::RECORDS] = 0x7e;
    reseal(&mut bad);
    let fetched = decode(0, None, &[Bytes::from(bad)]);
    let items: Vec<_> = fetched.records().collect();
    assert_eq!(items.len(), 1);
    assert!(matches!(
        &items[0],
        Err(ClientError::CorruptBatch {
            source: BatchError::MalformedRecord { .. },
            ..
        })
    ));
}

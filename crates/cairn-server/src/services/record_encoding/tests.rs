//! The direct encoder against prost: the same records, built as `cairn.v1.Record` values and
//! encoded by prost, must give the same bytes.

#![allow(clippy::unwrap_used, reason = "test code")]

use bytes::{Bytes, BytesMut};
use cairn_codec::batch::{BatchBuilder, Compression, RecordInput, rewrite_assigned_fields};
use cairn_codec::{LeaderEpoch, Offset};
use cairn_proto::v1::{FetchResponse, Header, Record as ApiRecord};
use prost::Message;

use super::*;

type Headers<'a> = &'a [(&'a [u8], Option<&'a [u8]>)];
/// Key, value, headers and timestamp of one record to build.
type Input<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, Headers<'a>, i64);

/// One batch at `base` of `(key, value, headers, timestamp)` records.
fn batch(base: i64, records: &[Input<'_>], compression: Compression) -> Batch {
    let mut builder = BatchBuilder::new(compression);
    for (key, value, headers, timestamp_ms) in records {
        builder
            .push(&RecordInput {
                key: *key,
                value: *value,
                headers,
                timestamp_ms: *timestamp_ms,
            })
            .unwrap();
    }
    let mut bytes = BytesMut::from(&builder.build().unwrap()[..]);
    assert!(rewrite_assigned_fields(
        &mut bytes,
        Offset::from_i64(base).unwrap(),
        LeaderEpoch(0)
    ));
    Batch::validate(bytes.freeze()).unwrap()
}

/// What prost writes for the records of `batches` at or after `from`.
fn by_prost(batches: &[Batch], from: i64) -> Vec<u8> {
    let mut records = Vec::new();
    for batch in batches {
        let base = batch.header().base_offset;
        for record in batch.records(1 << 20).unwrap().iter() {
            let record = record.unwrap();
            let offset = base + i64::from(record.offset_delta);
            if offset < from {
                continue;
            }
            records.push(ApiRecord {
                key: record.key.map(Bytes::copy_from_slice),
                value: record.value.map(Bytes::copy_from_slice),
                headers: record
                    .headers
                    .iter()
                    .map(|(k, v)| Header {
                        key: String::from_utf8_lossy(k).into_owned(),
                        value: v.map(Bytes::copy_from_slice),
                    })
                    .collect(),
                timestamp_ms: batch.record_timestamp(&record),
                offset,
            });
        }
    }
    FetchResponse {
        records,
        ..Default::default()
    }
    .encode_to_vec()
}

fn direct(batches: &[Batch], from: i64) -> (Vec<u8>, u64) {
    let mut out = BytesMut::new();
    let written = encode_records(batches.iter().cloned(), from, 1 << 20, &mut out).unwrap();
    (out.to_vec(), written)
}

#[test]
fn the_bytes_are_prosts_for_every_kind_of_field() {
    let odd_key: &[u8] = &[0xff, b'k', 0xfe];
    let batches = [
        batch(
            0,
            &[
                (
                    Some(b"customer-1"),
                    Some(b"{\"total\":5}"),
                    &[],
                    1_700_000_000_000,
                ),
                // Null key, tombstone, empty header key, null header value, non-UTF-8 key.
                (None, None, &[(b"", Some(b"v")), (b"trace", None)], 1),
                (Some(b""), Some(b""), &[(odd_key, Some(b"x"))], 0),
            ],
            Compression::None,
        ),
        batch(
            3,
            &[(Some(b"k"), Some(&[7_u8; 300]), &[], -5)],
            Compression::Lz4,
        ),
    ];
    let (bytes, written) = direct(&batches, 0);
    assert_eq!(written, 4);
    assert_eq!(bytes, by_prost(&batches, 0));
    let decoded = FetchResponse::decode(&bytes[..]).unwrap();
    assert_eq!(decoded.records[1].key, None);
    assert_eq!(decoded.records[3].timestamp_ms, -5);
}

#[test]
fn records_before_the_offset_asked_for_are_left_out() {
    let batches = [
        batch(
            10,
            &[
                (Some(b"a"), Some(b"1"), &[], 5),
                (Some(b"b"), Some(b"2"), &[], 5),
                (Some(b"c"), Some(b"3"), &[], 5),
            ],
            Compression::None,
        ),
        batch(13, &[(Some(b"d"), Some(b"4"), &[], 5)], Compression::None),
    ];
    for from in [0, 11, 12, 13, 14] {
        let (bytes, written) = direct(&batches, from);
        assert_eq!(bytes, by_prost(&batches, from), "from {from}");
        assert_eq!(written, (14 - from.max(10)) as u64, "from {from}");
    }
}

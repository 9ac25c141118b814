//! Round-trip, corruption and fuzz-style tests of the batch codec.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::types::{LeaderEpoch, Offset};

type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

fn build(codec: Compression, records: &[KeyValue<'_>]) -> Bytes {
    let mut builder = BatchBuilder::new(codec);
    let headers: [(&[u8], Option<&[u8]>); 2] = [(b"trace", Some(b"abc")), (b"null", None)];
    for (idx, (key, value)) in records.iter().enumerate() {
        let record = RecordInput {
            key: *key,
            value: *value,
            headers: &headers,
            timestamp_ms: 1_700_000_000_000 + idx as i64,
        };
        builder.push(&record).unwrap();
    }
    builder.build().unwrap()
}

#[test]
fn encode_then_validate_round_trips_for_every_codec() {
    let records: Vec<KeyValue<'_>> = vec![
        (Some(b"k1"), Some(b"v1")),
        (None, Some(b"v2")),
        (Some(b"k3"), None),
    ];
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let batch = Batch::validate(build(codec, &records)).unwrap();
        assert_eq!(batch.compression(), codec);
        assert_eq!(batch.record_count(), 3);
        assert_eq!(batch.header().last_offset_delta, 2);
        assert_eq!(batch.header().max_timestamp, 1_700_000_000_002);
        batch.check_producible().unwrap();
        batch.check_records(1 << 20).unwrap();
        let decoded = batch.records(1 << 20).unwrap();
        let got: Vec<_> = decoded.iter().map(|r| r.unwrap()).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].key, Some(&b"k1"[..]));
        assert_eq!(got[1].key, None);
        assert_eq!(got[2].value, None);
        assert_eq!(got[2].timestamp_delta, 2);
        let headers: Vec<_> = got[0].headers.iter().collect();
        assert_eq!(
            headers,
            vec![(&b"trace"[..], Some(&b"abc"[..])), (&b"null"[..], None)]
        );
    }
}

#[test]
fn header_layout_matches_kafka_field_positions() {
    let bytes = build(Compression::None, &[(Some(b"k"), Some(b"v"))]);
    assert_eq!(bytes[field::MAGIC], 2);
    let length = i32::from_be_bytes(bytes[8..12].try_into().unwrap());
    assert_eq!(length as usize + 12, bytes.len());
    let header = BatchHeader::parse(&bytes).unwrap();
    assert_eq!(
        (
            header.producer_id,
            header.producer_epoch,
            header.base_sequence
        ),
        (-1, -1, -1)
    );
    assert_eq!(header.crc, crc32c::crc32c(&bytes[21..]));
}

/// A batch laid out field by field from Kafka's protocol documentation (one record, key "key",
/// value "value", no headers, CreateTime, non-idempotent), independent of our encoder, so the
/// encoder and decoder cannot drift from the format together.
#[test]
fn decodes_a_batch_laid_out_by_hand_from_the_kafka_spec() {
    let mut raw = Vec::new();
    raw.extend_from_slice(&7i64.to_be_bytes()); // baseOffset
    raw.extend_from_slice(&0i32.to_be_bytes()); // batchLength, patched below
    raw.extend_from_slice(&3i32.to_be_bytes()); // partitionLeaderEpoch
    raw.push(2); // magic
    raw.extend_from_slice(&0u32.to_be_bytes()); // crc, patched below
    raw.extend_from_slice(&0i16.to_be_bytes()); // attributes
    raw.extend_from_slice(&0i32.to_be_bytes()); // lastOffsetDelta
    raw.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    raw.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    raw.extend_from_slice(&(-1i64).to_be_bytes());
    raw.extend_from_slice(&(-1i16).to_be_bytes());
    raw.extend_from_slice(&(-1i32).to_be_bytes());
    raw.extend_from_slice(&1i32.to_be_bytes()); // recordCount
    // record: length 14 (zigzag 28 = 0x1c), attributes 0, tsDelta 0, offsetDelta 0,
    // keyLen 3 (0x06) "key", valueLen 5 (0x0a) "value", headers 0.
    raw.extend_from_slice(&[
        0x1c, 0, 0, 0, 0x06, b'k', b'e', b'y', 0x0a, b'v', b'a', b'l', b'u', b'e', 0,
    ]);
    let len = (raw.len() - 12) as i32;
    raw[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c::crc32c(&raw[21..]);
    raw[17..21].copy_from_slice(&crc.to_be_bytes());
    let batch = Batch::validate(Bytes::from(raw.clone())).unwrap();
    assert_eq!(batch.base_offset(), Offset(7));
    assert_eq!(batch.leader_epoch(), LeaderEpoch(3));
    let records = batch.records(1024).unwrap();
    let record = records.iter().next().unwrap().unwrap();
    assert_eq!(
        (record.key, record.value),
        (Some(&b"key"[..]), Some(&b"value"[..]))
    );
    // Re-encoding the same record yields the same bytes after the assigned fields.
    let mut builder = BatchBuilder::new(Compression::None);
    builder
        .push(&RecordInput {
            key: Some(b"key"),
            value: Some(b"value"),
            headers: &[],
            timestamp_ms: 1_700_000_000_000,
        })
        .unwrap();
    let ours = builder.build().unwrap();
    assert_eq!(&ours[16..], &raw[16..]);
}

#[test]
fn meta_entries_take_no_offset_and_carry_their_payload() {
    let bytes = encode_meta_entry(b"membership:{1,2,3}", 42).unwrap();
    let batch = Batch::validate(bytes).unwrap();
    assert!(batch.is_meta());
    assert_eq!(batch.offset_count(), 0);
    assert_eq!(batch.meta_payload(), Some(&b"membership:{1,2,3}"[..]));
    assert_eq!(batch.records(1024).unwrap().iter().count(), 0);
}

#[test]
fn rewriting_assigned_fields_keeps_the_crc_valid() {
    let bytes = build(Compression::Lz4, &[(Some(b"k"), Some(b"v"))]);
    let mut owned = bytes.to_vec();
    assert!(rewrite_assigned_fields(
        &mut owned,
        Offset(1234),
        LeaderEpoch(9)
    ));
    let batch = Batch::validate(Bytes::from(owned)).unwrap();
    assert_eq!(
        (batch.base_offset(), batch.leader_epoch()),
        (Offset(1234), LeaderEpoch(9))
    );
    let original = Batch::validate(bytes).unwrap();
    let prefix = original.assigned_prefix(Offset(1234), LeaderEpoch(9));
    assert_eq!(&prefix[..], &batch.bytes()[..16]);
}

#[test]
fn each_kind_of_damage_is_a_typed_error() {
    let good = build(Compression::None, &[(Some(b"k"), Some(b"v"))]).to_vec();
    let validate = |bytes: Vec<u8>| Batch::validate(Bytes::from(bytes)).unwrap_err();

    assert!(matches!(
        validate(good[..40].to_vec()),
        BatchError::Truncated { .. }
    ));
    assert!(matches!(
        validate(good[..good.len() - 1].to_vec()),
        BatchError::Truncated { .. }
    ));

    let mut wrong_magic = good.clone();
    wrong_magic[field::MAGIC] = 1;
    assert_eq!(validate(wrong_magic), BatchError::WrongMagic(1));

    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    assert!(matches!(validate(flipped), BatchError::CrcMismatch { .. }));

    let mut lying_length = good.clone();
    lying_length[8..12].copy_from_slice(&(-5i32).to_be_bytes());
    assert!(matches!(
        validate(lying_length),
        BatchError::BadLength { .. }
    ));

    let mut longer = good.clone();
    longer.extend_from_slice(&[0; 8]);
    assert!(matches!(validate(longer), BatchError::BadLength { .. }));

    let mut unknown_codec = good.clone();
    unknown_codec[field::ATTRIBUTES + 1] |= 0x07;
    let crc = crc32c::crc32c(&unknown_codec[21..]);
    unknown_codec[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(validate(unknown_codec), BatchError::UnknownCompression(7));
}

#[test]
fn malformed_records_under_a_valid_crc_are_caught_by_the_record_walk() {
    let mut bytes = build(Compression::None, &[(Some(b"k"), Some(b"v"))]).to_vec();
    // Claim two records while holding one, then fix the CRC as a buggy client would.
    bytes[field::RECORD_COUNT..field::RECORDS].copy_from_slice(&2i32.to_be_bytes());
    bytes[field::LAST_OFFSET_DELTA..field::BASE_TIMESTAMP].copy_from_slice(&1i32.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    let batch = Batch::validate(Bytes::from(bytes)).unwrap();
    assert!(matches!(
        batch.check_records(1024),
        Err(BatchError::MalformedRecord { record_idx: 1, .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let bytes = Bytes::from(bytes);
        let _ = frame_len(&bytes);
        let _ = BatchHeader::parse(&bytes);
        if let Ok(batch) = Batch::validate_prefix(&bytes) {
            let _ = batch.check_records(1 << 16);
        }
    }

    #[test]
    fn mutated_valid_batches_never_panic(idx in 0usize..200, value in any::<u8>(), codec in 0u8..5) {
        let codec = Compression::from_code(codec).unwrap();
        let mut bytes = build(codec, &[(Some(b"key"), Some(b"value")), (None, Some(b"v2"))]).to_vec();
        let idx = idx % bytes.len();
        bytes[idx] = value;
        // Re-seal the CRC so that the record walk, not the CRC, meets the damage.
        let crc = crc32c::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        if let Ok(batch) = Batch::validate(Bytes::from(bytes)) {
            let _ = batch.check_records(1 << 16);
            if let Ok(records) = batch.records(1 << 16) {
                for record in records.iter().flatten() {
                    let _ = record.headers.iter().count();
                }
            }
        }
    }

    #[test]
    fn records_round_trip(records in proptest::collection::vec(
        (proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
         proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
         any::<i64>()), 1..30),
        codec in 0u8..5,
    ) {
        let codec = Compression::from_code(codec).unwrap();
        let mut builder = BatchBuilder::new(codec);
        for (key, value, ts) in &records {
            builder.push(&RecordInput { key: key.as_deref(), value: value.as_deref(), headers: &[], timestamp_ms: *ts / 4 }).unwrap();
        }
        let batch = Batch::validate(builder.build().unwrap()).unwrap();
        let decoded = batch.records(1 << 20).unwrap();
        let base = batch.header().base_timestamp;
        let mut count = 0;
        for (record, (key, value, ts)) in decoded.iter().zip(&records) {
            let record = record.unwrap();
            prop_assert_eq!(record.key, key.as_deref());
            prop_assert_eq!(record.value, value.as_deref());
            prop_assert_eq!(base.wrapping_add(record.timestamp_delta), *ts / 4);
            count += 1;
        }
        prop_assert_eq!(count, records.len());
        prop_assert_eq!(batch.header().max_timestamp, records.iter().map(|r| r.2 / 4).max().unwrap());
    }
}

#[test]
fn producers_cannot_write_control_batches() {
    let meta = Batch::validate(encode_meta_entry(b"noop", 0).unwrap()).unwrap();
    assert!(matches!(
        meta.check_producible(),
        Err(BatchError::InconsistentHeader(_))
    ));
}

/// Regression (fuzzing): a 71-byte zstd batch whose frame declares a 128 MiB window made the
/// decoder allocate it whatever the decompression limit. The window is now capped by the limit,
/// so the frame is refused before anything large is allocated.
#[test]
fn a_zstd_frame_cannot_demand_a_window_beyond_the_limit() {
    let bytes = Bytes::from_static(include_bytes!("testdata/zstd-window-128mib.bin"));
    let batch = Batch::validate(bytes).unwrap();
    assert_eq!(batch.compression(), Compression::Zstd);
    let err = batch.records(1 << 20).unwrap_err();
    assert!(matches!(err, BatchError::Decompress { .. }), "{err}");
}

#[test]
fn rewriting_producer_fields_keeps_the_batch_valid_and_changes_only_them() {
    let original = build(
        Compression::Lz4,
        &[(Some(b"k"), Some(b"v")), (None, Some(b"w"))],
    );
    let mut rewritten = original.to_vec();
    let producer = ProducerFields {
        producer_id: 42,
        producer_epoch: 3,
        base_sequence: 1_000,
    };
    assert!(rewrite_producer_fields(&mut rewritten, producer));
    let batch = Batch::validate(Bytes::from(rewritten.clone())).unwrap();
    assert_eq!(batch.header().producer_id, 42);
    assert_eq!(batch.header().producer_epoch, 3);
    assert_eq!(batch.header().base_sequence, 1_000);
    // Everything the CRC does not cover, and every record byte, is as it was.
    assert_eq!(rewritten[..field::CRC], original[..field::CRC]);
    assert_eq!(
        rewritten[field::RECORD_COUNT..],
        original[field::RECORD_COUNT..]
    );

    let mut short = vec![0_u8; BATCH_HEADER_BYTES - 1];
    assert!(!rewrite_producer_fields(&mut short, producer));
    assert!(
        short.iter().all(|&b| b == 0),
        "a short buffer is left untouched"
    );
}

/// Stamping a batch with the broker's append time sets the timestamp type and `maxTimestamp`,
/// keeps the CRC valid, and makes every record read the append time.
#[test]
fn a_batch_stamped_with_log_append_time_reads_that_time_everywhere() {
    let mut builder = BatchBuilder::new(Compression::None);
    for (i, ts) in [1_000_i64, 2_000].into_iter().enumerate() {
        let value = [b'v', i as u8];
        builder
            .push(&RecordInput {
                key: None,
                value: Some(&value),
                headers: &[],
                timestamp_ms: ts,
            })
            .unwrap();
    }
    let batch = Batch::validate(builder.build().unwrap()).unwrap();
    assert!(!batch.header().attributes.is_log_append_time());
    let stamped = batch.with_log_append_time(1_796_000_000_000);
    let reread = Batch::validate(stamped.bytes().clone()).expect("the CRC is valid");
    assert_eq!(reread, stamped);
    assert!(reread.header().attributes.is_log_append_time());
    assert_eq!(reread.header().max_timestamp, 1_796_000_000_000);
    assert_eq!(
        reread.header().base_timestamp,
        batch.header().base_timestamp,
        "the records' own times are kept"
    );
    let records = reread.records(1 << 20).unwrap();
    let times: Vec<i64> = records
        .iter()
        .map(|record| reread.record_timestamp(&record.unwrap()))
        .collect();
    assert_eq!(times, [1_796_000_000_000, 1_796_000_000_000]);
}

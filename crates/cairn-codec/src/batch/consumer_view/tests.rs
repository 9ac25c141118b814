use bytes::Bytes;

use super::*;
use crate::batch::{
    BatchBuilder, Compression, HandBatch, RecordInput, encode_hand_batch, encode_meta_entry,
    rewrite_assigned_fields,
};
use crate::types::LeaderEpoch;

const LIMIT_BYTES: usize = 1 << 20;

fn record(value: &'static [u8]) -> RecordInput<'static> {
    RecordInput {
        key: Some(b"k"),
        value: Some(value),
        headers: &[],
        timestamp_ms: 1_000,
    }
}

/// `spec` encoded and placed at `base`, as the log stores it.
fn stored(spec: &HandBatch<'_>, base: u64) -> Batch {
    let mut bytes = encode_hand_batch(spec).unwrap().to_vec();
    assert!(rewrite_assigned_fields(
        &mut bytes,
        Offset(base),
        LeaderEpoch(0)
    ));
    Batch::validate(Bytes::from(bytes)).unwrap()
}

/// `(offset, value)` of every record a consumer reading from `from` sees in `batch`.
fn seen(batch: Batch, from: u64) -> Result<Vec<(u64, Vec<u8>)>, BatchError> {
    let Some(view) = ConsumerBatch::new(batch, Offset(from), LIMIT_BYTES)? else {
        return Ok(Vec::new());
    };
    view.records()
        .map(|r| r.map(|r| (r.offset.0, r.value.unwrap_or_default().to_vec())))
        .collect()
}

#[test]
fn offsets_are_base_plus_delta_and_records_before_from_are_dropped() {
    let records = [(0, record(b"a")), (2, record(b"b")), (3, record(b"c"))];
    for compression in [Compression::None, Compression::Zstd] {
        let spec = HandBatch {
            compression,
            control: false,
            last_offset_delta: 3,
            records: &records,
        };
        let all = seen(stored(&spec, 10), 0).unwrap();
        assert_eq!(
            all,
            [
                (10, b"a".to_vec()),
                (12, b"b".to_vec()),
                (13, b"c".to_vec())
            ]
        );
        assert_eq!(seen(stored(&spec, 10), 11).unwrap(), all[1..]);
        assert_eq!(seen(stored(&spec, 10), 13).unwrap(), all[2..]);
        assert_eq!(seen(stored(&spec, 10), 14).unwrap(), []);
    }
}

#[test]
fn control_batches_and_meta_entries_hold_no_records_to_read() {
    let records = [(0, record(b"marker"))];
    let control = HandBatch {
        compression: Compression::None,
        control: true,
        last_offset_delta: 0,
        records: &records,
    };
    assert!(
        ConsumerBatch::new(stored(&control, 0), Offset(0), LIMIT_BYTES)
            .unwrap()
            .is_none()
    );
    let meta = Batch::validate(encode_meta_entry(b"raft", 0).unwrap()).unwrap();
    assert!(
        ConsumerBatch::new(meta, Offset(0), LIMIT_BYTES)
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_delta_outside_the_batch_or_out_of_order_is_a_malformed_record() {
    let cases: [(&[(i32, RecordInput<'static>)], &str); 3] = [
        (
            &[(0, record(b"a")), (-1, record(b"b"))],
            "offset delta outside the batch's offsets",
        ),
        (
            &[(0, record(b"a")), (5, record(b"b"))],
            "offset delta outside the batch's offsets",
        ),
        (
            &[(1, record(b"a")), (1, record(b"b"))],
            "offset delta not above the previous record's",
        ),
    ];
    for (records, reason) in cases {
        let spec = HandBatch {
            compression: Compression::None,
            control: false,
            last_offset_delta: 2,
            records,
        };
        // Also when the bad record lies before `from`: it is never given an offset.
        for from in [0, 6, 7] {
            let found = seen(stored(&spec, 5), from);
            assert_eq!(
                found,
                Err(BatchError::MalformedRecord {
                    record_idx: 1,
                    reason
                }),
                "from {from}"
            );
        }
    }
}

#[test]
fn a_walk_resumed_from_its_position_continues_where_it_stopped() {
    let mut builder = BatchBuilder::new(Compression::Lz4);
    for value in [&b"x"[..], b"", b"z"] {
        builder
            .push(&RecordInput {
                key: None,
                value: Some(value),
                headers: &[(b"h", None)],
                timestamp_ms: 5,
            })
            .unwrap();
    }
    let mut bytes = builder.build().unwrap().to_vec();
    rewrite_assigned_fields(&mut bytes, Offset(100), LeaderEpoch(0));
    let batch = Batch::validate(Bytes::from(bytes)).unwrap();
    let view = ConsumerBatch::new(batch, Offset(101), LIMIT_BYTES)
        .unwrap()
        .unwrap();
    assert!(!view.is_whole());
    let mut walk = view.records();
    let first = walk.next().unwrap().unwrap();
    assert_eq!((first.offset, first.value), (Offset(101), Some(&b""[..])));
    assert_eq!(first.key, None);
    assert_eq!(
        first.headers.iter().collect::<Vec<_>>(),
        [(&b"h"[..], None)]
    );
    let mut resumed = view.resume(walk.position());
    assert_eq!(resumed.next().unwrap().unwrap().offset, Offset(102));
    assert!(resumed.next().is_none());
    assert!(resumed.next().is_none(), "a finished walk stays finished");
}

#[test]
fn bytes_after_the_last_record_fail_the_last_record() {
    let records = [(0, record(b"a"))];
    let spec = HandBatch {
        compression: Compression::None,
        control: false,
        last_offset_delta: 0,
        records: &records,
    };
    let mut bytes = encode_hand_batch(&spec).unwrap().to_vec();
    // One more byte inside the records section, with the length and CRC made to match.
    bytes.push(0);
    let length = (bytes.len() - 12) as i32;
    bytes[8..12].copy_from_slice(&length.to_be_bytes());
    let crc = crate::batch::batch_crc(&bytes).unwrap();
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    let batch = Batch::validate(Bytes::from(bytes)).unwrap();
    // The last (and only) record is the one refused.
    assert_eq!(
        seen(batch, 0),
        Err(BatchError::MalformedRecord {
            record_idx: 0,
            reason: "bytes left after the last record",
        })
    );
}

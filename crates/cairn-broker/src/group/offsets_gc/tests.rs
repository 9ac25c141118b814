//! `Liveness` over hand-built batches: what a scan calls superseded, and what it copies forward.

use bytes::{Bytes, BytesMut};
use cairn_codec::batch::{BatchBuilder, Compression, RecordInput, rewrite_assigned_fields};
use cairn_codec::{LeaderEpoch, Offset};

use super::*;
use crate::group::offset_record::{encode_key, encode_value};

fn key(group: &str, partition: u32) -> Vec<u8> {
    encode_key(&OffsetKey {
        group: group.to_string(),
        partition: TopicPartition {
            topic: "orders".to_string(),
            partition,
        },
    })
}

fn value(offset: i64) -> Vec<u8> {
    encode_value(&OffsetValue {
        offset,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp_ms: 7,
    })
}

/// One batch at `base` of `records` (key, value or tombstone).
fn batch(base: u64, records: &[(Vec<u8>, Option<Vec<u8>>)]) -> Batch {
    let mut builder = BatchBuilder::new(Compression::None);
    for (key, value) in records {
        builder
            .push(&RecordInput {
                key: Some(key),
                value: value.as_deref(),
                headers: &[],
                timestamp_ms: 1,
            })
            .unwrap();
    }
    let mut bytes = BytesMut::from(&builder.build().unwrap()[..]);
    assert!(rewrite_assigned_fields(
        &mut bytes,
        Offset(base),
        LeaderEpoch(1)
    ));
    Batch::validate(Bytes::from(bytes)).unwrap()
}

/// A scan of `batches` (one record each, from offset 0) committed up to `end`.
fn scan(records: &[(Vec<u8>, Option<Vec<u8>>)], end: u64) -> Liveness {
    let mut liveness = Liveness::new(Offset(end));
    for (at, record) in records.iter().enumerate() {
        if liveness
            .visit(&batch(at as u64, std::slice::from_ref(record)))
            .is_break()
        {
            break;
        }
    }
    liveness
}

#[test]
fn the_oldest_record_in_force_bounds_what_is_superseded() {
    let records = [
        (key("g", 0), Some(value(1))), // 0: superseded by 3
        (key("g", 1), Some(value(1))), // 1: in force
        (key("h", 0), Some(value(1))), // 2: superseded by 4's tombstone
        (key("g", 0), Some(value(2))), // 3: in force
        (key("h", 0), None),           // 4: a tombstone holds nothing
    ];
    assert_eq!(scan(&records, 5).superseded_below(), Offset(1));
    // Past the high watermark nothing counts: record 3 is not known yet, so 0 is in force.
    assert_eq!(scan(&records, 3).superseded_below(), Offset(0));
}

#[test]
fn with_nothing_in_force_everything_committed_is_superseded() {
    let records = [(key("g", 0), Some(value(1))), (key("g", 0), None)];
    assert_eq!(scan(&records, 2).superseded_below(), Offset(2));
    assert_eq!(Liveness::new(Offset(9)).superseded_below(), Offset(9));
}

#[test]
fn a_record_loading_cannot_read_ends_what_the_scan_judges() {
    let mut records = vec![
        (key("g", 0), Some(value(1))), // 0: superseded by 1
        (key("g", 0), Some(value(2))), // 1: in force as far as the scan can tell
    ];
    // A value of a version this binary does not know, then a newer commit past it: the scan
    // stops at it, so neither it nor anything after it is judged.
    records.push((key("g", 0), Some(b"\x00\x09".to_vec())));
    records.push((key("g", 0), Some(value(3))));
    assert_eq!(scan(&records, 4).superseded_below(), Offset(1));
    let unreadable_key = [(b"not a key".to_vec(), Some(value(1)))];
    assert_eq!(scan(&unreadable_key, 1).superseded_below(), Offset(0));
}

#[test]
fn damage_stops_what_counts_as_superseded() {
    let records = [(key("g", 0), Some(value(1))), (key("g", 0), Some(value(2)))];
    let mut liveness = scan(&records, 2);
    assert_eq!(liveness.superseded_below(), Offset(1));
    liveness.damaged_at(Offset(0));
    assert_eq!(liveness.superseded_below(), Offset(0));
}

#[test]
fn old_keys_in_force_are_copied_forward_only_once_most_of_the_log_is_garbage() {
    // Key (g, 0) committed once at 0, then (g, 1) committed over and over.
    let mut records = vec![(key("g", 0), Some(value(1)))];
    let n = usize::try_from(COPY_FORWARD_MIN_GARBAGE).unwrap();
    records.extend((0..n).map(|i| (key("g", 1), Some(value(i as i64)))));
    let liveness = scan(&records, records.len() as u64);
    assert_eq!(liveness.superseded_below(), Offset(0));
    let keys = liveness.keys_to_copy_forward();
    let expected_value = OffsetValue {
        offset: 1,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp_ms: 7,
    };
    assert_eq!(
        keys,
        vec![(
            OffsetKey {
                group: "g".to_string(),
                partition: TopicPartition {
                    topic: "orders".to_string(),
                    partition: 0,
                },
            },
            expected_value
        )],
        "only the old key, with its newest value: the newest (g, 1) is at the end"
    );
    // Under the minimum, nothing moves.
    let short = scan(&records[..n / 2], (n / 2) as u64);
    assert!(short.keys_to_copy_forward().is_empty());
}

#[test]
fn nothing_is_copied_forward_when_the_scan_stopped_short_of_the_high_watermark() {
    // (g, 0) committed first, then (g, 1) over and over, then (g, 0) again in a value version
    // this binary cannot read: writing (g, 0)'s older value again would put it behind that.
    let mut records = vec![(key("g", 0), Some(value(1)))];
    let n = usize::try_from(COPY_FORWARD_MIN_GARBAGE).unwrap() * 2;
    records.extend((0..n).map(|i| (key("g", 1), Some(value(i as i64)))));
    let mut newer = value(5);
    newer[1] = 9;
    records.push((key("g", 0), Some(newer)));
    records.extend((0..10).map(|i| (key("g", 1), Some(value(i as i64)))));
    let liveness = scan(&records, records.len() as u64);
    assert_eq!(liveness.superseded_below(), Offset(0));
    assert!(liveness.keys_to_copy_forward().is_empty());
}

//! Keyed records for the compaction tests: building batches of (key, value) records, and
//! reading every visible record back with its offset and timestamp.

use cairn_log::batch::{Batch, BatchBuilder, Compression, ProducerFields, RecordInput};
use cairn_log::{FlushPolicy, LogConfig, LogReader, Offset};

/// One record as the tests see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyed {
    pub offset: Offset,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp_ms: i64,
}

/// A batch of `(key, value)` records, all at `timestamp_ms`, compressed with `codec`, for an
/// optional idempotent producer `(producer id, base sequence)`.
pub fn keyed_batch(
    records: &[(Option<&str>, Option<&str>)],
    codec: Compression,
    timestamp_ms: i64,
    producer: Option<(i64, i32)>,
) -> Batch {
    let mut builder = BatchBuilder::new(codec);
    if let Some((producer_id, base_sequence)) = producer {
        builder.set_producer(ProducerFields {
            producer_id,
            producer_epoch: 0,
            base_sequence,
        });
    }
    for (idx, (key, value)) in records.iter().enumerate() {
        builder
            .push(&RecordInput {
                key: key.map(str::as_bytes),
                value: value.map(str::as_bytes),
                headers: &[],
                timestamp_ms: timestamp_ms + idx as i64,
            })
            .unwrap();
    }
    Batch::validate(builder.build().unwrap()).unwrap()
}

/// A compacted log's config: no retention, no automatic roll, dense indexes.
pub fn compact_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 64,
        segment_index_bytes: 4096,
        retention_ms: None,
        compact: true,
        delete_retention_ms: 1000,
        flush_policy: FlushPolicy::Os,
        ..LogConfig::default()
    }
}

/// Every visible record from the log start, in order, each batch's CRC checked by the read.
pub fn read_records(reader: &LogReader) -> Vec<Keyed> {
    read_batches(reader)
        .iter()
        .flat_map(|batch| {
            let records = batch.records(1 << 24).unwrap();
            records
                .iter()
                .map(|r| {
                    let r = r.unwrap();
                    Keyed {
                        offset: batch.base_offset().plus(r.offset_delta as u64),
                        key: r.key.map(<[u8]>::to_vec),
                        value: r.value.map(<[u8]>::to_vec),
                        timestamp_ms: batch.record_timestamp(&r),
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every visible batch from the log start (meta entries included), each once.
pub fn read_batches(reader: &LogReader) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut next = reader.log_start_offset();
    loop {
        let result = reader.read(next.as_i64(), 1 << 20).unwrap();
        if result.is_empty() {
            return out;
        }
        for batch in result.batches() {
            if batch.is_meta() || batch.base_offset().plus(batch.offset_count()) > next {
                out.push(batch);
            }
        }
        assert!(result.next_offset > next, "read made no progress at {next}");
        next = result.next_offset;
    }
}

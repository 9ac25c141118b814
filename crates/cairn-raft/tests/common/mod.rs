//! Helpers shared by cairn-raft's integration tests: record batches and the entries holding
//! them.
#![allow(
    dead_code,
    reason = "each test binary uses a different subset of these helpers"
)]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure here is a failed test"
)]

use bytes::Bytes;
use cairn_log::batch::{BatchBuilder, Compression, RecordInput};
use cairn_raft::purge_file::log_id;
use cairn_raft::{BatchData, PartitionRaft};
use openraft::{Entry, EntryPayload};

/// A batch of `count` small unkeyed records whose values are `{tag}-{i}`.
pub fn records(count: usize, tag: &str) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None);
    for idx in 0..count {
        let value = format!("{tag}-{idx}");
        builder
            .push(&RecordInput {
                key: None,
                value: Some(value.as_bytes()),
                headers: &[],
                timestamp_ms: 1,
            })
            .unwrap();
    }
    builder.build().unwrap()
}

/// A normal entry at (`term`, `index`) holding `count` records tagged `{term}/{index}`.
pub fn normal(term: u64, index: u64, count: usize) -> Entry<PartitionRaft> {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(BatchData(records(count, &format!("{term}/{index}")))),
    }
}

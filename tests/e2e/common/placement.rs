//! Where a record sits in every copy of a partition, read straight from each node's segment
//! files: the batch holding it, with the producer id, epoch and sequence and the Raft term that
//! wrote it. A checker that finds a record away from where it was acknowledged prints this, so
//! one failure tells a duplicate (two batches, and whose) from a wrong acknowledgement (one).

use std::fmt::Write as _;
use std::path::Path;

use bytes::Bytes;
use cairn_log::batch::{Batch, frame_len};

/// One batch of a copy that holds a wanted value.
#[derive(Debug)]
pub struct Placement {
    /// The node whose copy it is.
    pub node: usize,
    /// The record's offset.
    pub offset: i64,
    /// The batch's base offset and offset count.
    pub batch_base_offset: i64,
    pub batch_offset_count: u64,
    /// The Raft term that appended the batch (its partitionLeaderEpoch).
    pub term: i32,
    /// The producer fields.
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    /// The segment file and the byte position of the batch in it.
    pub segment: String,
    pub position: usize,
}

/// Every batch of `topic`-`partition` on nodes `1..=nodes` under `dir` holding a record whose
/// value is `value`.
pub fn placements(
    dir: &Path,
    topic: &str,
    nodes: usize,
    partition: i32,
    value: &str,
) -> Vec<Placement> {
    let mut found = Vec::new();
    for node in 1..=nodes {
        for segment in segment_files(dir, topic, node, partition) {
            let Ok(bytes) = std::fs::read(&segment) else {
                continue;
            };
            let bytes = Bytes::from(bytes);
            let mut position = 0;
            while let Some(rest) = bytes.get(position..) {
                let Ok(length) = frame_len(rest) else { break };
                let Ok(batch) = Batch::validate_prefix(&bytes.slice(position..)) else {
                    break;
                };
                let header = *batch.header();
                if let Ok(records) = batch.records(64 << 20) {
                    for record in records.iter().flatten() {
                        if record.value == Some(value.as_bytes()) {
                            found.push(Placement {
                                node,
                                offset: header.base_offset + i64::from(record.offset_delta),
                                batch_base_offset: header.base_offset,
                                batch_offset_count: batch.offset_count(),
                                term: header.partition_leader_epoch,
                                producer_id: header.producer_id,
                                producer_epoch: header.producer_epoch,
                                base_sequence: header.base_sequence,
                                segment: segment.display().to_string(),
                                position,
                            });
                        }
                    }
                }
                position += length;
            }
        }
    }
    found
}

/// [`placements`], one line each, for a failure message.
pub fn describe_placements(
    dir: &Path,
    topic: &str,
    nodes: usize,
    partition: i32,
    value: &str,
) -> String {
    let mut out = String::new();
    for p in placements(dir, topic, nodes, partition, value) {
        let _ = writeln!(
            out,
            "  node {} offset {} in batch {}+{} term {} producer {}/{} sequence {} ({} @ {})",
            p.node,
            p.offset,
            p.batch_base_offset,
            p.batch_offset_count,
            p.term,
            p.producer_id,
            p.producer_epoch,
            p.base_sequence,
            p.segment,
            p.position
        );
    }
    if out.is_empty() {
        out.push_str("  (in no copy's segment files)\n");
    }
    out
}

/// The `.log` segment files of `topic`-`partition`'s copy on `node`, in order.
fn segment_files(dir: &Path, topic: &str, node: usize, partition: i32) -> Vec<std::path::PathBuf> {
    let replicas = dir.join(format!("node-{node}")).join("replicas");
    let Ok(entries) = std::fs::read_dir(&replicas) else {
        return Vec::new();
    };
    let prefix = format!("{topic}-{partition}.g");
    let mut segments = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // A copy given up is renamed `<name>.<n>.deleting` and freed in the background.
        if !name.starts_with(&prefix) || name.ends_with(".deleting") {
            continue;
        }
        let Ok(files) = std::fs::read_dir(entry.path()) else {
            continue;
        };
        segments.extend(
            files
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log")),
        );
    }
    segments.sort();
    segments
}

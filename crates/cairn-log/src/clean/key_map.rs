//! The cleaner's two read passes over a snapshot of the log, both off the writer's thread: the
//! key map (each key's newest offset in the range being cleaned) and the last batch of each
//! producer id in the whole visible log. Neither pass writes anything.
//!
//! The key map holds whole keys, not hashes (Kafka keeps 16-byte digests): a hash collision
//! would silently drop the newest value of some key. The cost is memory, bounded by
//! [`MAX_KEY_MAP_BYTES`]; a range whose keys do not fit is not cleaned.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::batch::{Batch, MAX_DECOMPRESSED_BATCH_BYTES, Record};
use crate::error::LogError;
use crate::segment::{BatchWalker, SegmentView, WalkError};
use crate::types::{FilePos, Offset};

/// Most memory the key map may take (key bytes plus a fixed overhead per key). Past it the
/// clean stops with [`LogError::CleanerKeyMapFull`] and nothing changes.
pub const MAX_KEY_MAP_BYTES: usize = 256 << 20;
/// What one key costs in the map besides its bytes (the `Vec`, the offset, the table slot).
const KEY_OVERHEAD_BYTES: usize = 48;

/// Each key's newest offset in the range being cleaned.
#[derive(Debug, Default)]
pub(crate) struct KeyMap {
    latest: HashMap<Vec<u8>, Offset>,
    bytes: usize,
}

impl KeyMap {
    /// The newest offset of `key`, if the range holds it.
    pub(crate) fn latest(&self, key: &[u8]) -> Option<Offset> {
        self.latest.get(key).copied()
    }

    /// Reads every compactable record of `sources` (whole sealed segments, in offset order).
    pub(crate) fn build(
        dir: &std::path::Path,
        sources: &[SegmentView],
        cancel: &AtomicBool,
    ) -> Result<KeyMap, LogError> {
        let mut map = KeyMap::default();
        for view in sources {
            for walked in walk_segment(view, view.sealed_bytes.unwrap_or_default()) {
                if cancel.load(Ordering::Relaxed) {
                    return Err(LogError::Closed);
                }
                let walked = walked.map_err(|e| corrupt(view, e))?;
                map.add_batch(&walked.batch);
                if map.bytes > MAX_KEY_MAP_BYTES {
                    return Err(LogError::CleanerKeyMapFull {
                        dir: dir.to_path_buf(),
                        limit_bytes: MAX_KEY_MAP_BYTES,
                    });
                }
            }
        }
        Ok(map)
    }

    fn add_batch(&mut self, batch: &Batch) {
        if !is_compactable(batch) {
            return;
        }
        // A batch whose records cannot be read is kept whole by the filter, so its keys
        // supersede nothing: leaving them out of the map is what keeps older values alive.
        let Ok(records) = batch.records(MAX_DECOMPRESSED_BATCH_BYTES) else {
            return;
        };
        let mut parsed = Vec::with_capacity(batch.record_count() as usize);
        for record in records.iter() {
            let Some((offset, record)) = record
                .ok()
                .and_then(|r| record_offset(batch, &r).map(|offset| (offset, r)))
            else {
                return;
            };
            if let Some(key) = record.key {
                parsed.push((offset, key));
            }
        }
        for (offset, key) in parsed {
            match self.latest.get_mut(key) {
                Some(latest) => *latest = (*latest).max(offset),
                None => {
                    self.bytes += key.len() + KEY_OVERHEAD_BYTES;
                    self.latest.insert(key.to_vec(), offset);
                }
            }
        }
    }
}

/// The base offset of the last batch of each producer id in the visible log: the batch whose
/// header the broker rebuilds that producer's sequence state from, so the cleaner must keep it.
/// `views` pairs each segment with how far readers may see into it. A damaged batch ends that
/// segment's scan: missing a later batch only makes the cleaner keep an earlier one.
pub(crate) fn last_producer_batches(
    views: &[(SegmentView, FilePos)],
    cancel: &AtomicBool,
) -> Result<HashMap<i64, Offset>, LogError> {
    let mut last = HashMap::new();
    for (view, end) in views {
        for walked in walk_segment(view, *end) {
            if cancel.load(Ordering::Relaxed) {
                return Err(LogError::Closed);
            }
            let Ok(walked) = walked else { break };
            let header = walked.batch.header();
            if header.producer_id >= 0 && !walked.batch.is_meta() {
                last.insert(header.producer_id, walked.batch.base_offset());
            }
        }
    }
    Ok(last)
}

/// True for a batch whose records the cleaner may remove: a data batch that is neither a control
/// batch (a transaction marker or a Cairn meta entry) nor transactional (Cairn has no
/// transaction coordinator, so it cannot tell committed records from aborted ones).
pub(crate) fn is_compactable(batch: &Batch) -> bool {
    let attributes = batch.header().attributes;
    !batch.is_meta() && !attributes.is_control() && !attributes.is_transactional()
}

/// The offset of `record` in `batch`, if its delta is a valid one (`Batch::record_offset`).
pub(crate) fn record_offset(batch: &Batch, record: &Record<'_>) -> Option<Offset> {
    batch.record_offset(record, 0).ok()
}

/// Walks a segment's batches from its start up to `end`.
pub(crate) fn walk_segment(view: &SegmentView, end: FilePos) -> BatchWalker {
    BatchWalker::new(view.data.clone(), FilePos(0), end, Some(view.base_offset))
        .allow_gaps(view.compacted)
}

pub(crate) fn corrupt(view: &SegmentView, err: WalkError) -> LogError {
    LogError::CorruptBatch {
        path: view.log_path.to_path_buf(),
        position: err.position,
        offset: view.base_offset,
        reason: err.reason,
    }
}

//! What a reader holds of a segment: its mapped bytes (zero-copy `Bytes`) and indexes. A view
//! is immutable and cheap to clone; the writer publishes a new one when the segment is sealed,
//! remapped or truncated.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use super::appender::SegmentIndexes;
use crate::types::{EntryIndex, FilePos, Offset};

/// A reader's handle on one segment.
#[derive(Clone, Debug)]
pub(crate) struct SegmentView {
    pub(crate) base_offset: Offset,
    /// The entry index of the segment's first entry.
    pub(crate) base_entry: EntryIndex,
    pub(crate) log_path: Arc<PathBuf>,
    /// The mapped `.log`. For the active segment the mapping can be longer than the file: only
    /// bytes below the published visible end may be touched.
    pub(crate) data: Bytes,
    pub(crate) indexes: Arc<SegmentIndexes>,
    /// Bytes in the file for a sealed segment; `None` for the active one.
    pub(crate) sealed_bytes: Option<FilePos>,
    /// Largest record timestamp of a sealed segment (`i64::MIN` when empty); `None` for the
    /// active one, which readers scan.
    pub(crate) max_timestamp: Option<i64>,
    /// True when compaction rewrote the segment: its batches may leave offset gaps between
    /// them, so walks use [`super::BatchWalker::allow_gaps`].
    pub(crate) compacted: bool,
}

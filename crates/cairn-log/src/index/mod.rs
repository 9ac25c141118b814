//! The three sparse index files of a segment, all mmap'd and all caches of the `.log`:
//! `.index` (offset -> position), `.timeindex` (timestamp -> offset) and `.entryindex`
//! (entry index -> offset and position). Formats: `segments-format.md`, "Index files".

mod entry_index;
mod mmap_index;
mod offset_index;
mod time_index;

pub use entry_index::ENTRY_INDEX_ENTRY_BYTES;
pub(crate) use entry_index::{EntryIndexFile, EntryPoint};
pub use offset_index::OFFSET_INDEX_ENTRY_BYTES;
pub(crate) use offset_index::OffsetIndex;
pub use time_index::TIME_INDEX_ENTRY_BYTES;
pub(crate) use time_index::TimeIndex;

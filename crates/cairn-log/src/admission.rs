//! A hook for deciding, on the writer thread and in order, whether each append request is
//! written: the broker uses it for idempotent producers (a retried batch is answered with its
//! first offsets; a sequence gap is refused) without the log knowing what a producer is.
//!
//! The hook sees each request of a group commit with the offset it would get, before anything
//! is written, so it can account for earlier requests of the same group. When the group
//! becomes durable it is told to commit what it admitted; when the group fails, to forget it.

use crate::batch::Batch;
use crate::error::LogError;
use crate::log::AppendInfo;
use crate::types::Offset;

/// What to do with one append request.
#[derive(Debug)]
pub enum Admission {
    /// Write it.
    Append,
    /// It was written before: answer with these results and write nothing.
    Duplicate(Vec<AppendInfo>),
    /// Refuse it with this error (typically [`LogError::Rejected`]).
    Reject(LogError),
}

/// Decides on append requests; see the module docs. Runs on the partition's writer thread.
pub trait AppendFilter: Send + std::fmt::Debug {
    /// Decides on `batches`, which would be written starting at `next_offset`. Admitting one
    /// must be remembered as pending, so that later requests of the same group see it.
    fn admit(&mut self, batches: &[Batch], next_offset: Offset) -> Admission;
    /// Everything admitted since the last commit or rollback is written under the log's flush
    /// policy (the point at which it is acknowledged); the log now ends at `log_end`.
    fn commit(&mut self, log_end: Offset);
    /// Everything admitted since the last commit or rollback was not written.
    fn rollback(&mut self);
    /// The log is about to close cleanly at `log_end` (flushed, nothing pending): the filter
    /// may save what it knows so that the next open need not rebuild it from the log.
    fn close(&mut self, log_end: Offset) {
        let _ = log_end;
    }
}

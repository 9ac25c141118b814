//! Appending: offsets and entry indexes are assigned here and nowhere else, batches are written
//! in one `pwritev` per segment touched, and the high watermark moves only once the flush policy
//! is met. A request is all or nothing: it is checked whole before any byte is written, and an
//! I/O failure undoes the whole group.

use super::Log;
use crate::batch::Batch;
use crate::config::{FlushPolicy, MAX_SEGMENT_BYTES};
use crate::error::LogError;
use crate::segment::Segment;
use crate::types::{EntryIndex, LeaderEpoch, Offset};

/// Where an appended batch landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    /// The offset of the batch's first record (for a meta entry: the next offset, which it does
    /// not take).
    pub base_offset: Offset,
    /// The offset after the batch's last record.
    pub next_offset: Offset,
    /// The batch's entry index.
    pub entry: EntryIndex,
    /// The leader epoch written into the batch.
    pub leader_epoch: LeaderEpoch,
}

impl AppendInfo {
    /// The offset of the last record, or `None` for a meta entry.
    pub fn last_offset(&self) -> Option<Offset> {
        (self.next_offset > self.base_offset).then(|| Offset(self.next_offset.0 - 1))
    }
}

impl Log {
    /// Appends `batches` as one all-or-nothing request and meets the flush policy before
    /// returning: under `always` the batches are fsynced and visible when this returns.
    /// `epoch` overrides each batch's leader epoch (a leader stamping its term); `None` keeps
    /// the epoch the batch carries (a follower copying the leader's batches).
    ///
    /// # Errors
    /// [`LogError::BatchTooLarge`], [`LogError::DiskFull`] (retriable, nothing written),
    /// [`LogError::Poisoned`] after an earlier or current unrecoverable I/O failure.
    pub fn append(
        &mut self,
        batches: &[Batch],
        epoch: Option<LeaderEpoch>,
        now_ms: i64,
    ) -> Result<Vec<AppendInfo>, LogError> {
        let mut results = self.append_group(&[(batches, epoch)], now_ms)?;
        self.commit()?;
        results.pop().expect("one result per request")
    }

    /// Writes several requests in one group, without fsync: the group-commit primitive. Each
    /// request is its batches and the epoch to stamp on them (see [`Log::append`]).
    /// Returns a result per request (a request failing its checks does not affect the others);
    /// an `Err` means an I/O failure undid the whole group. Call [`Log::commit`] afterwards.
    ///
    /// # Errors
    /// [`LogError::DiskFull`] or [`LogError::Poisoned`] for the whole group.
    pub fn append_group(
        &mut self,
        requests: &[(&[Batch], Option<LeaderEpoch>)],
        now_ms: i64,
    ) -> Result<Vec<Result<Vec<AppendInfo>, LogError>>, LogError> {
        self.check_writable()?;
        self.last_now_ms = self.last_now_ms.max(now_ms);
        let group_start = (self.log_end_offset(), self.next_entry());
        let mut results = Vec::with_capacity(requests.len());
        let mut staged = Staged::default();
        for &(request, epoch) in requests {
            if let Err(err) = self.check_request(request) {
                results.push(Err(err));
                continue;
            }
            let mut infos = Vec::with_capacity(request.len());
            for batch in request {
                let info = match self.stage(batch, epoch, &mut staged, now_ms) {
                    Ok(info) => info,
                    Err(err) => return Err(self.undo_group(group_start, err)),
                };
                infos.push(info);
            }
            results.push(Ok(infos));
        }
        if let Err(err) = self.write_staged(&staged) {
            return Err(self.undo_group(group_start, err));
        }
        // Entry reads (a Raft leader shipping entries) see the group from here on; readers by
        // offset still stop at the visible end, which only the flush policy or the caller moves.
        self.publish_high_watermark();
        Ok(results)
    }

    /// Meets the flush policy for everything written so far and advances the high watermark
    /// (when it follows the log end). Under `always` this is the group's one `fdatasync`.
    ///
    /// # Errors
    /// [`LogError::Poisoned`] if the fsync fails: nothing written since the last good fsync may
    /// be acknowledged.
    pub fn commit(&mut self) -> Result<(), LogError> {
        match self.cfg.flush_policy {
            FlushPolicy::Always => self.flush(),
            FlushPolicy::IntervalMs(_) | FlushPolicy::Os => {
                self.check_writable()?;
                self.advance_high_watermark_to_end();
                Ok(())
            }
        }
    }

    /// fsyncs the active segment now (sealed ones were fsynced when sealed) and advances the
    /// high watermark (when it follows the log end).
    ///
    /// # Errors
    /// [`LogError::Poisoned`]: an fsync error is never retried.
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.check_writable()?;
        if let Err(source) = self.active().sync() {
            let path = self.active().log_path.display().to_string();
            return Err(self.poison(format!("fdatasync {path}: {source}")));
        }
        self.advance_high_watermark_to_end();
        Ok(())
    }

    /// Seals the active segment and starts a new one at the log end (unless the active segment
    /// holds no offsets yet).
    ///
    /// # Errors
    /// I/O errors creating the new segment (nothing changes), or [`LogError::Poisoned`] if
    /// sealing the old one fails.
    pub fn roll(&mut self, now_ms: i64) -> Result<(), LogError> {
        self.check_writable()?;
        let active = self.active();
        if active.state.next_offset == active.base_offset {
            return Ok(());
        }
        let (base, base_entry) = (active.state.next_offset, active.state.next_entry);
        // Seal before the next segment exists: a crash in between then leaves the sealed
        // segment last, and recovery rescans it. The other order could leave a non-last
        // segment whose indexes were never trimmed, full of zeroed entries.
        if let Err(err) = self.active_mut().seal() {
            return Err(self.poison(format!("sealing segment for roll: {err}")));
        }
        let next = match Segment::create(&self.dir, base, base_entry, &self.cfg, now_ms) {
            Ok(next) => next,
            Err(err) => {
                // Typically a full disk: carry on appending to the old segment.
                let cfg = self.cfg.clone();
                if let Err(reopen) = self.active_mut().reactivate(&cfg, now_ms) {
                    return Err(self.poison(format!(
                        "{err}; reopening the sealed segment failed: {reopen}"
                    )));
                }
                return Err(disk_full_or(err));
            }
        };
        // The old segment is sealed now; without the new one in the list the log cannot take
        // appends, so a failure here stops it.
        if let Err(err) = crate::checkpoint::fsync_dir(&self.dir) {
            return Err(self.poison(format!("fsync directory after roll: {err}")));
        }
        self.segments.push(next);
        self.publish();
        Ok(())
    }

    pub(crate) fn check_request(&self, request: &[Batch]) -> Result<(), LogError> {
        if !self.enforces_message_size() {
            return Ok(());
        }
        let max_bytes = self.cfg.max_message_bytes as usize;
        for batch in request {
            if batch.len_bytes() > max_bytes {
                return Err(LogError::BatchTooLarge {
                    size_bytes: batch.len_bytes(),
                    max_bytes,
                });
            }
        }
        Ok(())
    }

    /// Whether appends over `max.message.bytes` are refused here. Not in a replica's log
    /// ([`Log::open_replica`]): its entries were admitted by its group's leader, which checks
    /// the limit before it proposes, and storage that refused a decided entry would stop the
    /// group (a Raft log cannot skip an entry), as would a follower whose copy of the topic's
    /// config changed after the leader took the entry.
    fn enforces_message_size(&self) -> bool {
        self.high_watermark_follows_end
    }

    /// Assigns offsets to one batch, rolling first if it does not fit the active segment.
    fn stage<'a>(
        &mut self,
        batch: &'a Batch,
        epoch: Option<LeaderEpoch>,
        staged: &mut Staged<'a>,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let (pending_next, _) = self.pending_end(staged);
        let last = pending_next.plus(batch.offset_count().saturating_sub(1));
        let roll_bytes = staged.bytes + batch.len_bytes();
        if self
            .active()
            .should_roll(roll_bytes, pending_next, last, &self.cfg, now_ms)
        {
            self.write_staged(staged)?;
            staged.clear();
            self.roll(now_ms)?;
        }
        if self.active().state.size.as_usize() + staged.bytes + batch.len_bytes()
            > MAX_SEGMENT_BYTES as usize
        {
            // Only a segment holding nothing but meta entries can get here: it cannot roll
            // (the next segment would have the same base offset) and positions are 32-bit.
            return Err(LogError::SegmentFull {
                path: self.active().log_path.to_path_buf(),
            });
        }
        let (base_offset, entry) = self.pending_end(staged);
        let leader_epoch = epoch.unwrap_or_else(|| batch.leader_epoch());
        let next_offset = base_offset.plus(batch.offset_count());
        assert!(
            next_offset >= base_offset,
            "offsets must not go backwards: {base_offset} -> {next_offset}"
        );
        staged.push(batch, batch.assigned_prefix(base_offset, leader_epoch));
        Ok(AppendInfo {
            base_offset,
            next_offset,
            entry,
            leader_epoch,
        })
    }

    /// The next offset and entry after the active segment plus what is staged.
    fn pending_end(&self, staged: &Staged<'_>) -> (Offset, EntryIndex) {
        let state = &self.active().state;
        (
            state.next_offset.plus(staged.offsets),
            state.next_entry.plus(staged.batches.len() as u64),
        )
    }

    fn write_staged(&mut self, staged: &Staged<'_>) -> Result<(), LogError> {
        if staged.batches.is_empty() {
            return Ok(());
        }
        let cfg = self.cfg.clone();
        let active = self.active_mut();
        let path = active.log_path.to_path_buf();
        let written = active.write_batches(&staged.batches, &cfg);
        // Keep the mapping ahead of the file after every write (a segment of meta entries only
        // can outgrow it within a group). Publishing the new view shows nothing new: what
        // readers may see is `self.visible`, which only a commit moves.
        if active.ensure_mapped(&cfg)? {
            self.publish();
        }
        written.map_err(|source| {
            if is_disk_full(&source) {
                LogError::DiskFull { path }
            } else {
                LogError::io("write segment", &path, source)
            }
        })
    }

    /// Undoes a partly written group after `err`: cuts the log back to where the group started.
    /// A full disk stays a retriable error; anything else, or a failed undo, poisons the log.
    fn undo_group(&mut self, (offset, entry): (Offset, EntryIndex), err: LogError) -> LogError {
        if let Err(undo) = self.truncate_entries_unchecked(entry) {
            return self.poison(format!(
                "{err}; then undoing the partial group failed: {undo}"
            ));
        }
        debug_assert_eq!(self.log_end_offset(), offset);
        match err {
            LogError::DiskFull { .. }
            | LogError::Poisoned { .. }
            | LogError::SegmentFull { .. } => err,
            other => self.poison(other.to_string()),
        }
    }

    /// After the flush policy is met: a single replica shows everything written so far,
    /// meta entries included.
    fn advance_high_watermark_to_end(&mut self) {
        if self.high_watermark_follows_end {
            self.high_watermark = self.log_end_offset();
            let active = self.active();
            self.visible = (active.base_offset, active.state.size);
            self.publish_high_watermark();
        }
    }
}

/// Batches of a group not yet written to the active segment, with their assigned prefixes,
/// and running totals so each new batch costs O(1) to place.
#[derive(Default)]
struct Staged<'a> {
    batches: Vec<(&'a Batch, [u8; 16])>,
    bytes: usize,
    offsets: u64,
}

impl<'a> Staged<'a> {
    fn push(&mut self, batch: &'a Batch, prefix: [u8; 16]) {
        self.bytes += batch.len_bytes();
        self.offsets += batch.offset_count();
        self.batches.push((batch, prefix));
    }

    fn clear(&mut self) {
        *self = Staged::default();
    }
}

fn is_disk_full(err: &std::io::Error) -> bool {
    err.raw_os_error() == Some(libc::ENOSPC) || err.raw_os_error() == Some(libc::EDQUOT)
}

fn disk_full_or(err: LogError) -> LogError {
    match err {
        LogError::Io { path, source, .. } if is_disk_full(&source) => LogError::DiskFull { path },
        other => other,
    }
}

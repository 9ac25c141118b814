//! [`RaftLog`]: one Raft group's storage in one partition directory, shared by its log storage
//! (`log_storage`) and its state machine (`partition_sm`): the `cairn-log` log and its writer
//! thread, the vote, and the purge point.
//!
//! Every write (appends, truncation, purges, vote and checkpoint files) runs on the log's single
//! writer thread, in the order issued: openraft requires its log and vote I/O serialized, and the
//! fsyncs stay off the async runtime. The one invariant: the Raft log is the log's entries from
//! `max(purge point + 1, log start entry)` to its end; nothing below that is ever read.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cairn_log::{
    Clock, DamagedEntries, EntryIndex, LeaderEpoch, Log, LogConfig, LogError, LogReader, LogWriter,
    Offset,
};
use openraft::{LogId, StoredMembership, Vote};

use crate::applied_file::{AppliedState, read_applied};
use crate::durable::{DurableEnd, DurableTracker, NotReached};
use crate::error::RaftStorageError;
use crate::purge_file::{read_purged, write_purged};
use crate::types::{NodeId, PeerNode};
use crate::vote_file::{read_vote, write_vote};

/// A snapshot asked for at an entry, with the membership in force there.
#[derive(Debug, Clone)]
struct SnapshotRequest {
    index: u64,
    membership: StoredMembership<NodeId, PeerNode>,
}

/// A Raft group's storage over one partition log. Cheap to clone (a handle).
#[derive(Clone, Debug)]
pub struct RaftLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    writer: LogWriter,
    reader: LogReader,
    state: Mutex<State>,
    /// The applied state found at open, for the state machine to start from.
    recovered_applied: Option<AppliedState>,
    /// How far appended entries meet the flush policy (what a leader's `acks=leader`, the
    /// state machine and the commit a leader tells its followers wait for). Truncation
    /// lowers it.
    durable: DurableTracker,
    /// Counts damage met by reads of this log that the broker does not see (a leader's
    /// replication reads), so the replica's healer wakes on it.
    damage_seen: tokio::sync::watch::Sender<u64>,
}

#[derive(Debug, Clone, Default)]
struct State {
    vote: Option<Vote<NodeId>>,
    purged: Option<LogId<NodeId>>,
    /// The entry the next snapshot should end at, and the membership in force there (see
    /// [`RaftLog::snapshot_request`]).
    snapshot_request: Option<SnapshotRequest>,
    /// Purges delete the whole segments at or below this entry, whatever retention says (see
    /// [`RaftLog::delete_on_purge_through`]).
    delete_through: Option<u64>,
}

impl RaftLog {
    /// Opens (or creates) the group's storage in `dir`: the log as a replica (nothing visible
    /// until applied), the vote, the purge point and the applied state, then starts the log's
    /// writer thread. The high watermark is put back where the applied state left it.
    /// Blocking (directory scan, fsyncs): call it off the async runtime.
    ///
    /// # Errors
    /// The log's open errors; [`RaftStorageError::CorruptCheckpoint`] for unreadable Raft
    /// metadata (nothing is deleted because of it).
    pub fn open(
        dir: &Path,
        cfg: LogConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<RaftLog, RaftStorageError> {
        let mut log = Log::open_replica(dir, without_compaction(cfg), clock.now_ms())?;
        let vote = read_vote(dir)?;
        let purged = read_purged(dir)?;
        let applied = read_applied(dir)?;
        reconcile(&mut log, purged, applied.as_ref(), clock.now_ms())?;
        let writer = LogWriter::spawn(log, clock)?;
        let reader = writer.reader().clone();
        // Everything recovered at open is on disk.
        let durable = DurableTracker::new(DurableEnd {
            offset: reader.log_end_offset(),
            entry: reader.entry_bounds().1,
        });
        let (damage_seen, _) = tokio::sync::watch::channel(0);
        Ok(RaftLog {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                writer,
                reader,
                state: Mutex::new(State {
                    vote,
                    purged,
                    snapshot_request: None,
                    delete_through: None,
                }),
                recovered_applied: applied,
                durable,
                damage_seen,
            }),
        })
    }

    /// The log's writer (group commit); the broker closes it on shutdown.
    pub fn writer(&self) -> &LogWriter {
        &self.inner.writer
    }

    /// A reader of the log. Reads by offset see only applied (committed) data.
    pub fn reader(&self) -> &LogReader {
        &self.inner.reader
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The applied state found at open.
    pub fn recovered_applied(&self) -> Option<&AppliedState> {
        self.inner.recovered_applied.as_ref()
    }

    /// The saved vote.
    pub fn vote(&self) -> Option<Vote<NodeId>> {
        self.state().vote
    }

    /// The log id of the last purged entry.
    pub fn purged(&self) -> Option<LogId<NodeId>> {
        self.state().purged
    }

    /// Asks that the next snapshot end at entry `index` (the purge point about to be set), with
    /// `membership` the membership in force there, rather than at the last applied entry: see
    /// [`RaftLog::snapshot_request`]. A request below one made before is ignored.
    pub fn request_snapshot_at(&self, index: u64, membership: StoredMembership<NodeId, PeerNode>) {
        let mut state = self.state();
        if state
            .snapshot_request
            .as_ref()
            .is_none_or(|r| r.index < index)
        {
            state.snapshot_request = Some(SnapshotRequest { index, membership });
        }
    }

    /// The entry the next snapshot should end at, and the membership in force there, as last
    /// asked for ([`RaftLog::request_snapshot_at`]) and not below the purge point.
    ///
    /// A snapshot is what a follower gets when it needs entries its leader purged, and it
    /// starts its log over right after the snapshot's last entry. Ending it at the purge point
    /// (the entry before the leader's log start) gives that follower everything the leader
    /// still keeps, as a Kafka follower truncated to its leader's log start then fetches it
    /// all; a snapshot at the last applied entry would start it there and drop the rest, which
    /// a later election could make the partition's whole history.
    pub fn snapshot_request(&self) -> Option<(u64, StoredMembership<NodeId, PeerNode>)> {
        let state = self.state();
        let purged = state.purged.map(|p| p.index);
        state
            .snapshot_request
            .as_ref()
            .filter(|r| Some(r.index) >= purged)
            .map(|r| (r.index, r.membership.clone()))
    }

    /// Whether a snapshot was ever asked for at a point on this log since it opened: from then
    /// on a snapshot never ends anywhere else (the retention purge asks before every build;
    /// only openraft's own schedule, which Cairn's partitions do not use, builds without).
    pub fn snapshots_asked_for(&self) -> bool {
        self.state().snapshot_request.is_some()
    }

    /// The first entry index of the Raft log: past the purge point and the log start.
    pub fn first_entry(&self) -> EntryIndex {
        let (log_start, _) = self.inner.reader.entry_bounds();
        let after_purge = self
            .purged()
            .map_or(EntryIndex(0), |p| EntryIndex(p.index.saturating_add(1)));
        log_start.max(after_purge)
    }

    /// The last entry index retention would delete up to (inclusive), if the entry floor did
    /// not hold it back: what to purge through Raft for retention to happen (build a snapshot
    /// first; openraft purges no further than its last snapshot). `None` when retention would
    /// delete nothing.
    ///
    /// # Errors
    /// [`LogError::Closed`] if the writer has stopped.
    pub async fn retention_purge_index(&self) -> Result<Option<u64>, RaftStorageError> {
        self.with_log(|log, now_ms| {
            log.retention_entry_bound(now_ms)
                .and_then(|bound| bound.0.checked_sub(1))
        })
        .await
    }

    /// The last entry of the leading sealed segments whose records all lie below `offset`: how
    /// far to purge (then [`RaftLog::delete_on_purge_through`]) to delete records the caller
    /// knows nothing needs any more. `None` when no whole segment lies below it.
    ///
    /// # Errors
    /// [`LogError::Closed`] if the writer has stopped.
    pub async fn purge_index_below_offset(
        &self,
        offset: Offset,
    ) -> Result<Option<u64>, RaftStorageError> {
        self.with_log(move |log, _| {
            log.entry_bound_below_offset(offset)
                .and_then(|bound| bound.0.checked_sub(1))
        })
        .await
    }

    /// Has every later purge also delete the whole segments at or below entry `index`, whatever
    /// retention says, in the same step on the writer thread (so that compaction, which may
    /// clean what Raft purged, never starts on them in between). For records known to be
    /// superseded: the caller vouches that nothing reads them again.
    pub fn delete_on_purge_through(&self, index: u64) {
        let mut state = self.state();
        state.delete_through = state.delete_through.max(Some(index));
    }

    /// Saves `vote` durably (on the writer thread, after every write issued before it).
    ///
    /// # Errors
    /// I/O errors writing the file; [`LogError::Closed`].
    pub async fn save_vote(&self, vote: Vote<NodeId>) -> Result<(), RaftStorageError> {
        let dir = self.inner.dir.clone();
        self.inner
            .writer
            .with_log(move |_, _| write_vote(&dir, &vote))
            .await??;
        self.state().vote = Some(vote);
        Ok(())
    }

    /// Purges the Raft log up to `upto` inclusive: saves the purge point (entries at or below
    /// it are never read again), raises the entry floor to the entry after it, and runs a
    /// retention pass, which may now delete the whole segments below it that `retention.ms` /
    /// `retention.bytes` let go. Raft's purge allows deletion; retention decides it, so
    /// openraft's snapshot policy never shortens what consumers can read. A purge past the log
    /// end starts the log over, empty, at the entry after `upto`, at the current log end
    /// offset. A purge at or below the current purge point does nothing.
    ///
    /// # Errors
    /// I/O errors; the log's errors (a failure part-way poisons the log).
    pub async fn purge(&self, upto: LogId<NodeId>) -> Result<(), RaftStorageError> {
        if self.purged() >= Some(upto) {
            return Ok(());
        }
        let dir = self.inner.dir.clone();
        let delete_through = self.state().delete_through;
        self.inner
            .writer
            .with_log(move |log, now_ms| purge_log(&dir, log, upto, delete_through, now_ms))
            .await??;
        self.state().purged = Some(upto);
        Ok(())
    }

    /// Records `upto` as the purge point without touching the log (the state machine resets
    /// the log itself when it installs a snapshot). Runs on the writer thread.
    pub(crate) async fn save_purged(&self, upto: LogId<NodeId>) -> Result<(), RaftStorageError> {
        let dir = self.inner.dir.clone();
        self.inner
            .writer
            .with_log(move |_, _| write_purged(&dir, upto))
            .await??;
        let mut state = self.state();
        state.purged = state.purged.max(Some(upto));
        Ok(())
    }

    /// Records that appended entries up to `last` (the last entry of a flushed group, with the
    /// epoch it was written in) and offset `end` meet the flush policy, unless the log no
    /// longer holds `last` as written (truncated or restarted since: see
    /// [`DurableTracker::advance`]).
    pub(crate) fn note_durable(&self, end: Offset, last: EntryIndex, epoch: LeaderEpoch) {
        let durable = DurableEnd {
            offset: end,
            entry: EntryIndex(last.0.saturating_add(1)),
        };
        self.inner.durable.advance(durable, || {
            self.inner
                .reader
                .entry_headers(last, 1)
                .ok()
                .and_then(|headers| headers.first().copied())
                .is_some_and(|h| h.entry == last && h.leader_epoch == epoch)
        });
    }

    /// Lowers the durable end after a truncation left the log ending at `end`.
    pub(crate) fn note_truncated(&self, end: DurableEnd) {
        self.inner.durable.lower(end);
    }

    /// Sets the durable end after the log started over, empty, at `end`.
    pub(crate) fn note_restarted(&self, end: DurableEnd) {
        self.inner.durable.restart_at(end);
    }

    /// Records that a flush of this log failed: nothing written since becomes durable, and
    /// every wait for it fails.
    pub(crate) fn note_flush_failed(&self) {
        self.inner.durable.fail();
    }

    /// The index after the last entry that meets the flush policy on this node.
    pub(crate) fn durable_entry_end(&self) -> EntryIndex {
        self.inner.durable.end().entry
    }

    /// Waits until the entries ending at `end` meet the flush policy on this node.
    ///
    /// # Errors
    /// [`RaftStorageError::DurableWaitTimedOut`] once `deadline` passes first (the log may have
    /// failed, or stopped appending); [`RaftStorageError::FlushFailed`] once a flush failed.
    pub async fn wait_durable(
        &self,
        end: Offset,
        deadline: tokio::time::Instant,
    ) -> Result<(), RaftStorageError> {
        self.inner
            .durable
            .wait(|d| d.offset >= end, Some(deadline))
            .await
            .map_err(|why| match why {
                NotReached::TimedOut => RaftStorageError::DurableWaitTimedOut { end: end.0 },
                NotReached::Failed => RaftStorageError::FlushFailed,
            })
    }

    /// Waits until every entry before `end` meets the flush policy on this node, however long
    /// that takes (a stuck disk holds it, as it holds everything else of this log).
    ///
    /// # Errors
    /// [`RaftStorageError::FlushFailed`] once a flush failed: they never will.
    pub(crate) async fn wait_entries_durable(
        &self,
        end: EntryIndex,
    ) -> Result<(), RaftStorageError> {
        self.inner
            .durable
            .wait(|d| d.entry >= end, None)
            .await
            .map_err(|_| RaftStorageError::FlushFailed)
    }

    /// Says that a read met a damaged batch in this log: wakes whoever
    /// [subscribed](RaftLog::subscribe_damage) (the replica's healer).
    pub fn note_damage(&self) {
        self.inner
            .damage_seen
            .send_modify(|seen| *seen = seen.wrapping_add(1));
    }

    /// A receiver that changes each time [`RaftLog::note_damage`] is called.
    pub fn subscribe_damage(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.damage_seen.subscribe()
    }

    /// Rewrites the damaged committed entries `range` in place with `batches`, good copies
    /// fetched from a peer (see [`Log::repair_entries`]), on the writer thread, after every
    /// write issued before it. Durable when it returns `Ok`.
    ///
    /// # Errors
    /// The log's `RepairRefused` (nothing written) or `Poisoned` (the write or fsync failed);
    /// [`LogError::Closed`].
    pub async fn repair(
        &self,
        range: DamagedEntries,
        batches: Vec<bytes::Bytes>,
    ) -> Result<(), RaftStorageError> {
        self.with_log(move |log, _| log.repair_entries(&range, &batches))
            .await??;
        Ok(())
    }

    /// Runs `task` on the writer thread with the log (see [`LogWriter::with_log`]).
    pub(crate) async fn with_log<R: Send + 'static>(
        &self,
        task: impl FnOnce(&mut Log, i64) -> R + Send + 'static,
    ) -> Result<R, RaftStorageError> {
        Ok(self.inner.writer.with_log(task).await?)
    }

    /// Runs a quick `task` with the log, on this thread when the writer is idle (see
    /// [`LogWriter::with_log_inline_if_idle`]).
    pub(crate) async fn with_log_inline_if_idle<R: Send + 'static>(
        &self,
        task: impl FnOnce(&mut Log, i64) -> R + Send + 'static,
    ) -> Result<R, RaftStorageError> {
        Ok(self.inner.writer.with_log_inline_if_idle(task).await?)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is two plain values replaced whole; a panic elsewhere cannot tear them.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `cfg` with compaction off: a Raft log's entries keep their indexes, and compaction would
/// renumber them (`segments-format.md` §11.5); a follower sent a snapshot would also start
/// without the cleaned prefix. What a replicated compacted topic keeps is up to retention, or,
/// for `__consumer_offsets`, to the broker's deletion of superseded segments
/// ([`RaftLog::delete_on_purge_through`]).
pub fn without_compaction(mut cfg: LogConfig) -> LogConfig {
    cfg.compact = false;
    cfg
}

fn purge_log(
    dir: &Path,
    log: &mut Log,
    upto: LogId<NodeId>,
    delete_through: Option<u64>,
    now_ms: i64,
) -> Result<(), RaftStorageError> {
    // The purge point first: after a crash the entries below it are gone from the Raft log
    // whether or not their segments are.
    write_purged(dir, upto)?;
    let first_kept = EntryIndex(upto.index.saturating_add(1));
    if log.next_entry() < first_kept {
        let offset = log.log_end_offset();
        log.reset(first_kept, offset, now_ms)?;
    }
    // Purged entries are committed and applied (a purge never passes the last snapshot), so
    // the high watermark may stand past them. A partition's already does; a group whose state
    // machine keeps no high watermark (the controller's) gets one here, without which retention
    // would keep every segment.
    if let Some(last) = log.reader().entry_header(EntryIndex(upto.index))?
        && last.next_offset > log.high_watermark()
    {
        log.set_high_watermark(last.next_offset)?;
    }
    log.set_entry_floor(Some(first_kept));
    log.enforce_retention(now_ms)?;
    if let Some(through) = delete_through {
        let bound = EntryIndex(through.min(upto.index).saturating_add(1));
        log.delete_segments_before_entry(bound)?;
    }
    Ok(())
}

/// Brings the log in line with the Raft metadata at open: a log that ends at or before the
/// purge point (a crash inside a snapshot install, which saves the purge point before it
/// resets the log) starts over after it; the entry floor holds retention below the purge point;
/// the high watermark goes back to the last applied entry.
fn reconcile(
    log: &mut Log,
    purged: Option<LogId<NodeId>>,
    applied: Option<&AppliedState>,
    now_ms: i64,
) -> Result<(), RaftStorageError> {
    let first_kept = purged.map_or(log.log_start_entry(), |p| {
        EntryIndex(p.index.saturating_add(1))
    });
    if log.next_entry() < first_kept {
        // Where the purged entries' records ended on the leader, if the applied state knows
        // it: offsets must be the leader's, whatever this log held.
        let offset = applied
            .filter(|a| a.last_applied == purged)
            .map_or(log.log_end_offset(), |a| Offset(a.next_offset));
        tracing::warn!(dir = %log.dir().display(), next_entry = %log.next_entry(), %first_kept, "log ends before the Raft purge point; starting it over there");
        log.reset(first_kept, offset, now_ms)?;
    }
    log.set_entry_floor(Some(first_kept.max(log.log_start_entry())));
    if let Some(applied) = applied {
        let target = Offset(applied.next_offset).min(log.log_end_offset());
        if target > log.high_watermark()
            && let Err(err) = log.set_high_watermark(target)
        {
            // Not a batch boundary of this log (it lost a tail under a relaxed flush policy):
            // openraft applies again from the leader's commit index and moves it then.
            tracing::warn!(dir = %log.dir().display(), %err, "high watermark not restored at open");
            if matches!(err, LogError::Poisoned { .. }) {
                return Err(err.into());
            }
        }
    }
    Ok(())
}

//! openraft's `RaftLogStorage` and `RaftLogReader` over a `cairn-log` log ([`RaftLog`]): the
//! Raft log *is* the partition's segment log, so a replica writes and fsyncs each batch once.
//!
//! - Append goes through the log's group-committing writer: the batches of one call (one
//!   request per run of entries with the same term) are queued together, `append` returns once
//!   they are written (readable by entry index, as openraft requires), and openraft's flush
//!   callback fires once the flush policy is met (after the group's `fdatasync` under
//!   `always`). An fsync failure poisons the log and reaches openraft as an error; it is never
//!   retried and then acknowledged. On a follower whose writer is idle, the append is written
//!   and fsynced on openraft's task instead, and the callback fires before `append` returns
//!   ([`CairnLogStorage::on_node`]).
//! - Truncate is `Log::truncate_entries_from`; purge is the purge point plus whole segments
//!   (`RaftLog::purge`).
//! - Reads serve entries from the first unpurged one to the log end, uncommitted ones included;
//!   they read mapped pages on the calling task (recent entries, normally in the page cache).
//!   A damaged entry is never returned: a replication read stops before it and reports it
//!   (`RaftLog::note_damage`); any other read fails with the damage.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};

use cairn_log::batch::Batch;
use cairn_log::{EntryIndex, LeaderEpoch, LogError};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, Vote};

use crate::durable::DurableEnd;
use crate::entry_codec::{CairnRaftConfig, decode_entry, encode_entry, epoch_of_term};
use crate::error::RaftStorageError;
use crate::purge_file::log_id;
use crate::raft_log::RaftLog;
use crate::types::NodeId;

/// Bytes a replication read (`limited_get_log_entries`) gathers, at most (one entry more if
/// the first alone is larger).
pub const REPLICATION_READ_BYTES: usize = 4 << 20;

/// openraft's log storage for a group of type config `C` over a [`RaftLog`].
#[derive(Debug)]
pub struct CairnLogStorage<C> {
    raft_log: RaftLog,
    /// This node, once known ([`CairnLogStorage::on_node`]): while another node leads, appends
    /// may be written on openraft's own task when the writer is idle.
    me: Option<NodeId>,
    /// While this node leads, report appends flushed once written
    /// ([`CairnLogStorage::shipping_before_flush`]).
    ship_before_flush: bool,
    _config: PhantomData<fn() -> C>,
}

/// openraft's log reader (one per replication stream) over a [`RaftLog`].
#[derive(Debug)]
pub struct CairnLogReader<C> {
    raft_log: RaftLog,
    _config: PhantomData<fn() -> C>,
}

impl<C> CairnLogStorage<C> {
    /// The log storage of the group stored in `raft_log`.
    pub fn new(raft_log: RaftLog) -> Self {
        CairnLogStorage {
            raft_log,
            me: None,
            ship_before_flush: false,
            _config: PhantomData,
        }
    }

    /// The same storage, told that it is node `me`'s. Then, while the stored vote names another
    /// node as leader, an append finding the writer idle is written and fsynced on the calling
    /// task (`LogWriter::queue_append_written_or_write`): a follower answers its leader only
    /// after the fsync anyway, and this saves the hand-offs to the writer thread and back, and
    /// the task that would wait for the flush. The leader keeps queueing, so that the
    /// appends of proposals arriving during its fsync gather into the next group commit.
    #[must_use]
    pub fn on_node(mut self, me: NodeId) -> Self {
        self.me = Some(me);
        self
    }

    /// The same storage, reporting a leader's appends flushed to openraft as soon as they are
    /// written, while the fsync runs on the writer thread. Needs [`CairnLogStorage::on_node`]
    /// (without it nothing changes).
    ///
    /// Why: openraft 0.9's core waits for the flush callback of each leader append before it
    /// does anything else, shipping the same entries included, so the leader's fsync and its
    /// followers' ran one after the other, and proposals arriving meanwhile could not join
    /// the leader's group commit. Reporting at once lets the entries leave while the fsync
    /// runs. openraft then counts the leader's copy towards a commit before it is durable, so
    /// this is safe only with the other two halves, which hold every effect of a commit until
    /// the leader's copy is durable too: the group's network must bound the commit it tells
    /// followers ([`crate::commit_bound::CommitBound`]), and the state machine must apply an
    /// entry only once it is durable here ([`crate::PartitionStateMachine`] does). Then an
    /// entry is applied (made visible, answered) on a node, or known committed by a follower,
    /// only once the leader and at least one follower hold it durably, exactly as before.
    /// A follower's appends keep the strict order: its answer to the leader counts towards
    /// the commit.
    #[must_use]
    pub fn shipping_before_flush(mut self) -> Self {
        self.ship_before_flush = true;
        self
    }

    /// Whom the stored vote names as leader, seen from this node: `Some(true)` this node,
    /// `Some(false)` another, `None` if this node is unknown ([`CairnLogStorage::on_node`]) or
    /// the vote names no one. An append may be written on the calling task while another node
    /// leads, and reported flushed once written while this one does (with
    /// [`CairnLogStorage::shipping_before_flush`]).
    fn led_by_me(&self) -> Option<bool> {
        let me = self.me?;
        let vote = self.raft_log.vote()?;
        vote.leader_id().voted_for().map(|leader| leader == me)
    }

    /// The underlying storage.
    pub fn raft_log(&self) -> &RaftLog {
        &self.raft_log
    }
}

impl<C: CairnRaftConfig> RaftLogReader<C> for CairnLogStorage<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<C>>, StorageError<NodeId>> {
        read_range(&self.raft_log, &range, usize::MAX).map_err(|e| e.read_logs())
    }
}

impl<C: CairnRaftConfig> RaftLogReader<C> for CairnLogReader<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<C>>, StorageError<NodeId>> {
        read_range(&self.raft_log, &range, usize::MAX).map_err(|e| e.read_logs())
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<C>>, StorageError<NodeId>> {
        read_for_replication(&self.raft_log, start, end).map_err(|e| e.read_logs())
    }
}

/// The entries `[start, end)` a leader ships to a follower, up to the first damaged one: a
/// damaged entry is never shipped, and a storage error here would stop the whole group
/// (openraft's core quits on one), so the entries before it are returned, possibly none
/// (openraft then sends a heartbeat and asks again), and the damage is reported to the
/// replica's healer, which hands the leadership to a follower with a good copy.
fn read_for_replication<C: CairnRaftConfig>(
    raft_log: &RaftLog,
    start: u64,
    end: u64,
) -> Result<Vec<Entry<C>>, RaftStorageError> {
    let first = raft_log.first_entry().0.max(start);
    if first >= end {
        return Ok(Vec::new());
    }
    let count = usize::try_from(end - first).unwrap_or(usize::MAX);
    let (stored, damage) = raft_log.reader().read_entries_until_damage(
        EntryIndex(first),
        count,
        REPLICATION_READ_BYTES,
    );
    if let Some(err) = damage {
        tracing::error!(dir = %raft_log.dir().display(), %err, shipped = stored.len(), "damaged entry met while replicating: not shipped");
        raft_log.note_damage();
    }
    stored.into_iter().map(decode_entry::<C>).collect()
}

/// The entries of `range` the Raft log holds, up to about `max_bytes`.
fn read_range<C: CairnRaftConfig>(
    raft_log: &RaftLog,
    range: &impl RangeBounds<u64>,
    max_bytes: usize,
) -> Result<Vec<Entry<C>>, RaftStorageError> {
    let start = match range.start_bound() {
        Bound::Included(&x) => x,
        Bound::Excluded(&x) => x.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&x) => x.saturating_add(1),
        Bound::Excluded(&x) => x,
        Bound::Unbounded => u64::MAX,
    };
    let first = raft_log.first_entry().0.max(start);
    if first >= end {
        return Ok(Vec::new());
    }
    let count = usize::try_from(end - first).unwrap_or(usize::MAX);
    // Entries a concurrent purge took are simply not returned, which openraft allows.
    let stored = raft_log
        .reader()
        .read_entries(EntryIndex(first), count, max_bytes)?;
    stored.into_iter().map(decode_entry::<C>).collect()
}

impl<C: CairnRaftConfig> RaftLogStorage<C> for CairnLogStorage<C> {
    type LogReader = CairnLogReader<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<NodeId>> {
        let purged = self.raft_log.purged();
        let last = self
            .raft_log
            .reader()
            .last_entry()
            .map_err(|e| RaftStorageError::from(e).read_logs())?;
        let last_in_log = match last {
            Some(header) if header.entry >= self.raft_log.first_entry() => {
                let term = u64::try_from(header.leader_epoch.0).map_err(|_| {
                    RaftStorageError::CorruptEntry {
                        index: header.entry.0,
                        reason: format!("epoch {} is not a term", header.leader_epoch.0),
                    }
                    .read_logs()
                })?;
                Some(log_id(term, header.entry.0))
            }
            _ => None,
        };
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last_in_log.or(purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        CairnLogReader {
            raft_log: self.raft_log.clone(),
            _config: PhantomData,
        }
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.raft_log
            .save_vote(*vote)
            .await
            .map_err(|e| e.write_vote())
    }

    /// The saved vote, never as committed. openraft calls this only at start-up, where a
    /// committed vote for this node restores it as leader of that same term at once
    /// (`Engine::startup`). But this log answers reads before its fsync: a leader whose
    /// followers flushed and committed an entry it had not flushed itself loses that entry in
    /// a power failure, and restored as leader of the same term it would write another entry
    /// under the lost one's log id, which the followers would take for the entry they hold.
    /// Read back uncommitted, the vote still binds this node in that term (it votes for no one
    /// else there), but it starts as a follower and leads again only through an election of a
    /// later term, whose new entries cannot share a log id with anything committed before.
    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.raft_log.vote().map(|vote| Vote {
            committed: false,
            ..vote
        }))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<C>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<C>> = entries.into_iter().collect();
        let led_by_me = self.led_by_me();
        let inline = led_by_me == Some(false);
        let report_written = self.ship_before_flush && led_by_me == Some(true);
        match append_entries(&self.raft_log, &entries, inline).await {
            Ok(Some(durable)) if report_written => {
                // Written: openraft may ship the entries now. Their durability is tracked
                // apart (`RaftLog::note_durable`), and the commit waits for it.
                callback.log_io_completed(Ok(()));
                let dir = self.raft_log.dir().to_path_buf();
                tokio::spawn(async move {
                    if let Err(err) = durable.await {
                        tracing::error!(dir = %dir.display(), %err, "a leader's flush failed after its entries were shipped: nothing of them is applied, and the group stops");
                    }
                });
                Ok(())
            }
            Ok(Some(mut durable)) => {
                // Written on this task: the flush is already met, so report it at once.
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                if let std::task::Poll::Ready(result) = durable.as_mut().poll(&mut cx) {
                    callback.log_io_completed(
                        result.map_err(|err| std::io::Error::other(err.to_string())),
                    );
                    return Ok(());
                }
                // The flush runs on the writer thread; hear about it off this call.
                tokio::spawn(async move {
                    let result = durable
                        .await
                        .map_err(|err| std::io::Error::other(err.to_string()));
                    callback.log_io_completed(result);
                });
                Ok(())
            }
            Ok(None) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(err) => Err(err.write_logs()),
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let from = EntryIndex(log_id.index);
        self.raft_log
            .with_log(move |log, _| {
                log.truncate_entries_from(from)?;
                Ok::<_, LogError>(log.log_end_offset())
            })
            .await
            .and_then(|result| Ok(result?))
            .map(|offset| {
                self.raft_log.note_truncated(DurableEnd {
                    offset,
                    entry: from,
                });
            })
            .map_err(|e| e.write_logs())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.raft_log
            .purge(log_id)
            .await
            .map_err(|e| e.write_logs())
    }
}

/// A future that resolves once appended entries meet the flush policy.
type Durable =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), RaftStorageError>> + Send>>;

/// Writes `entries` and returns, once they are readable, a future for their durability (`None`
/// when there was nothing to write). `inline`: the caller may write them itself when the
/// writer is idle.
async fn append_entries<C: CairnRaftConfig>(
    raft_log: &RaftLog,
    entries: &[Entry<C>],
    inline: bool,
) -> Result<Option<Durable>, RaftStorageError> {
    // Entries at or below the purge point are already covered by a snapshot: nothing to
    // write (openraft's suite appends such entries after a purge).
    let first_kept = raft_log.first_entry().0;
    let skip = entries
        .iter()
        .take_while(|e| e.log_id.index < first_kept)
        .count();
    let entries = &entries[skip..];
    let Some(first) = entries.first() else {
        return Ok(None);
    };
    let first_index = first.log_id.index;
    for (k, entry) in entries.iter().enumerate() {
        let expected = first_index.saturating_add(k as u64);
        if entry.log_id.index != expected {
            return Err(RaftStorageError::Hole {
                expected,
                got: entry.log_id.index,
            });
        }
    }
    prepare_position(raft_log, first_index).await?;
    let mut pending = Vec::new();
    let mut next_index = first_index;
    for (epoch, batches) in runs_by_term(entries)? {
        let count = batches.len() as u64;
        let writer = raft_log.writer();
        let queued = if inline {
            writer
                .queue_append_written_or_write(batches, Some(epoch))
                .await?
        } else {
            writer.queue_append_written(batches, Some(epoch)).await?
        };
        pending.push((next_index, count, queued));
        next_index += count;
    }
    let mut durable = Vec::with_capacity(pending.len());
    for (expected, count, queued) in pending {
        let infos = queued.written.await.map_err(|_| LogError::Closed)??;
        // The log numbers entries itself; it must agree with openraft.
        let got = infos.first().map_or(expected, |info| info.entry.0);
        if got != expected || infos.len() as u64 != count {
            return Err(RaftStorageError::Hole { expected, got });
        }
        durable.push(queued.durable);
    }
    let raft_log = raft_log.clone();
    Ok(Some(Box::pin(async move {
        let result = note_durable_as_flushed(&raft_log, durable).await;
        if result.is_err() {
            raft_log.note_flush_failed();
        }
        result
    })))
}

/// Waits for each queued append of one call to meet the flush policy, recording how far the
/// log is durable after each.
async fn note_durable_as_flushed(
    raft_log: &RaftLog,
    durable: Vec<tokio::sync::oneshot::Receiver<Result<Vec<cairn_log::AppendInfo>, LogError>>>,
) -> Result<(), RaftStorageError> {
    for receiver in durable {
        let infos = receiver.await.map_err(|_| LogError::Closed)??;
        let end = infos.iter().map(|i| i.next_offset).max();
        if let (Some(end), Some(last)) = (end, infos.iter().max_by_key(|i| i.entry)) {
            raft_log.note_durable(end, last.entry, last.leader_epoch);
        }
    }
    Ok(())
}

/// Makes the log's next entry `first_index`: it already is (the normal case), or the Raft log
/// is empty and starts over there (openraft appending after a purge past the end).
async fn prepare_position(raft_log: &RaftLog, first_index: u64) -> Result<(), RaftStorageError> {
    let (_, next) = raft_log.reader().entry_bounds();
    if next.0 == first_index {
        return Ok(());
    }
    let empty = next <= raft_log.first_entry();
    if !(empty && first_index > next.0) {
        return Err(RaftStorageError::Hole {
            expected: next.0,
            got: first_index,
        });
    }
    let start = EntryIndex(first_index);
    let offset = raft_log
        .with_log(move |log, now_ms| {
            let offset = log.log_end_offset();
            log.reset(start, offset, now_ms).map(|()| offset)
        })
        .await??;
    raft_log.note_restarted(DurableEnd {
        offset,
        entry: start,
    });
    Ok(())
}

/// The entries as batches, one run per term (a request carries one epoch).
fn runs_by_term<C: CairnRaftConfig>(
    entries: &[Entry<C>],
) -> Result<Vec<(LeaderEpoch, Vec<Batch>)>, RaftStorageError> {
    let mut runs: Vec<(LeaderEpoch, Vec<Batch>)> = Vec::new();
    for entry in entries {
        let epoch = epoch_of_term(entry.log_id.leader_id.term)?;
        let batch = encode_entry(entry)?;
        match runs.last_mut() {
            Some((run_epoch, batches)) if *run_epoch == epoch => batches.push(batch),
            _ => runs.push((epoch, vec![batch])),
        }
    }
    Ok(runs)
}

//! [`WriterState`]: everything a partition's writer works on (the log, its admission filter,
//! the clean in flight, the timers), behind one lock. The writer thread takes the lock for each
//! group commit; an idle writer's state may also be taken by the appending caller itself (see
//! the parent module), which is why it is not owned by the thread.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::cleaner::CleanerThread;
use super::queue::QueueHandle;
use super::{Command, MAX_GROUP_BYTES, MAX_GROUP_REQUESTS, QueuedAppend, WriterOptions};
use crate::admission::{Admission, AppendFilter};
use crate::batch::Batch;
use crate::clock::Clock;
use crate::config::FlushPolicy;
use crate::error::LogError;
use crate::log::{AppendInfo, Log};
use crate::types::LeaderEpoch;

/// The longest group commit after which an append is still carried out on its caller's
/// thread: past it the disk is slow enough that parking an async worker for one more commit
/// costs more than the two thread hand-offs it saves.
const INLINE_COMMIT_LIMIT: Duration = Duration::from_millis(2);

/// A partition writer's working state.
pub(super) struct WriterState {
    /// The log, until it is closed.
    pub(super) log: Option<Log>,
    /// This writer's own queue, for a cleaner thread to hand its result back.
    queue: QueueHandle,
    /// The clean in flight, if any: at most one per log.
    cleaner: Option<CleanerThread>,
    clock: Arc<dyn Clock>,
    options: WriterOptions,
    filter: Option<Box<dyn AppendFilter>>,
    /// When data was first written without an fsync, under `interval:<ms>`.
    unsynced_since: Option<tokio::time::Instant>,
    /// When the next retention pass is due.
    next_retention: tokio::time::Instant,
    /// How long the last group commit took (write and flush).
    last_commit: Duration,
}

impl WriterState {
    /// The state of a writer that has just opened `log`.
    pub(super) fn new(
        log: Log,
        queue: QueueHandle,
        clock: Arc<dyn Clock>,
        options: WriterOptions,
        filter: Option<Box<dyn AppendFilter>>,
    ) -> WriterState {
        WriterState {
            log: Some(log),
            queue,
            cleaner: None,
            clock,
            options,
            filter,
            unsynced_since: None,
            next_retention: tokio::time::Instant::now() + options.retention_check_interval,
            last_commit: Duration::ZERO,
        }
    }

    /// When the writer thread must wake on its own next: the `interval:<ms>` flush if one is
    /// pending, else the next retention pass.
    pub(super) fn deadline(&self) -> tokio::time::Instant {
        self.flush_due()
            .map_or(self.next_retention, |due| due.min(self.next_retention))
    }

    fn flush_due(&self) -> Option<tokio::time::Instant> {
        let log = self.log.as_ref()?;
        match (log.config().flush_policy, self.unsynced_since) {
            (FlushPolicy::IntervalMs(ms), Some(since)) => Some(since + Duration::from_millis(ms)),
            _ => None,
        }
    }

    /// Every handle is gone: stops the clean, and closes the log cleanly.
    pub(super) fn close_unattended(&mut self) {
        self.stop_cleaner();
        self.close_filter();
        if let Some(log) = self.log.take()
            && let Err(err) = log.close()
        {
            tracing::error!(%err, "closing the log after its last handle was dropped");
        }
    }

    /// Runs whatever is due: an `interval:<ms>` flush, retention, the start of a clean.
    pub(super) fn run_timers(&mut self) {
        let flush_due = self.flush_due();
        let now = tokio::time::Instant::now();
        if flush_due.is_some_and(|due| due <= now) {
            self.interval_flush();
        }
        if self.next_retention <= now {
            self.next_retention = now + self.options.retention_check_interval;
            if let Some(log) = self.log.as_mut()
                && let Err(err) = log.enforce_retention(self.clock.now_ms())
            {
                tracing::error!(%err, dir = %log.dir().display(), "retention pass failed; it will be retried");
            }
            self.maybe_start_clean();
        }
    }

    /// Starts a clean on its own thread if the log compacts, none is in flight, and one is due
    /// (`min.cleanable.dirty.ratio`, or a tombstone's delete horizon has passed).
    fn maybe_start_clean(&mut self) {
        if self
            .cleaner
            .as_ref()
            .is_some_and(|c| !c.done.load(Ordering::Acquire))
        {
            return;
        }
        if let Some(finished) = self.cleaner.take() {
            let _ = finished.handle.join();
        }
        let now_ms = self.clock.now_ms();
        let Some(job) = self.log.as_ref().and_then(|log| log.plan_clean(now_ms)) else {
            return;
        };
        match CleanerThread::spawn(job, self.queue.clone()) {
            Ok(thread) => self.cleaner = Some(thread),
            Err(err) => tracing::warn!(%err, "no thread for compaction; it will be retried"),
        }
    }

    /// Cancels the clean in flight and waits for its thread (it stops between batches).
    pub(super) fn stop_cleaner(&mut self) {
        if let Some(cleaner) = self.cleaner.take() {
            cleaner.cancel.store(true, Ordering::Release);
            let _ = cleaner.handle.join();
        }
    }

    /// Carries out `first` and whatever appends queued behind it (one group commit), and
    /// returns how many commands it took off the queue, `first` included.
    pub(super) fn handle(&mut self, first: Command, rx: &mut mpsc::Receiver<Command>) -> usize {
        let mut taken = 1;
        let mut group = Vec::new();
        let mut group_bytes = 0;
        let mut after_group = None;
        match first {
            Command::Append(append) => {
                group_bytes += append.batches.iter().map(Batch::len_bytes).sum::<usize>();
                group.push(append);
            }
            other => after_group = Some(other),
        }
        while after_group.is_none()
            && group.len() < MAX_GROUP_REQUESTS
            && group_bytes < MAX_GROUP_BYTES
        {
            match rx.try_recv() {
                Ok(Command::Append(append)) => {
                    taken += 1;
                    group_bytes += append.batches.iter().map(Batch::len_bytes).sum::<usize>();
                    group.push(append);
                }
                Ok(other) => {
                    taken += 1;
                    after_group = Some(other);
                }
                Err(_) => break,
            }
        }
        if !group.is_empty() {
            self.commit_timed(group);
        }
        match after_group {
            Some(Command::Task(task)) => {
                // A closed log drops the task, and with it the caller's reply: it sees `Closed`.
                let _ = self.run_task(task);
            }
            Some(Command::Close { reply }) => {
                self.stop_cleaner();
                self.close_filter();
                let result = self.log.take().map_or(Err(LogError::Closed), Log::close);
                let _ = reply.send(result);
            }
            Some(Command::Append(_)) | None => {}
        }
        taken
    }

    /// Whether an append may be carried out on its caller's thread right now (the caller
    /// holds this state's lock and nothing is queued): only under a flush policy with no
    /// timer of its own, and only while the disk answers quickly, so that a slow disk never
    /// parks a caller's (async runtime) thread for long.
    pub(super) fn runs_inline(&self) -> bool {
        self.log.as_ref().is_some_and(|log| {
            matches!(
                log.config().flush_policy,
                FlushPolicy::Always | FlushPolicy::Os
            ) && log.poisoned().is_none()
        }) && self.last_commit <= INLINE_COMMIT_LIMIT
    }

    /// Runs `task` on the log with the clock's current time, as the thread runs a queued
    /// [`Command::Task`]; [`LogError::Closed`] once the log is closed.
    pub(super) fn run_task<R>(
        &mut self,
        task: impl FnOnce(&mut Log, i64) -> R,
    ) -> Result<R, LogError> {
        let now = self.clock.now_ms();
        self.log
            .as_mut()
            .map(|log| task(log, now))
            .ok_or(LogError::Closed)
    }

    /// Writes `group` as one group commit and remembers how long it took.
    pub(super) fn commit_timed(&mut self, group: Vec<QueuedAppend>) {
        let started = Instant::now();
        self.commit_group(group);
        self.last_commit = started.elapsed();
    }

    fn commit_group(&mut self, mut group: Vec<QueuedAppend>) {
        let Some(log) = self.log.as_mut() else {
            for append in group {
                let _ = append.reply.send(Err(LogError::Closed));
                if let Some(written) = append.written {
                    let _ = written.send(Err(LogError::Closed));
                }
            }
            return;
        };
        // Admission, in order: each admitted request's offsets follow the previous ones', so the
        // filter can judge a retry of a request earlier in this very group.
        let mut next_offset = log.log_end_offset();
        let mut decisions = Vec::with_capacity(group.len());
        for QueuedAppend { batches, .. } in &group {
            let decision = match log.check_request(batches) {
                Err(err) => Admission::Reject(err),
                Ok(()) => match self.filter.as_mut() {
                    Some(filter) => filter.admit(batches, next_offset),
                    None => Admission::Append,
                },
            };
            if matches!(decision, Admission::Append) {
                next_offset = next_offset.plus(batches.iter().map(Batch::offset_count).sum());
            }
            decisions.push(decision);
        }
        let requests: Vec<(&[Batch], Option<LeaderEpoch>)> = group
            .iter()
            .zip(&decisions)
            .filter(|(_, d)| matches!(d, Admission::Append))
            .map(|(append, _)| (append.batches.as_slice(), append.epoch))
            .collect();
        let outcome = log
            .append_group(&requests, self.clock.now_ms())
            .and_then(|results| {
                report_written(&mut group, &decisions, &results);
                log.commit()?;
                Ok(results)
            });
        if matches!(log.config().flush_policy, FlushPolicy::IntervalMs(_))
            && self.unsynced_since.is_none()
        {
            self.unsynced_since = Some(tokio::time::Instant::now());
        }
        match outcome {
            Ok(results) => {
                if let Some(filter) = self.filter.as_mut() {
                    filter.commit(log.log_end_offset());
                }
                let mut written = results.into_iter();
                for (QueuedAppend { reply, .. }, decision) in group.into_iter().zip(decisions) {
                    let result = match decision {
                        Admission::Append => written.next().unwrap_or(Err(LogError::Closed)),
                        Admission::Duplicate(infos) => Ok(infos),
                        Admission::Reject(err) => Err(err),
                    };
                    let _ = reply.send(result);
                }
            }
            Err(err) => {
                if let Some(filter) = self.filter.as_mut() {
                    filter.rollback();
                }
                for (append, decision) in group.into_iter().zip(decisions) {
                    let QueuedAppend { reply, written, .. } = append;
                    let result = match decision {
                        Admission::Reject(rejected) => rejected,
                        // A duplicate may point into this failed group: fail it too.
                        Admission::Append | Admission::Duplicate(_) => err.duplicate(),
                    };
                    if let Some(written) = written {
                        // Not reported written yet (the write failed): report the failure.
                        let _ = written.send(Err(result.duplicate()));
                    }
                    let _ = reply.send(Err(result));
                }
            }
        }
    }

    /// Tells the filter the log closes, after a last flush, unless the log is poisoned (then
    /// nothing after the failure is known durable, and the next open rebuilds from the log).
    pub(super) fn close_filter(&mut self) {
        let (Some(log), Some(filter)) = (self.log.as_mut(), self.filter.as_mut()) else {
            return;
        };
        if log.poisoned().is_none() && log.flush().is_ok() {
            filter.close(log.log_end_offset());
        }
    }

    fn interval_flush(&mut self) {
        self.unsynced_since = None;
        if let Some(log) = self.log.as_mut()
            && log.poisoned().is_none()
            && let Err(err) = log.flush()
        {
            tracing::error!(%err, "interval flush failed");
        }
    }
}

/// Answers the requests that asked to hear when their batches are written, right after the
/// group's write and before its flush: a Raft leader may ship them (and openraft's `append`
/// return) while the fsync runs. Each such answer is taken, so the failure path below does not
/// answer it twice.
fn report_written(
    group: &mut [QueuedAppend],
    decisions: &[Admission],
    results: &[Result<Vec<AppendInfo>, LogError>],
) {
    let mut results = results.iter();
    for (append, decision) in group.iter_mut().zip(decisions) {
        let result = match decision {
            Admission::Append => results.next(),
            Admission::Duplicate(_) | Admission::Reject(_) => None,
        };
        if let Some(written) = append.written.take() {
            let answer = match (decision, result) {
                (Admission::Append, Some(Ok(infos))) => Ok(infos.clone()),
                (Admission::Append, Some(Err(err))) => Err(err.duplicate()),
                (Admission::Duplicate(infos), _) => Ok(infos.clone()),
                (Admission::Reject(err), _) => Err(err.duplicate()),
                (Admission::Append, None) => Err(LogError::Closed),
            };
            let _ = written.send(answer);
        }
    }
}

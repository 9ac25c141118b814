//! [`LogWriter`]: the group-commit driver of one partition. A dedicated thread owns the
//! [`Log`]; appends arrive on a bounded queue, and the thread drains up to
//! [`MAX_GROUP_REQUESTS`] requests or [`MAX_GROUP_BYTES`] bytes, writes them with one `pwritev`,
//! meets the flush policy once (one `fdatasync` under `always`), and only then answers each
//! request. A request cancelled by its caller after it was queued is still written whole or not
//! at all: the thread never writes half a request.
//!
//! Why a thread and not a task: the fsync blocks, and a partition's writes are serial anyway, so
//! a thread that blocks on its own disk keeps that stall off the async runtime. The cost is one
//! mostly idle thread per open partition.
//!
//! Compaction runs from the same periodic maintenance as retention, but not on this thread: when
//! a clean is due, the writer plans it (cheap), starts one short-lived `cairn-log-clean` thread
//! for the heavy part, and that thread hands the result back through this queue, so the swap
//! runs here between group commits. One thread per clean rather than one per log: a broker has
//! many partitions and few of them clean at once, so idle cleaner threads would be pure cost, and
//! a clean carries no state from one run to the next.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::admission::{Admission, AppendFilter};
use crate::batch::Batch;
use crate::clean::CleanJob;
use crate::clock::Clock;
use crate::config::FlushPolicy;
use crate::error::LogError;
use crate::log::{AppendInfo, Log};
use crate::reader::LogReader;
use crate::types::LeaderEpoch;

/// Capacity of a partition's append queue; a full queue is backpressure.
pub const WRITER_QUEUE_DEPTH: usize = 1024;
/// Most requests gathered into one group commit.
pub const MAX_GROUP_REQUESTS: usize = 512;
/// Most bytes gathered into one group commit.
pub const MAX_GROUP_BYTES: usize = 8 << 20;

type Reply<T> = oneshot::Sender<Result<T, LogError>>;
type LogTask = Box<dyn FnOnce(&mut Log, i64) + Send>;
/// One queued append: its batches, the epoch to stamp, where to answer once the flush policy
/// is met, and (for a Raft log) where to answer as soon as it is written.
struct QueuedAppend {
    batches: Vec<Batch>,
    epoch: Option<LeaderEpoch>,
    reply: Reply<Vec<AppendInfo>>,
    written: Option<Reply<Vec<AppendInfo>>>,
}

/// The two answers of [`LogWriter::queue_append_written`].
#[derive(Debug)]
pub struct WrittenAppend {
    /// Resolves once the batches are written: readable by entry index
    /// ([`LogReader::read_entries`]), neither durable nor visible to readers by offset yet.
    /// Never resolves `Ok` for a request that was not written.
    pub written: oneshot::Receiver<Result<Vec<AppendInfo>, LogError>>,
    /// Resolves once the flush policy is met for the batches (after the group's `fdatasync`
    /// under `always`), or with the error that stopped it (an fsync failure poisons the log and
    /// is never retried).
    pub durable: oneshot::Receiver<Result<Vec<AppendInfo>, LogError>>,
}

enum Command {
    Append(QueuedAppend),
    Task(LogTask),
    Close { reply: Reply<()> },
}

/// How often the writer checks retention and whether a compaction is due, by default (Kafka's
/// `log.retention.check.interval.ms`).
pub const RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(300);

/// Settings of the writer thread itself (the log's own settings are in [`crate::LogConfig`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriterOptions {
    /// How often retention runs, and a compaction is considered, in the background.
    pub retention_check_interval: Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            retention_check_interval: RETENTION_CHECK_INTERVAL,
        }
    }
}

/// A handle on a partition's writer thread. Clone it to append from many tasks.
#[derive(Clone, Debug)]
pub struct LogWriter {
    tx: mpsc::Sender<Command>,
    reader: LogReader,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Append(_) => "Append",
            Command::Task(_) => "Task",
            Command::Close { .. } => "Close",
        })
    }
}

impl LogWriter {
    /// Starts the writer thread for `log` with default [`WriterOptions`]. The thread closes the
    /// log cleanly when [`close`] is called or every handle is dropped.
    ///
    /// # Errors
    /// [`LogError::Io`] if the thread cannot be started.
    ///
    /// [`close`]: LogWriter::close
    pub fn spawn(log: Log, clock: Arc<dyn Clock>) -> Result<LogWriter, LogError> {
        Self::spawn_with(log, clock, WriterOptions::default())
    }

    /// Like [`LogWriter::spawn`], with explicit options (e.g. a shorter retention interval).
    ///
    /// # Errors
    /// [`LogError::Io`] if the thread cannot be started.
    pub fn spawn_with(
        log: Log,
        clock: Arc<dyn Clock>,
        options: WriterOptions,
    ) -> Result<LogWriter, LogError> {
        Self::spawn_filtered(log, clock, options, None)
    }

    /// Like [`LogWriter::spawn_with`], with an [`AppendFilter`] that admits each request first.
    ///
    /// # Errors
    /// [`LogError::Io`] if the thread cannot be started.
    pub fn spawn_filtered(
        log: Log,
        clock: Arc<dyn Clock>,
        options: WriterOptions,
        filter: Option<Box<dyn AppendFilter>>,
    ) -> Result<LogWriter, LogError> {
        let (tx, rx) = mpsc::channel(WRITER_QUEUE_DEPTH);
        let reader = log.reader();
        let name = format!(
            "cairn-log-{}",
            log.dir()
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("partition")
        );
        let dir = log.dir().to_path_buf();
        let weak_tx = tx.downgrade();
        std::thread::Builder::new()
            .name(name)
            .spawn(move || run(log, rx, weak_tx, clock, options, filter))
            .map_err(|source| LogError::io("start writer thread", &dir, source))?;
        Ok(LogWriter { tx, reader })
    }

    /// A reader of the same log.
    pub fn reader(&self) -> &LogReader {
        &self.reader
    }

    /// Appends `batches` as one request, waiting for queue space and then for the flush policy
    /// to be met. `epoch` as in [`Log::append`].
    ///
    /// # Errors
    /// As [`Log::append`]; [`LogError::Closed`] if the writer has stopped.
    pub async fn append(
        &self,
        batches: Vec<Batch>,
        epoch: Option<LeaderEpoch>,
    ) -> Result<Vec<AppendInfo>, LogError> {
        self.call(Command::append(batches, epoch)).await?
    }

    /// Like [`LogWriter::append`], in two steps: this waits for queue space and queues the
    /// append; the returned receiver yields its result. Appends are carried out in the order
    /// they were queued, so a caller that must order appends (idempotent producers' sequences)
    /// can release the next one as soon as this returns.
    ///
    /// # Errors
    /// [`LogError::Closed`] if the writer has stopped.
    pub async fn queue_append(
        &self,
        batches: Vec<Batch>,
        epoch: Option<LeaderEpoch>,
    ) -> Result<oneshot::Receiver<Result<Vec<AppendInfo>, LogError>>, LogError> {
        let (command, rx) = Command::append(batches, epoch);
        self.tx.send(command).await.map_err(|_| LogError::Closed)?;
        Ok(rx)
    }

    /// Queues an append whose two moments are reported apart (what a Raft log needs: openraft's
    /// `append` returns once entries are readable, and its flush callback fires once they are
    /// durable). Appends are carried out in the order they were queued, and appends queued
    /// together are written and fsynced as one group. Nothing becomes visible to readers by
    /// offset: under [`Log::open_replica`] only `set_high_watermark` does that.
    ///
    /// # Errors
    /// [`LogError::Closed`] if the writer has stopped.
    pub async fn queue_append_written(
        &self,
        batches: Vec<Batch>,
        epoch: Option<LeaderEpoch>,
    ) -> Result<WrittenAppend, LogError> {
        let (reply, durable) = oneshot::channel();
        let (written_reply, written) = oneshot::channel();
        let command = Command::Append(QueuedAppend {
            batches,
            epoch,
            reply,
            written: Some(written_reply),
        });
        self.tx.send(command).await.map_err(|_| LogError::Closed)?;
        Ok(WrittenAppend { written, durable })
    }

    /// Like [`LogWriter::append`] but fails at once with [`LogError::QueueFull`] instead of
    /// waiting for queue space; the returned receiver yields the result.
    ///
    /// # Errors
    /// [`LogError::QueueFull`] or [`LogError::Closed`].
    pub fn try_append(
        &self,
        batches: Vec<Batch>,
        epoch: Option<LeaderEpoch>,
    ) -> Result<oneshot::Receiver<Result<Vec<AppendInfo>, LogError>>, LogError> {
        let (command, rx) = Command::append(batches, epoch);
        self.tx.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => LogError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => LogError::Closed,
        })?;
        Ok(rx)
    }

    /// Like [`LogWriter::append`], for threads outside an async runtime (it blocks).
    ///
    /// # Errors
    /// As [`LogWriter::append`].
    pub fn append_blocking(
        &self,
        batches: Vec<Batch>,
        epoch: Option<LeaderEpoch>,
    ) -> Result<Vec<AppendInfo>, LogError> {
        self.call_blocking(Command::append(batches, epoch))?
    }

    /// Runs `task` on the writer thread with exclusive access to the log, between group commits
    /// (truncation, retention, rolls, config changes, high watermark moves). The task gets the
    /// clock's current time.
    ///
    /// # Errors
    /// [`LogError::Closed`] if the writer has stopped.
    pub async fn with_log<R: Send + 'static>(
        &self,
        task: impl FnOnce(&mut Log, i64) -> R + Send + 'static,
    ) -> Result<R, LogError> {
        self.call(Command::task(task)).await
    }

    /// Like [`LogWriter::with_log`], for threads outside an async runtime.
    ///
    /// # Errors
    /// [`LogError::Closed`] if the writer has stopped.
    pub fn with_log_blocking<R: Send + 'static>(
        &self,
        task: impl FnOnce(&mut Log, i64) -> R + Send + 'static,
    ) -> Result<R, LogError> {
        self.call_blocking(Command::task(task))
    }

    /// Finishes queued appends, then closes the log cleanly (fsync, seal, clean-shutdown marker).
    ///
    /// # Errors
    /// The close's I/O error, or [`LogError::Closed`] if already closed.
    pub async fn close(&self) -> Result<(), LogError> {
        self.call(Command::close()).await?
    }

    /// Like [`LogWriter::close`], for threads outside an async runtime.
    ///
    /// # Errors
    /// As [`LogWriter::close`].
    pub fn close_blocking(&self) -> Result<(), LogError> {
        self.call_blocking(Command::close())?
    }

    async fn call<T>(&self, (command, rx): (Command, oneshot::Receiver<T>)) -> Result<T, LogError> {
        self.tx.send(command).await.map_err(|_| LogError::Closed)?;
        rx.await.map_err(|_| LogError::Closed)
    }

    fn call_blocking<T>(
        &self,
        (command, rx): (Command, oneshot::Receiver<T>),
    ) -> Result<T, LogError> {
        self.tx
            .blocking_send(command)
            .map_err(|_| LogError::Closed)?;
        rx.blocking_recv().map_err(|_| LogError::Closed)
    }
}

impl Command {
    fn append(
        batches: Vec<Batch>,
        epoch: Option<LeaderEpoch>,
    ) -> (
        Command,
        oneshot::Receiver<Result<Vec<AppendInfo>, LogError>>,
    ) {
        let (reply, rx) = oneshot::channel();
        (
            Command::Append(QueuedAppend {
                batches,
                epoch,
                reply,
                written: None,
            }),
            rx,
        )
    }

    fn task<R: Send + 'static>(
        task: impl FnOnce(&mut Log, i64) -> R + Send + 'static,
    ) -> (Command, oneshot::Receiver<R>) {
        let (reply, rx) = oneshot::channel();
        let task: LogTask = Box::new(move |log, now| {
            let _ = reply.send(task(log, now));
        });
        (Command::Task(task), rx)
    }

    fn close() -> (Command, oneshot::Receiver<Result<(), LogError>>) {
        let (reply, rx) = oneshot::channel();
        (Command::Close { reply }, rx)
    }
}

fn run(
    log: Log,
    rx: mpsc::Receiver<Command>,
    weak_tx: mpsc::WeakSender<Command>,
    clock: Arc<dyn Clock>,
    options: WriterOptions,
    filter: Option<Box<dyn AppendFilter>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(%err, "cannot start the writer's runtime; the partition takes no writes");
            return;
        }
    };
    let next_retention = tokio::time::Instant::now() + options.retention_check_interval;
    let writer = WriterLoop {
        log: Some(log),
        rx,
        weak_tx,
        cleaner: None,
        clock,
        options,
        filter,
        unsynced_since: None,
        next_retention,
    };
    runtime.block_on(writer.run());
}

struct WriterLoop {
    log: Option<Log>,
    rx: mpsc::Receiver<Command>,
    /// This loop's own queue, for a cleaner thread to hand its result back; weak, so that the
    /// loop still ends when every handle is dropped.
    weak_tx: mpsc::WeakSender<Command>,
    /// The clean in flight, if any: at most one per log.
    cleaner: Option<CleanerThread>,
    clock: Arc<dyn Clock>,
    options: WriterOptions,
    filter: Option<Box<dyn AppendFilter>>,
    /// When data was first written without an fsync, under `interval:<ms>`.
    unsynced_since: Option<tokio::time::Instant>,
    /// When the next retention pass is due.
    next_retention: tokio::time::Instant,
}

impl WriterLoop {
    async fn run(mut self) {
        while let Some(log) = self.log.as_ref() {
            let flush_due = match (log.config().flush_policy, self.unsynced_since) {
                (FlushPolicy::IntervalMs(ms), Some(since)) => {
                    Some(since + Duration::from_millis(ms))
                }
                _ => None,
            };
            let deadline =
                flush_due.map_or(self.next_retention, |due| due.min(self.next_retention));
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(command)) => self.handle(command),
                Ok(None) => {
                    // Every handle is gone: close cleanly.
                    self.stop_cleaner();
                    self.close_filter();
                    if let Some(log) = self.log.take()
                        && let Err(err) = log.close()
                    {
                        tracing::error!(%err, "closing the log after its last handle was dropped");
                    }
                }
                Err(_elapsed) => self.run_timers(flush_due),
            }
        }
    }

    fn run_timers(&mut self, flush_due: Option<tokio::time::Instant>) {
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
        match CleanerThread::spawn(job, self.weak_tx.clone()) {
            Ok(thread) => self.cleaner = Some(thread),
            Err(err) => tracing::warn!(%err, "no thread for compaction; it will be retried"),
        }
    }

    /// Cancels the clean in flight and waits for its thread (it stops between batches).
    fn stop_cleaner(&mut self) {
        if let Some(cleaner) = self.cleaner.take() {
            cleaner.cancel.store(true, Ordering::Release);
            let _ = cleaner.handle.join();
        }
    }

    fn handle(&mut self, first: Command) {
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
            match self.rx.try_recv() {
                Ok(Command::Append(append)) => {
                    group_bytes += append.batches.iter().map(Batch::len_bytes).sum::<usize>();
                    group.push(append);
                }
                Ok(other) => after_group = Some(other),
                Err(_) => break,
            }
        }
        if !group.is_empty() {
            self.commit_group(group);
        }
        match after_group {
            Some(Command::Task(task)) => {
                if let Some(log) = self.log.as_mut() {
                    task(log, self.clock.now_ms());
                }
            }
            Some(Command::Close { reply }) => {
                self.stop_cleaner();
                self.close_filter();
                let result = self.log.take().map_or(Err(LogError::Closed), Log::close);
                let _ = reply.send(result);
            }
            Some(Command::Append(_)) | None => {}
        }
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
    fn close_filter(&mut self) {
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

/// Pause between attempts to hand a finished clean back to a full queue.
const CLEANER_HANDBACK_RETRY: Duration = Duration::from_millis(10);

/// A clean running on its own thread.
struct CleanerThread {
    handle: std::thread::JoinHandle<()>,
    cancel: Arc<AtomicBool>,
    /// Set once the writer has finished (or will never finish) this clean: only then may
    /// another one be planned, since both would stage into the same directory.
    done: Arc<AtomicBool>,
}

impl CleanerThread {
    fn spawn(job: CleanJob, weak_tx: mpsc::WeakSender<Command>) -> std::io::Result<CleanerThread> {
        let cancel = job.cancel_flag();
        let done = Arc::new(AtomicBool::new(false));
        let (thread_cancel, thread_done) = (Arc::clone(&cancel), Arc::clone(&done));
        let handle = std::thread::Builder::new()
            .name("cairn-log-clean".to_string())
            .spawn(move || {
                let result = job.run();
                let finish_done = Arc::clone(&thread_done);
                let finish: LogTask = Box::new(move |log, _now_ms| {
                    match result.and_then(|cleaned| log.finish_clean(cleaned)) {
                        Ok(_) | Err(LogError::Closed) => {}
                        Err(err) => {
                            tracing::error!(%err, dir = %log.dir().display(), "compaction failed; it will be retried");
                        }
                    }
                    finish_done.store(true, Ordering::Release);
                });
                hand_back(Command::Task(finish), &weak_tx, &thread_cancel);
                // Delivered or not, nothing of this clean is left to wait for: either the
                // writer ran (or will run) the task, or it is gone and the next open removes
                // the staging directory.
                if thread_cancel.load(Ordering::Acquire) {
                    thread_done.store(true, Ordering::Release);
                }
            })?;
        Ok(CleanerThread {
            handle,
            cancel,
            done,
        })
    }
}

/// Queues `command` on the writer without blocking it: retries while the queue is full, and
/// gives up when the writer is gone or the clean was cancelled.
fn hand_back(mut command: Command, weak_tx: &mpsc::WeakSender<Command>, cancel: &AtomicBool) {
    loop {
        let Some(tx) = weak_tx.upgrade() else { return };
        match tx.try_send(command) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => return,
            Err(mpsc::error::TrySendError::Full(back)) => command = back,
        }
        drop(tx);
        if cancel.load(Ordering::Acquire) {
            return;
        }
        std::thread::sleep(CLEANER_HANDBACK_RETRY);
    }
}

//! [`LogWriter`]: the group-commit driver of one partition. A dedicated thread drives the
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
//! Why the caller may write anyway ([`LogWriter::queue_append_or_write`]): at low load the
//! thread is parked when a request comes, and handing the request to it and the answer back
//! costs two thread wake-ups, which on a virtual machine take longer than the write and often
//! as long as the fsync (strace of one durable 1 KiB produce: a futex wake of the writer, then
//! an eventfd wake of an async worker). So when nothing is queued and the writer holds no lock,
//! the caller takes the writer's state and does the group commit of its one request itself. A
//! request that finds the writer busy queues as before, and the thread gathers everything
//! that queued while it (or such a caller) committed into one group: batching happens exactly
//! when there is a queue. The state sits behind a mutex for this, and a counter of commands
//! sent but not yet carried out keeps the order: a caller writes only when it is zero.
//!
//! Compaction runs from the same periodic maintenance as retention, but not on this thread: when
//! a clean is due, the writer plans it (cheap), starts one short-lived `cairn-log-clean` thread
//! for the heavy part, and that thread hands the result back through this queue, so the swap
//! runs here between group commits. One thread per clean rather than one per log: a broker has
//! many partitions and few of them clean at once, so idle cleaner threads would be pure cost, and
//! a clean carries no state from one run to the next.

mod cleaner;
mod queue;
mod state;

use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use self::queue::{Outstanding, Queue};
use self::state::WriterState;
use crate::admission::AppendFilter;
use crate::batch::Batch;
use crate::clock::Clock;
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
#[derive(Clone)]
pub struct LogWriter {
    queue: Queue,
    shared: Arc<Shared>,
    reader: LogReader,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("reader", &self.reader)
            .finish_non_exhaustive()
    }
}

/// What the writer thread and the appending callers share.
struct Shared {
    /// The writer's state: held by the thread for each group commit, or by a caller that
    /// writes its own append while the writer is idle.
    state: Mutex<WriterState>,
    /// Commands sent to the queue and not yet carried out. Every send counts one before the
    /// thread can see it ([`Queue`]), and the thread takes off what it carried out while it
    /// still holds `state`; so a caller holding `state` that reads zero knows no earlier
    /// command is waiting, and writing its own append first keeps the order in which appends
    /// were queued.
    outstanding: Outstanding,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, WriterState> {
        // A panic on the thread mid-commit leaves the log as a failed write would (the next
        // open recovers it); the state itself stays usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The writer's state, if the writer is idle: nothing outstanding and the state free. The
    /// count is read again under the lock, since a command sent meanwhile must go first.
    fn idle_state(&self) -> Option<MutexGuard<'_, WriterState>> {
        if !self.outstanding.is_zero() {
            return None;
        }
        let state = match self.state.try_lock() {
            Ok(state) => state,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        self.outstanding.is_zero().then_some(state)
    }

    /// Carries out `append` on this thread if the writer is idle (see [`Shared::idle_state`])
    /// and may run inline (see [`WriterState::runs_inline`]); hands it back if not.
    fn write_if_idle(&self, append: QueuedAppend) -> Result<(), QueuedAppend> {
        match self.idle_state() {
            Some(mut state) if state.runs_inline() => {
                state.commit_timed(vec![append]);
                Ok(())
            }
            _ => Err(append),
        }
    }

    /// Runs `task` on this thread if the writer is idle (see [`Shared::idle_state`]); hands it
    /// back if not.
    fn run_if_idle<R, F: FnOnce(&mut Log, i64) -> R>(
        &self,
        task: F,
    ) -> Result<Result<R, LogError>, F> {
        match self.idle_state() {
            Some(mut state) => Ok(state.run_task(task)),
            None => Err(task),
        }
    }
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
        let outstanding = Outstanding::default();
        let (queue, rx) = Queue::new(WRITER_QUEUE_DEPTH, outstanding.clone());
        let reader = log.reader();
        let name = format!(
            "cairn-log-{}",
            log.dir()
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("partition")
        );
        let dir = log.dir().to_path_buf();
        let shared = Arc::new(Shared {
            state: Mutex::new(WriterState::new(
                log,
                queue.downgrade(),
                clock,
                options,
                filter,
            )),
            outstanding,
        });
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(name)
            .spawn(move || run(&thread_shared, rx))
            .map_err(|source| LogError::io("start writer thread", &dir, source))?;
        Ok(LogWriter {
            queue,
            shared,
            reader,
        })
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
        self.queue.send(command).await?;
        Ok(rx)
    }

    /// Like [`LogWriter::queue_append`], except that when the writer is idle (nothing queued,
    /// no group commit running) and the disk has been quick, the append is written and the flush
    /// policy met on the calling thread before this returns, which saves two thread hand-offs
    /// at low load (see the module's docs). It may then block the caller for one write and
    /// fsync, so call it only where that is acceptable and no other append of the same
    /// partition is on its way (those are better gathered into one group by the thread).
    ///
    /// # Errors
    /// [`LogError::Closed`] if the writer has stopped.
    pub async fn queue_append_or_write(
        &self,
        batches: Vec<Batch>,
        epoch: Option<LeaderEpoch>,
    ) -> Result<oneshot::Receiver<Result<Vec<AppendInfo>, LogError>>, LogError> {
        let (append, rx) = QueuedAppend::new(batches, epoch);
        self.write_or_queue(append).await?;
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
        let (append, answers) = QueuedAppend::written(batches, epoch);
        self.queue.send(Command::Append(append)).await?;
        Ok(answers)
    }

    /// Like [`LogWriter::queue_append_written`], except that an idle writer lets the caller
    /// write and meet the flush policy itself, as [`LogWriter::queue_append_or_write`] does;
    /// both answers are then resolved when this returns. For a Raft follower, whose reply to
    /// its leader waits for the fsync anyway; a leader should queue, so that its own fsync
    /// runs while it ships the entries.
    ///
    /// # Errors
    /// [`LogError::Closed`] if the writer has stopped.
    pub async fn queue_append_written_or_write(
        &self,
        batches: Vec<Batch>,
        epoch: Option<LeaderEpoch>,
    ) -> Result<WrittenAppend, LogError> {
        let (append, answers) = QueuedAppend::written(batches, epoch);
        self.write_or_queue(append).await?;
        Ok(answers)
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
        self.queue.try_send(command).map_err(|e| match e {
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

    /// Like [`LogWriter::with_log`], except that when the writer is idle (nothing queued, no
    /// group commit running) `task` runs on the calling thread before this returns, in the
    /// same order relative to queued commands. That saves waking the writer thread and then
    /// the caller, which at low load is most of a high-watermark move's cost (see the module's
    /// docs). Only for quick tasks that never block on I/O, since the caller may be an async
    /// worker; anything that may fsync or wait belongs in [`LogWriter::with_log`].
    ///
    /// # Errors
    /// [`LogError::Closed`] if the writer has stopped.
    pub async fn with_log_inline_if_idle<R: Send + 'static>(
        &self,
        task: impl FnOnce(&mut Log, i64) -> R + Send + 'static,
    ) -> Result<R, LogError> {
        match self.shared.run_if_idle(task) {
            Ok(result) => result,
            Err(task) => self.with_log(task).await,
        }
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
        self.queue.send(command).await?;
        rx.await.map_err(|_| LogError::Closed)
    }

    fn call_blocking<T>(
        &self,
        (command, rx): (Command, oneshot::Receiver<T>),
    ) -> Result<T, LogError> {
        self.queue.blocking_send(command)?;
        rx.blocking_recv().map_err(|_| LogError::Closed)
    }

    /// Carries out `append` on this thread if the writer is idle (see
    /// [`Shared::write_if_idle`]); queues it if not.
    async fn write_or_queue(&self, append: QueuedAppend) -> Result<(), LogError> {
        match self.shared.write_if_idle(append) {
            Ok(()) => Ok(()),
            Err(append) => self.queue.send(Command::Append(append)).await,
        }
    }
}

impl QueuedAppend {
    /// An append answered once the flush policy is met, and the receiver of its answer.
    fn new(
        batches: Vec<Batch>,
        epoch: Option<LeaderEpoch>,
    ) -> (
        QueuedAppend,
        oneshot::Receiver<Result<Vec<AppendInfo>, LogError>>,
    ) {
        let (reply, rx) = oneshot::channel();
        let append = QueuedAppend {
            batches,
            epoch,
            reply,
            written: None,
        };
        (append, rx)
    }

    /// An append that reports both moments, and the receivers of the two answers.
    fn written(batches: Vec<Batch>, epoch: Option<LeaderEpoch>) -> (QueuedAppend, WrittenAppend) {
        let (reply, durable) = oneshot::channel();
        let (written_reply, written) = oneshot::channel();
        let append = QueuedAppend {
            batches,
            epoch,
            reply,
            written: Some(written_reply),
        };
        (append, WrittenAppend { written, durable })
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
        let (append, rx) = QueuedAppend::new(batches, epoch);
        (Command::Append(append), rx)
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

/// The writer thread: waits for commands (or its next timer) without the state's lock, then
/// carries each out under it.
fn run(shared: &Shared, mut rx: mpsc::Receiver<Command>) {
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
    runtime.block_on(async {
        loop {
            let deadline = {
                let state = shared.lock();
                if state.log.is_none() {
                    return;
                }
                state.deadline()
            };
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(command)) => {
                    let mut state = shared.lock();
                    let taken = state.handle(command, &mut rx);
                    shared.outstanding.carried_out(taken);
                }
                // Every handle is gone: close cleanly.
                Ok(None) => shared.lock().close_unattended(),
                Err(_elapsed) => shared.lock().run_timers(),
            }
        }
    });
}

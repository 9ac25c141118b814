//! Compaction's own thread, and the way it hands its result back: a clean's heavy part runs on
//! a short-lived `cairn-log-clean` thread, and the swap is queued to the writer as a task, so it
//! runs between group commits like every other change to the log.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use super::{Command, LogTask};
use crate::clean::CleanJob;
use crate::error::LogError;

/// A way to queue commands on a writer that does not keep it alive: weak, so the writer still
/// stops when every [`super::LogWriter`] is dropped. It counts what it queues in the writer's
/// outstanding commands, as every sender must (see [`super::Shared`]).
#[derive(Clone)]
pub(super) struct QueueHandle {
    pub(super) tx: mpsc::WeakSender<Command>,
    pub(super) outstanding: Arc<AtomicUsize>,
}

impl QueueHandle {
    /// Queues `command` without blocking: retries while the queue is full, and gives up when
    /// the writer is gone or the clean was cancelled.
    fn hand_back(&self, mut command: Command, cancel: &AtomicBool) {
        loop {
            let Some(tx) = self.tx.upgrade() else { return };
            self.outstanding.fetch_add(1, Ordering::AcqRel);
            match tx.try_send(command) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.outstanding.fetch_sub(1, Ordering::AcqRel);
                    return;
                }
                Err(mpsc::error::TrySendError::Full(back)) => {
                    self.outstanding.fetch_sub(1, Ordering::AcqRel);
                    command = back;
                }
            }
            drop(tx);
            if cancel.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep(CLEANER_HANDBACK_RETRY);
        }
    }
}

/// Pause between attempts to hand a finished clean back to a full queue.
const CLEANER_HANDBACK_RETRY: Duration = Duration::from_millis(10);

/// A clean running on its own thread.
pub(super) struct CleanerThread {
    pub(super) handle: std::thread::JoinHandle<()>,
    pub(super) cancel: Arc<AtomicBool>,
    /// Set once the writer has finished (or will never finish) this clean: only then may
    /// another one be planned, since both would stage into the same directory.
    pub(super) done: Arc<AtomicBool>,
}

impl CleanerThread {
    pub(super) fn spawn(job: CleanJob, queue: QueueHandle) -> std::io::Result<CleanerThread> {
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
                queue.hand_back(Command::Task(finish), &thread_cancel);
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

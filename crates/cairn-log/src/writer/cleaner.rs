//! Compaction's own thread, and the way it hands its result back: a clean's heavy part runs on
//! a short-lived `cairn-log-clean` thread, and the swap is queued to the writer as a task, so it
//! runs between group commits like every other change to the log.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use super::queue::QueueHandle;
use super::{Command, LogTask};
use crate::clean::CleanJob;
use crate::error::LogError;

/// Queues `command` without blocking: retries while the queue is full, and gives up when the
/// writer is gone or the clean was cancelled.
fn hand_back(queue: &QueueHandle, mut command: Command, cancel: &AtomicBool) {
    loop {
        let Some(tx) = queue.upgrade() else { return };
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
                hand_back(&queue, Command::Task(finish), &thread_cancel);
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

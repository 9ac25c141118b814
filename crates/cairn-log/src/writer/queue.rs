//! The writer's command queue and its count of outstanding commands, kept in one place because
//! the order of appends depends on the count being right: every command sent counts from
//! before the writer can see it until the writer thread has carried it out, and an append's
//! caller may write it itself only while the count is zero (see the parent module).
//!
//! The count is taken by a guard, so a send that fails, or whose future is dropped while it
//! waits for queue space, gives it back: a count leaked there would stop every later caller
//! from writing inline (order would still hold, only the low-load path would be lost).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use super::Command;
use crate::error::LogError;

/// Commands sent to the writer and not yet carried out.
#[derive(Clone, Debug, Default)]
pub(super) struct Outstanding(Arc<AtomicUsize>);

impl Outstanding {
    /// Whether nothing sent is waiting to be carried out.
    pub(super) fn is_zero(&self) -> bool {
        self.0.load(Ordering::Acquire) == 0
    }

    /// The writer thread has carried out `count` commands.
    pub(super) fn carried_out(&self, count: usize) {
        self.0.fetch_sub(count, Ordering::AcqRel);
    }

    /// Counts one command about to be sent; the count is given back unless
    /// [`Counted::sent`] is called.
    fn count_one(&self) -> Counted<'_> {
        self.0.fetch_add(1, Ordering::AcqRel);
        Counted(Some(self))
    }
}

/// One command counted as outstanding before it is sent (see [`Outstanding::count_one`]).
struct Counted<'a>(Option<&'a Outstanding>);

impl Counted<'_> {
    /// The command is in the queue: its count stays until the writer carries it out.
    fn sent(mut self) {
        self.0 = None;
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        if let Some(outstanding) = self.0 {
            outstanding.carried_out(1);
        }
    }
}

/// The sending side of a writer's queue.
#[derive(Clone, Debug)]
pub(super) struct Queue {
    tx: mpsc::Sender<Command>,
    outstanding: Outstanding,
}

impl Queue {
    /// A queue of `depth` commands, counting into `outstanding`, and its receiving end.
    pub(super) fn new(depth: usize, outstanding: Outstanding) -> (Queue, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(depth);
        (Queue { tx, outstanding }, rx)
    }

    /// Sends `command`, waiting for queue space.
    ///
    /// # Errors
    /// [`LogError::Closed`] if the writer has stopped.
    pub(super) async fn send(&self, command: Command) -> Result<(), LogError> {
        let counted = self.outstanding.count_one();
        self.tx.send(command).await.map_err(|_| LogError::Closed)?;
        counted.sent();
        Ok(())
    }

    /// Sends `command` if there is queue space now; hands it back if not.
    pub(super) fn try_send(
        &self,
        command: Command,
    ) -> Result<(), mpsc::error::TrySendError<Command>> {
        let counted = self.outstanding.count_one();
        self.tx.try_send(command)?;
        counted.sent();
        Ok(())
    }

    /// Sends `command` from a thread outside an async runtime, blocking for queue space.
    ///
    /// # Errors
    /// [`LogError::Closed`] if the writer has stopped.
    pub(super) fn blocking_send(&self, command: Command) -> Result<(), LogError> {
        let counted = self.outstanding.count_one();
        self.tx
            .blocking_send(command)
            .map_err(|_| LogError::Closed)?;
        counted.sent();
        Ok(())
    }

    /// A handle that does not keep the writer alive.
    pub(super) fn downgrade(&self) -> QueueHandle {
        QueueHandle {
            tx: self.tx.downgrade(),
            outstanding: self.outstanding.clone(),
        }
    }
}

/// A way to queue commands on a writer that does not keep it alive: weak, so the writer still
/// stops when every [`super::LogWriter`] is dropped.
#[derive(Clone, Debug)]
pub(super) struct QueueHandle {
    tx: mpsc::WeakSender<Command>,
    outstanding: Outstanding,
}

impl QueueHandle {
    /// The queue, while the writer still has a handle.
    pub(super) fn upgrade(&self) -> Option<Queue> {
        Some(Queue {
            tx: self.tx.upgrade()?,
            outstanding: self.outstanding.clone(),
        })
    }
}

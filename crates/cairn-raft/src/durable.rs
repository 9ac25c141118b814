//! How far one node's Raft log meets its flush policy ("durable": after the `fdatasync` under
//! `always`), by offset and by entry index, and waiting for it. Three waiters: an `acks=leader`
//! answer waits for its batch's offsets; the state machine applies an entry only once it is
//! durable here; and a leader tells followers an entry is committed only once it is durable
//! here (`commit_bound`). The last two are what let a leader report its entries flushed to
//! openraft as soon as they are written (see `log_storage`), so that shipping them no longer
//! waits for its own fsync, while nothing is applied, answered or known committed anywhere
//! before a majority holds it durably.

use cairn_log::{EntryIndex, Offset};
use tokio::sync::watch;
use tokio::time::Instant;

/// The end of the durable part of a log: the offset and the entry index after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DurableEnd {
    /// The offset after the last durable record.
    pub(crate) offset: Offset,
    /// The index after the last durable entry.
    pub(crate) entry: EntryIndex,
}

#[derive(Clone, Copy, Debug)]
struct Durable {
    end: DurableEnd,
    /// A flush failed: the log is poisoned and nothing written since becomes durable.
    failed: bool,
}

/// Why a wait for durability ended without reaching its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotReached {
    /// The deadline passed first.
    TimedOut,
    /// A flush of the log failed, so the end will never be reached.
    Failed,
}

/// The durable end of one log, as its appends report it.
#[derive(Debug)]
pub(crate) struct DurableTracker {
    tx: watch::Sender<Durable>,
}

impl DurableTracker {
    /// A tracker whose log is durable up to `end` (at open: everything recovered is on disk).
    pub(crate) fn new(end: DurableEnd) -> DurableTracker {
        let (tx, _) = watch::channel(Durable { end, failed: false });
        DurableTracker { tx }
    }

    /// The durable end now.
    pub(crate) fn end(&self) -> DurableEnd {
        self.tx.borrow().end
    }

    /// Entries appended up to `end` met the flush policy, if `still_held` says the log still
    /// holds them. The report reaches here through a task, after the writer thread's flush; a
    /// truncation or restart may have removed those entries meanwhile (and lowered the end), and
    /// a late report must not raise the end over entries written since. `still_held` runs under
    /// the tracker's lock, which [`DurableTracker::lower`] and [`DurableTracker::restart_at`]
    /// also take after the log changed, so a report either sees the change or comes before it.
    pub(crate) fn advance(&self, end: DurableEnd, still_held: impl FnOnce() -> bool) {
        self.tx.send_if_modified(|d| {
            let next = DurableEnd {
                offset: d.end.offset.max(end.offset),
                entry: d.end.entry.max(end.entry),
            };
            if next == d.end || !still_held() {
                return false;
            }
            d.end = next;
            true
        });
    }

    /// A truncation left the log ending at `end`: nothing past it is held any more.
    pub(crate) fn lower(&self, end: DurableEnd) {
        self.tx.send_if_modified(|d| {
            let next = DurableEnd {
                offset: d.end.offset.min(end.offset),
                entry: d.end.entry.min(end.entry),
            };
            let moved = next != d.end;
            d.end = next;
            moved
        });
    }

    /// The log started over, empty, at `end` (a reset after a purge or a snapshot).
    pub(crate) fn restart_at(&self, end: DurableEnd) {
        self.tx.send_modify(|d| d.end = end);
    }

    /// A flush failed: every waiter, now and later, is told so.
    pub(crate) fn fail(&self) {
        self.tx.send_modify(|d| d.failed = true);
    }

    /// Waits until `reached` holds for the durable end, or `deadline` (if any) passes, or a
    /// flush fails.
    pub(crate) async fn wait(
        &self,
        reached: impl Fn(&DurableEnd) -> bool,
        deadline: Option<Instant>,
    ) -> Result<(), NotReached> {
        let mut rx = self.tx.subscribe();
        loop {
            {
                let now = rx.borrow_and_update();
                if reached(&now.end) {
                    return Ok(());
                }
                if now.failed {
                    return Err(NotReached::Failed);
                }
            }
            let changed = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, rx.changed())
                    .await
                    .map_err(|_| NotReached::TimedOut)?,
                None => rx.changed().await,
            };
            // The sender lives as long as the tracker, which this borrows: never closed here.
            if changed.is_err() {
                return Err(NotReached::Failed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(offset: u64, entry: u64) -> DurableEnd {
        DurableEnd {
            offset: Offset(offset),
            entry: EntryIndex(entry),
        }
    }

    #[tokio::test]
    async fn advance_only_raises_and_lower_only_lowers() {
        let t = DurableTracker::new(end(10, 3));
        t.advance(end(5, 2), || true);
        assert_eq!(t.end(), end(10, 3));
        t.advance(end(20, 5), || false);
        assert_eq!(t.end(), end(10, 3), "a report of entries no longer held");
        t.advance(end(20, 5), || true);
        assert_eq!(t.end(), end(20, 5));
        t.lower(end(30, 4));
        assert_eq!(t.end(), end(20, 4));
        t.restart_at(end(100, 50));
        assert_eq!(t.end(), end(100, 50));
    }

    #[tokio::test]
    async fn a_waiter_wakes_on_advance_and_hears_of_a_failure() {
        let t = std::sync::Arc::new(DurableTracker::new(end(0, 0)));
        let waiter = {
            let t = std::sync::Arc::clone(&t);
            tokio::spawn(async move { t.wait(|e| e.entry >= EntryIndex(2), None).await })
        };
        tokio::task::yield_now().await;
        t.advance(end(1, 1), || true);
        t.advance(end(2, 2), || true);
        assert_eq!(waiter.await.unwrap(), Ok(()));

        let waiter = {
            let t = std::sync::Arc::clone(&t);
            tokio::spawn(async move { t.wait(|e| e.entry >= EntryIndex(9), None).await })
        };
        t.fail();
        assert_eq!(waiter.await.unwrap(), Err(NotReached::Failed));
        let deadline = Some(Instant::now() + std::time::Duration::from_millis(10));
        assert_eq!(
            t.wait(|e| e.entry >= EntryIndex(1), deadline).await,
            Ok(()),
            "an end already reached is reported even after a failure"
        );
    }

    #[tokio::test]
    async fn a_deadline_ends_the_wait() {
        let t = DurableTracker::new(end(0, 0));
        let deadline = Some(Instant::now() + std::time::Duration::from_millis(10));
        assert_eq!(
            t.wait(|e| e.offset >= Offset(1), deadline).await,
            Err(NotReached::TimedOut)
        );
    }
}

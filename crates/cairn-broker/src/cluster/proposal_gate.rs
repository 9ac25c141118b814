//! [`ProposalGate`]: how a leaving node stops proposing to its controller group and learns that
//! no proposal of its own is still on the way into the log, before it hands the leadership
//! over (`cluster::handover`). Partitions need no gate of their own: their proposals already
//! pass one lock per partition, which checks the node's leaving flag.
//!
//! The invariant: once [`ProposalGate::close`] returns, every proposal either finished before
//! it (its entry is in the log) or was refused; none is still being submitted. The controller's
//! proposals are few and may wait for their commit inside the gate, so a close waits for those
//! commits too, which the caller bounds with its deadline.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{RwLock, RwLockReadGuard};

/// Lets proposals through until closed (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct ProposalGate {
    closed: AtomicBool,
    /// Held shared by every proposal in progress, and once exclusively by [`Self::close`].
    in_progress: RwLock<()>,
}

impl ProposalGate {
    /// Lets one proposal in: the guard, to hold until its entry is in the log, or `None` once
    /// the gate is closed (the proposal must not be made here).
    pub(crate) async fn enter(&self) -> Option<RwLockReadGuard<'_, ()>> {
        let guard = self.in_progress.read().await;
        (!self.closed.load(Ordering::SeqCst)).then_some(guard)
    }

    /// Whether the gate is closed.
    #[cfg(test)]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Refuses every later proposal and waits until those already in have left, up to
    /// `deadline`. Answers whether they all left in time.
    pub(crate) async fn close(&self, deadline: tokio::time::Instant) -> bool {
        self.closed.store(true, Ordering::SeqCst);
        // tokio's RwLock queues fairly: readers arriving after this writer wait behind it and
        // then see the gate closed.
        tokio::time::timeout_at(deadline, self.in_progress.write())
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_closed_gate_refuses_and_close_waits_for_proposals_inside() {
        let gate = std::sync::Arc::new(ProposalGate::default());
        let inside = gate.enter().await.expect("open gate lets in");
        let closing = {
            let gate = std::sync::Arc::clone(&gate);
            tokio::spawn(async move {
                gate.close(tokio::time::Instant::now() + Duration::from_secs(60))
                    .await
            })
        };
        while !gate.is_closed() {
            tokio::task::yield_now().await;
        }
        assert!(!closing.is_finished(), "a proposal is still inside");
        drop(inside);
        assert!(closing.await.expect("close task"), "close finished in time");
        assert!(gate.enter().await.is_none(), "a closed gate refuses");
    }

    #[tokio::test]
    async fn close_gives_up_at_its_deadline() {
        let gate = ProposalGate::default();
        let _inside = gate.enter().await.expect("open gate lets in");
        assert!(!gate.close(tokio::time::Instant::now()).await);
        assert!(gate.is_closed());
    }
}

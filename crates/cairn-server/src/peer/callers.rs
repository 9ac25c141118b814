//! Which inbound stream is current for each caller node. A caller keeps one stream to this node;
//! when it opens a new one, its old one is dead on its side (broken, timed out, the process
//! restarted), though this side may not have noticed: a peer that vanished without a FIN leaves a
//! stream that no byte will ever end. So a new stream from a node supersedes the old one, which
//! ends at once instead of holding a task and a connection until the process exits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use cairn_raft::NodeId;
use tokio::sync::oneshot;

/// The current inbound stream of each caller node.
#[derive(Debug, Default)]
pub(crate) struct Callers {
    next_seq: AtomicU64,
    current: Mutex<HashMap<NodeId, (u64, oneshot::Sender<()>)>>,
}

/// One inbound stream's place as its caller's current stream; leaving it (drop) frees the place
/// unless a newer stream took it.
#[derive(Debug)]
pub(crate) struct CallerSlot {
    callers: Arc<Callers>,
    from: NodeId,
    seq: u64,
    superseded: Option<oneshot::Receiver<()>>,
}

impl Callers {
    /// Makes a new stream from `from` its current one, superseding the previous one.
    pub(crate) fn enter(self: &Arc<Self>, from: NodeId) -> CallerSlot {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let (tell, superseded) = oneshot::channel();
        let previous = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(from, (seq, tell));
        if let Some((_, tell_previous)) = previous {
            tracing::info!(
                peer = from,
                "a new stream from the peer supersedes its previous one"
            );
            let _ = tell_previous.send(());
        }
        CallerSlot {
            callers: Arc::clone(self),
            from,
            seq,
            superseded: Some(superseded),
        }
    }
}

impl CallerSlot {
    /// Resolves once a newer stream from the same caller took this one's place; never
    /// otherwise.
    pub(crate) async fn superseded(&mut self) {
        if let Some(superseded) = self.superseded.as_mut() {
            if superseded.await.is_ok() {
                return;
            }
            self.superseded = None;
        }
        std::future::pending::<()>().await;
    }
}

impl Drop for CallerSlot {
    fn drop(&mut self) {
        let mut current = self
            .callers
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if current
            .get(&self.from)
            .is_some_and(|(seq, _)| *seq == self.seq)
        {
            current.remove(&self.from);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt as _;

    #[test]
    fn a_new_stream_from_a_node_supersedes_the_old_one_only() {
        let callers = Arc::new(Callers::default());
        let mut old = callers.enter(1);
        let mut other = callers.enter(2);
        let mut new = callers.enter(1);
        assert!(old.superseded().now_or_never().is_some());
        assert!(new.superseded().now_or_never().is_none());
        assert!(other.superseded().now_or_never().is_none());
        // The old stream leaving does not free the new one's place.
        drop(old);
        assert_eq!(callers.current.lock().unwrap().len(), 2);
        drop(new);
        drop(other);
        assert!(callers.current.lock().unwrap().is_empty());
    }
}

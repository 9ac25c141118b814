//! The calls of one link that were sent and await their reply: call id -> the caller's oneshot.
//! The link's writer puts a call here just before it writes the call's frame, the link's reader
//! takes it out when the reply comes, a caller whose deadline passed takes its own out, and a
//! broken stream fails all of them. Call ids are never reused on a link, so a late reply from an
//! old stream can only find nothing.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use cairn_raft::TransportError;
use tokio::sync::oneshot;

/// Where a call's outcome goes.
pub(crate) type ReplyTx = oneshot::Sender<Result<Bytes, TransportError>>;

/// The calls in flight on one link (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct PendingCalls {
    calls: Mutex<HashMap<u64, ReplyTx>>,
}

impl PendingCalls {
    /// Records call `call_id` unless its caller stopped waiting (its deadline passed while the
    /// call was queued): answers whether the call is still wanted, and so worth sending. The
    /// check and the insert are one step under the lock, and a caller drops its receiver before
    /// it [`forget`](Self::forget)s, so no entry outlives its caller.
    pub(crate) fn insert_if_waiting(&self, call_id: u64, reply: ReplyTx) -> bool {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        if reply.is_closed() {
            return false;
        }
        calls.insert(call_id, reply);
        true
    }

    /// Takes call `call_id` out, to answer it.
    pub(crate) fn take(&self, call_id: u64) -> Option<ReplyTx> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&call_id)
    }

    /// Drops call `call_id`, whose caller stopped waiting.
    pub(crate) fn forget(&self, call_id: u64) {
        drop(self.take(call_id));
    }

    /// Fails every call with the error `error` makes; answers how many there were.
    pub(crate) fn fail_all(&self, error: impl Fn() -> TransportError) -> usize {
        let calls = std::mem::take(&mut *self.calls.lock().unwrap_or_else(PoisonError::into_inner));
        let count = calls.len();
        for (_, reply) in calls {
            // A caller that already gave up is no loss.
            let _ = reply.send(Err(error()));
        }
        count
    }

    /// How many calls await a reply.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_whose_caller_left_is_not_recorded() {
        let pending = PendingCalls::default();
        let (tx, rx) = oneshot::channel();
        drop(rx);
        assert!(!pending.insert_if_waiting(1, tx));
        assert_eq!(pending.len(), 0);
    }

    #[test]
    fn a_reply_reaches_its_caller_once() {
        let pending = PendingCalls::default();
        let (tx, mut rx) = oneshot::channel();
        assert!(pending.insert_if_waiting(7, tx));
        let reply = pending.take(7).unwrap();
        reply.send(Ok(Bytes::from_static(b"ok"))).unwrap();
        assert_eq!(rx.try_recv().unwrap().unwrap(), Bytes::from_static(b"ok"));
        assert!(pending.take(7).is_none());
    }

    #[test]
    fn fail_all_fails_every_call_and_empties_the_map() {
        let pending = PendingCalls::default();
        let mut receivers = Vec::new();
        for id in 0..3 {
            let (tx, rx) = oneshot::channel();
            assert!(pending.insert_if_waiting(id, tx));
            receivers.push(rx);
        }
        let failed = pending.fail_all(|| TransportError::Unreachable {
            node: 2,
            reason: "gone".into(),
        });
        assert_eq!(failed, 3);
        assert_eq!(pending.len(), 0);
        for mut rx in receivers {
            assert!(matches!(
                rx.try_recv().unwrap(),
                Err(TransportError::Unreachable { node: 2, .. })
            ));
        }
    }
}

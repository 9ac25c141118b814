//! [`Link`]: this node's side of the traffic to one peer. A caller's call goes into the link's
//! bounded queue and waits on a oneshot; the link's driver task (`link_driver`) owns the stream
//! and the queue's far end. The state the driver publishes lets a call to a peer that is down
//! fail at once instead of waiting out its deadline.
//!
//! Invariant: every call resolves exactly once: with its reply, a refusal, `Unreachable` (the
//! link failed or was dropped) or `Timeout` (its own deadline, which bounds every wait here,
//! the wait for room in the queue included).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use cairn_proto::cluster::v1::Call;
use cairn_raft::transport::BoxFuture;
use cairn_raft::{GroupId, NodeId, RpcKind, TransportError};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::identity::NodeIdentity;
use super::limits::PeerLimits;
use super::link_driver;
use super::metrics::{PeerCounter, PeerCounters};
use super::pending::{PendingCalls, ReplyTx};
use crate::tls::TlsState;

/// A call on its way to the writer, with where its outcome goes.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) call: Call,
    pub(crate) reply: ReplyTx,
}

/// What the link's driver is doing, as callers see it.
#[derive(Debug, Clone)]
pub(crate) enum LinkState {
    /// No stream, and none being opened: the next call opens one.
    Idle,
    /// A stream is being opened; calls queue behind it.
    Opening,
    /// A stream is open.
    Up,
    /// The last attempt failed or the stream broke; calls fail at once until `until`.
    Down { until: Instant, reason: String },
}

/// What a link's caller side and its driver share.
#[derive(Debug)]
pub(crate) struct LinkShared {
    pub(crate) node: NodeId,
    pub(crate) addr: String,
    pub(crate) limits: PeerLimits,
    pub(crate) identity: Arc<NodeIdentity>,
    pub(crate) counters: Arc<PeerCounters>,
    /// TLS for the link's connections, when the node runs TLS.
    pub(crate) tls: Option<TlsState>,
    pub(crate) pending: PendingCalls,
    state: Mutex<LinkState>,
    next_call_id: AtomicU64,
}

impl LinkShared {
    /// Publishes the driver's state.
    pub(crate) fn set_state(&self, state: LinkState) {
        self.counters.set_link_up(matches!(state, LinkState::Up));
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = state;
    }

    /// Why calls fail at once now, if they do.
    fn down_reason(&self) -> Option<String> {
        match &*self.state.lock().unwrap_or_else(PoisonError::into_inner) {
            LinkState::Down { until, reason } if Instant::now() < *until => Some(reason.clone()),
            _ => None,
        }
    }

    /// The error of a call that cannot reach the peer.
    pub(crate) fn unreachable(&self, reason: impl Into<String>) -> TransportError {
        TransportError::Unreachable {
            node: self.node,
            reason: reason.into(),
        }
    }
}

/// This node's link to one peer (see the module doc). Dropping it stops its driver, closes its
/// stream and fails the calls waiting on it.
#[derive(Debug)]
pub(crate) struct Link {
    shared: Arc<LinkShared>,
    queue: mpsc::Sender<Outgoing>,
    driver: Mutex<Driver>,
}

/// The link's driver task, started by the first call: it needs a runtime, and a link may be
/// created outside one (an address book set up before the runtime starts).
#[derive(Debug)]
struct Driver {
    /// The queue's far end, until the task takes it.
    queue_rx: Option<mpsc::Receiver<Outgoing>>,
    task: Option<JoinHandle<()>>,
}

impl Link {
    /// A link to `node` at `addr`; nothing is opened until the first call.
    pub(crate) fn new(
        node: NodeId,
        addr: String,
        identity: Arc<NodeIdentity>,
        limits: PeerLimits,
        counters: Arc<PeerCounters>,
        tls: Option<TlsState>,
    ) -> Self {
        let (queue, queue_rx) = mpsc::channel(limits.call_queue_depth.max(1));
        let shared = Arc::new(LinkShared {
            node,
            addr,
            limits,
            identity,
            counters,
            tls,
            pending: PendingCalls::default(),
            state: Mutex::new(LinkState::Idle),
            next_call_id: AtomicU64::new(0),
        });
        Self {
            shared,
            queue,
            driver: Mutex::new(Driver {
                queue_rx: Some(queue_rx),
                task: None,
            }),
        }
    }

    /// The peer's address this link dials.
    pub(crate) fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// Sends one call; see [`cairn_raft::PeerTransport::call`]. Called outside a tokio runtime,
    /// it fails with `Unreachable` (nothing could carry the call).
    pub(crate) fn call(
        &self,
        group: GroupId,
        kind: RpcKind,
        payload: Bytes,
        timeout_ms: u64,
    ) -> BoxFuture<'static, Result<Bytes, TransportError>> {
        let started = self.start_driver();
        let shared = Arc::clone(&self.shared);
        let queue = self.queue.clone();
        Box::pin(async move {
            let outcome = match started {
                Ok(()) => send(&shared, queue, group, kind, payload, timeout_ms).await,
                Err(err) => Err(err),
            };
            if let Err(err) = &outcome {
                shared.counters.incr(match err {
                    TransportError::Timeout { .. } => PeerCounter::CallsTimedOut,
                    TransportError::Refused { .. } => PeerCounter::CallsRefused,
                    TransportError::Unreachable { .. } | TransportError::UnknownPeer(_) => {
                        PeerCounter::CallsUnreachable
                    }
                });
            }
            outcome
        })
    }

    /// Starts the driver on the current runtime unless it runs already.
    fn start_driver(&self) -> Result<(), TransportError> {
        let mut driver = self.driver.lock().unwrap_or_else(PoisonError::into_inner);
        if driver.queue_rx.is_none() {
            return Ok(());
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| self.shared.unreachable("not called on a tokio runtime"))?;
        if let Some(queue_rx) = driver.queue_rx.take() {
            let task = runtime.spawn(link_driver::drive(Arc::clone(&self.shared), queue_rx));
            driver.task = Some(task);
        }
        Ok(())
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let driver = self.driver.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = &driver.task {
            // Dropping the task drops the queue's far end: queued calls see their oneshot
            // closed. Calls already sent are failed here, as no reader will answer them.
            task.abort();
        }
        self.shared
            .pending
            .fail_all(|| self.shared.unreachable("the link to the peer was closed"));
    }
}

/// Queues one call and waits for its outcome, all within `timeout_ms`.
async fn send(
    shared: &LinkShared,
    queue: mpsc::Sender<Outgoing>,
    group: GroupId,
    kind: RpcKind,
    payload: Bytes,
    timeout_ms: u64,
) -> Result<Bytes, TransportError> {
    let max = shared.limits.max_call_payload_bytes;
    if payload.len() > max {
        return Err(TransportError::Refused {
            node: shared.node,
            reason: format!(
                "not sent: a payload of {} bytes is over the node-to-node limit of {max} bytes",
                payload.len()
            ),
        });
    }
    if let Some(reason) = shared.down_reason() {
        return Err(shared.unreachable(reason));
    }
    let call_id = shared.next_call_id.fetch_add(1, Ordering::Relaxed);
    let (reply, answer) = oneshot::channel();
    let outgoing = Outgoing {
        call: Call {
            call_id,
            group: group.0,
            kind: kind.code(),
            payload,
        },
        reply,
    };
    let exchange = async {
        queue
            .send(outgoing)
            .await
            .map_err(|_| shared.unreachable("the link to the peer was closed"))?;
        answer
            .await
            .unwrap_or_else(|_| Err(shared.unreachable("the link to the peer was closed")))
    };
    match tokio::time::timeout(Duration::from_millis(timeout_ms), exchange).await {
        Ok(outcome) => outcome,
        Err(_) => {
            // The oneshot's receiver went with the timed-out future, so the writer will not
            // record the call if it has not yet; if it has, the entry goes now.
            shared.pending.forget(call_id);
            Err(TransportError::Timeout {
                node: shared.node,
                millis: timeout_ms,
            })
        }
    }
}

//! The live gRPC connections and the limits on them. Admission is decided here, under one
//! short mutex, so the total and per-IP counts can never be passed by two accepts racing.
//!
//! When the total is reached, a new connection makes room by closing an idle one rather than
//! being refused: first the oldest that has not finished its HTTP/2 handshake (a flood of raw
//! TCP connections displaces only itself), else the oldest of the [`EVICTION_SCAN_MAX`] oldest
//! with no request in flight. An idle gRPC client reconnects on its next call, so this keeps a
//! node that is full of idle connections open to a new client. Only when every scanned
//! connection is busy is the new one refused. The per-IP limit never evicts: it is there to
//! stop one host from taking everything, so its own excess is refused.
//!
//! The invariant: an entry leaves the registry exactly once (evicted, or its [`Registration`]
//! dropped), and the per-IP counts and the open gauge move with it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;

use super::EffectiveLimits;
use super::connection_metrics::{ClosedReason, ConnectionMetrics, RefusedReason};

/// Most connections looked at for an idle one to evict, so an accept at the limit costs a
/// bounded time however many connections are open.
pub const EVICTION_SCAN_MAX: usize = 256;

/// One connection's shared state: read by its stream, its requests and the registry.
#[derive(Debug)]
pub(crate) struct ConnectionState {
    id: u64,
    /// When it was accepted: the base of `last_request_end_nanos`.
    accepted_at: Instant,
    in_flight_count: AtomicU64,
    /// When its last request ended, in nanoseconds since `accepted_at`; 0 if none has.
    last_request_end_nanos: AtomicU64,
    handshake_done: AtomicBool,
    close_requested: AtomicBool,
    /// The connection's task, woken to close it on eviction.
    waker: AtomicWaker,
}

impl ConnectionState {
    fn new(id: u64) -> Self {
        Self {
            id,
            accepted_at: Instant::now(),
            in_flight_count: AtomicU64::new(0),
            last_request_end_nanos: AtomicU64::new(0),
            handshake_done: AtomicBool::new(false),
            close_requested: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        }
    }

    /// Counts a request in flight until the returned guard is dropped.
    pub(crate) fn request_started(self: &Arc<Self>) -> RequestGuard {
        self.in_flight_count.fetch_add(1, Ordering::AcqRel);
        RequestGuard {
            state: Arc::clone(self),
        }
    }

    /// Requests in flight now.
    pub(crate) fn in_flight_count(&self) -> u64 {
        self.in_flight_count.load(Ordering::Acquire)
    }

    /// When the last request ended, if one has.
    pub(crate) fn last_request_end(&self) -> Option<Instant> {
        match self.last_request_end_nanos.load(Ordering::Acquire) {
            0 => None,
            nanos => Some(self.accepted_at + Duration::from_nanos(nanos)),
        }
    }

    /// Whether the registry asked this connection to close (it was evicted).
    pub(crate) fn close_requested(&self) -> bool {
        self.close_requested.load(Ordering::Acquire)
    }

    /// Registers the connection's task to be woken by an eviction or a request ending.
    pub(crate) fn register_waker(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    fn request_close(&self) {
        self.close_requested.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// A request in flight on a connection; dropping it ends the request.
#[derive(Debug)]
pub(crate) struct RequestGuard {
    state: Arc<ConnectionState>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let since_accept = self.state.accepted_at.elapsed();
        // At least 1 ns, since 0 means "no request has ended".
        let nanos = u64::try_from(since_accept.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        self.state
            .last_request_end_nanos
            .store(nanos, Ordering::Release);
        self.state.in_flight_count.fetch_sub(1, Ordering::AcqRel);
        // An evicted connection waits for its last request before it closes.
        if self.state.close_requested() {
            self.state.waker.wake();
        }
    }
}

/// Whether a new connection may stay.
#[derive(Debug)]
pub(crate) enum Admission {
    /// It may; the registration holds its place until dropped.
    Admitted(Registration),
    /// It must be closed at once, for this reason.
    Refused(RefusedReason),
}

/// An admitted connection's place in the registry; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Registration {
    registry: Arc<Registry>,
    state: Arc<ConnectionState>,
}

impl Registration {
    /// The connection's shared state.
    pub(crate) fn state(&self) -> &Arc<ConnectionState> {
        &self.state
    }

    /// Records that the connection finished its handshake, so it is no longer the first to be
    /// evicted.
    pub(crate) fn handshake_done(&self) {
        if !self.state.handshake_done.swap(true, Ordering::AcqRel) {
            self.registry
                .lock()
                .pending_handshake
                .remove(&self.state.id);
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut inner = self.registry.lock();
        inner.remove(self.state.id, &self.registry.metrics);
    }
}

/// The live connections (see the module doc).
#[derive(Debug)]
pub(crate) struct Registry {
    limits: EffectiveLimits,
    metrics: Arc<ConnectionMetrics>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    /// By id, which is the accept order: the first entries are the oldest.
    live: BTreeMap<u64, Live>,
    /// The ids of connections that have not finished their handshake.
    pending_handshake: BTreeSet<u64>,
    per_ip_count: HashMap<IpAddr, u64>,
}

#[derive(Debug)]
struct Live {
    state: Arc<ConnectionState>,
    ip: IpAddr,
}

impl Registry {
    /// An empty registry enforcing `limits`, reporting to `metrics`.
    pub(crate) fn new(limits: EffectiveLimits, metrics: Arc<ConnectionMetrics>) -> Self {
        Self {
            limits,
            metrics,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The maps stay consistent at every unlock (no code in between can panic halfway), so
        // a panic elsewhere while holding the lock leaves nothing to repair.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides whether a connection from `ip` may stay, evicting an idle one if the total is
    /// reached (see the module doc).
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Admission {
        let mut inner = self.lock();
        let from_ip = inner.per_ip_count.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.limits.max_connections_per_ip {
            return Admission::Refused(RefusedReason::MaxConnectionsPerIp);
        }
        if inner.live.len() as u64 >= self.limits.max_connections {
            let Some(victim) = inner.eviction_victim() else {
                return Admission::Refused(RefusedReason::MaxConnections);
            };
            if let Some(evicted) = inner.remove(victim, &self.metrics) {
                evicted.request_close();
                self.metrics.count_closed(ClosedReason::Evicted);
            }
        }
        inner.next_id += 1;
        let state = Arc::new(ConnectionState::new(inner.next_id));
        inner.live.insert(
            state.id,
            Live {
                state: Arc::clone(&state),
                ip,
            },
        );
        inner.pending_handshake.insert(state.id);
        *inner.per_ip_count.entry(ip).or_insert(0) += 1;
        self.metrics.set_open(inner.live.len() as u64);
        Admission::Admitted(Registration {
            registry: Arc::clone(self),
            state,
        })
    }
}

impl Inner {
    /// The connection to close to make room, if any may be.
    fn eviction_victim(&self) -> Option<u64> {
        if let Some(&id) = self.pending_handshake.first() {
            return Some(id);
        }
        self.live
            .values()
            .take(EVICTION_SCAN_MAX)
            .find(|live| live.state.in_flight_count() == 0)
            .map(|live| live.state.id)
    }

    /// Takes a connection out, if it is still in; returns its state.
    fn remove(&mut self, id: u64, metrics: &ConnectionMetrics) -> Option<Arc<ConnectionState>> {
        let live = self.live.remove(&id)?;
        self.pending_handshake.remove(&id);
        if let Some(count) = self.per_ip_count.get_mut(&live.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_ip_count.remove(&live.ip);
            }
        }
        metrics.set_open(self.live.len() as u64);
        Some(live.state)
    }
}

#[cfg(test)]
mod tests;

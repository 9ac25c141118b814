//! The simulated network: every call between nodes becomes a task that sleeps a seeded delay,
//! may be lost or duplicated on the way there, is handed to the target node's group registry,
//! and whose answer sleeps again and may be lost on the way back. Links can be cut one way or
//! both ways and nodes can be down; a cut or a crash is checked when a message arrives, not when
//! it leaves, as on a real network. It does not model bandwidth or connection state.
//!
//! Each message's fate is drawn from its own stream, keyed by the seed, the link and the
//! message's number on that link, so the same seed gives the same fates as long as the nodes
//! send the same messages in the same order per link.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::rng::SimRng;
use crate::groups::GroupRegistry;
use crate::transport::{BoxFuture, InboundCalls, PeerTransport, RpcKind, TransportError};
use crate::types::{GroupId, NodeId};

/// How badly the network behaves, per message leg (request or answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultProfile {
    /// Chance in 1000 that a leg is lost (the caller sees its deadline pass).
    pub loss_per_mille: u32,
    /// Chance in 1000 that a request is delivered twice (the copy's answer is dropped).
    pub duplicate_per_mille: u32,
    /// Every leg takes `delay_min_ms..delay_max_ms`; different delays reorder messages.
    pub delay_min_ms: u64,
    /// See `delay_min_ms`.
    pub delay_max_ms: u64,
    /// Chance in 1000 that a leg is held back for up to `long_delay_max_ms` instead (a message
    /// overtaken by many later ones, or arriving after its sender gave up on it).
    pub long_delay_per_mille: u32,
    /// See `long_delay_per_mille`.
    pub long_delay_max_ms: u64,
}

impl FaultProfile {
    /// A healthy network: no loss, short delays; used to let the cluster converge.
    pub const CALM: FaultProfile = FaultProfile {
        loss_per_mille: 0,
        duplicate_per_mille: 0,
        delay_min_ms: 1,
        delay_max_ms: 5,
        long_delay_per_mille: 0,
        long_delay_max_ms: 0,
    };

    /// A profile drawn from `rng`, from mild to hostile.
    pub fn random(rng: &mut SimRng) -> FaultProfile {
        let delay_min_ms = rng.range(0, 10);
        FaultProfile {
            loss_per_mille: u32::try_from(rng.range(0, 200)).unwrap_or(0),
            duplicate_per_mille: u32::try_from(rng.range(0, 50)).unwrap_or(0),
            delay_min_ms,
            delay_max_ms: delay_min_ms + rng.range(1, 60),
            long_delay_per_mille: u32::try_from(rng.range(0, 50)).unwrap_or(0),
            long_delay_max_ms: rng.range(100, 1500),
        }
    }

    fn leg_delay(&self, rng: &mut SimRng) -> Duration {
        let ms = if rng.chance(self.long_delay_per_mille) {
            rng.range(
                self.delay_max_ms,
                self.long_delay_max_ms.max(self.delay_max_ms + 1),
            )
        } else {
            rng.range(self.delay_min_ms, self.delay_max_ms)
        };
        Duration::from_millis(ms)
    }
}

/// What the network did, for the run's summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Calls sent.
    pub sent: u64,
    /// Legs lost (by chance or to a cut link).
    pub lost: u64,
    /// Requests delivered twice.
    pub duplicated: u64,
    /// Calls to a node that was down.
    pub refused: u64,
}

struct NodeSlot {
    registry: Arc<GroupRegistry>,
    incarnation: u64,
    up: bool,
}

#[derive(Default)]
struct NetState {
    nodes: BTreeMap<NodeId, NodeSlot>,
    /// Directed links that carry nothing: `(from, to)`.
    cut: BTreeSet<(NodeId, NodeId)>,
    profile: Option<FaultProfile>,
    sent_per_link: BTreeMap<(NodeId, NodeId), u64>,
    stats: NetStats,
}

/// The network all simulated nodes share.
pub struct SimNetwork {
    seed: u64,
    state: Mutex<NetState>,
}

/// One message's fate, decided when it is sent.
struct Fate {
    request_delay: Duration,
    answer_delay: Duration,
    request_lost: bool,
    answer_lost: bool,
    duplicate_delay: Option<Duration>,
}

enum Outcome {
    Answer(Result<Bytes, String>),
    TargetDown,
}

impl SimNetwork {
    /// An empty network whose message fates derive from `seed`, calm until told otherwise.
    pub fn new(seed: u64) -> Arc<SimNetwork> {
        Arc::new(SimNetwork {
            seed,
            state: Mutex::new(NetState::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Brings node `id` up with `registry` (a first start or a restart); returns its
    /// incarnation, which its transport carries so calls of an earlier life go nowhere.
    pub fn start_node(&self, id: NodeId, registry: Arc<GroupRegistry>) -> u64 {
        let mut state = self.lock();
        let incarnation = state.nodes.get(&id).map_or(1, |s| s.incarnation + 1);
        state.nodes.insert(
            id,
            NodeSlot {
                registry,
                incarnation,
                up: true,
            },
        );
        incarnation
    }

    /// Takes node `id` down: calls to it are refused and its own calls go nowhere.
    pub fn crash_node(&self, id: NodeId) {
        if let Some(slot) = self.lock().nodes.get_mut(&id) {
            slot.up = false;
        }
    }

    /// Sets the fault profile of every link.
    pub fn set_profile(&self, profile: FaultProfile) {
        self.lock().profile = Some(profile);
    }

    /// Cuts the directed link `from -> to` (answers from `to` to `from` still pass).
    pub fn cut(&self, from: NodeId, to: NodeId) {
        self.lock().cut.insert((from, to));
    }

    /// Restores every cut link.
    pub fn heal(&self) {
        self.lock().cut.clear();
    }

    /// What the network did so far.
    pub fn stats(&self) -> NetStats {
        self.lock().stats
    }

    /// The transport node `from` sends through in its life number `incarnation`.
    pub fn transport(self: &Arc<Self>, from: NodeId, incarnation: u64) -> Arc<dyn PeerTransport> {
        Arc::new(SimTransport {
            net: Arc::clone(self),
            from,
            incarnation,
        })
    }

    /// Decides the fate of the next message on `from -> to`, or `None` if the sender is down
    /// (a node of an earlier life has no network).
    fn send(&self, from: NodeId, incarnation: u64, to: NodeId) -> Option<Fate> {
        let mut state = self.lock();
        let alive = state
            .nodes
            .get(&from)
            .is_some_and(|s| s.up && s.incarnation == incarnation);
        if !alive {
            return None;
        }
        state.stats.sent += 1;
        let number = state.sent_per_link.entry((from, to)).or_insert(0);
        *number += 1;
        let mut rng = SimRng::keyed(self.seed, &[from, to, *number]);
        let profile = state.profile.unwrap_or(FaultProfile::CALM);
        let fate = Fate {
            request_delay: profile.leg_delay(&mut rng),
            answer_delay: profile.leg_delay(&mut rng),
            request_lost: rng.chance(profile.loss_per_mille),
            answer_lost: rng.chance(profile.loss_per_mille),
            duplicate_delay: rng
                .chance(profile.duplicate_per_mille)
                .then(|| profile.leg_delay(&mut rng) * 2),
        };
        Some(fate)
    }

    /// Whether a message on `from -> to` arriving now gets through; counts it lost if not.
    fn passes(&self, from: NodeId, to: NodeId, lost: bool) -> bool {
        let mut state = self.lock();
        if lost || state.cut.contains(&(from, to)) {
            state.stats.lost += 1;
            return false;
        }
        true
    }

    /// The registry of `to` if it is up now.
    fn receiver(&self, to: NodeId) -> Option<Arc<GroupRegistry>> {
        let mut state = self.lock();
        match state.nodes.get(&to) {
            Some(slot) if slot.up => Some(Arc::clone(&slot.registry)),
            _ => {
                state.stats.refused += 1;
                None
            }
        }
    }

    fn count_duplicate(&self) {
        self.lock().stats.duplicated += 1;
    }
}

struct SimTransport {
    net: Arc<SimNetwork>,
    from: NodeId,
    incarnation: u64,
}

impl SimTransport {
    /// Carries one call there and its answer back, as a task of its own: the request still
    /// arrives (and takes effect) if the caller stops waiting.
    async fn deliver(
        net: Arc<SimNetwork>,
        (from, to): (NodeId, NodeId),
        (group, kind, payload): (GroupId, RpcKind, Bytes),
        fate: Fate,
        answer: oneshot::Sender<Outcome>,
    ) {
        tokio::time::sleep(fate.request_delay).await;
        if !net.passes(from, to, fate.request_lost) {
            return;
        }
        let Some(registry) = net.receiver(to) else {
            let _ = answer.send(Outcome::TargetDown);
            return;
        };
        if let Some(delay) = fate.duplicate_delay {
            net.count_duplicate();
            let copy = (Arc::clone(&registry), payload.clone());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = copy.0.handle(from, group, kind, copy.1).await;
            });
        }
        let result = registry.handle(from, group, kind, payload).await;
        tokio::time::sleep(fate.answer_delay).await;
        if net.passes(to, from, fate.answer_lost) {
            let _ = answer.send(Outcome::Answer(result));
        }
    }
}

impl PeerTransport for SimTransport {
    fn call(
        &self,
        target: NodeId,
        group: GroupId,
        kind: RpcKind,
        payload: Bytes,
        timeout_ms: u64,
    ) -> BoxFuture<'static, Result<Bytes, TransportError>> {
        let fate = self.net.send(self.from, self.incarnation, target);
        let (tx, rx) = oneshot::channel();
        if let Some(fate) = fate {
            tokio::spawn(SimTransport::deliver(
                Arc::clone(&self.net),
                (self.from, target),
                (group, kind, payload),
                fate,
                tx,
            ));
        }
        let timeout = Duration::from_millis(timeout_ms);
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let outcome = tokio::time::timeout_at(deadline, rx).await;
            match outcome {
                Ok(Ok(Outcome::Answer(Ok(bytes)))) => Ok(bytes),
                Ok(Ok(Outcome::Answer(Err(reason)))) => Err(TransportError::Refused {
                    node: target,
                    reason,
                }),
                Ok(Ok(Outcome::TargetDown)) => Err(TransportError::Unreachable {
                    node: target,
                    reason: "connection refused (node down)".to_string(),
                }),
                // A lost leg looks like silence: the caller learns only when its deadline passes.
                Ok(Err(_lost)) => {
                    tokio::time::sleep_until(deadline).await;
                    Err(TransportError::Timeout {
                        node: target,
                        millis: timeout_ms,
                    })
                }
                Err(_elapsed) => Err(TransportError::Timeout {
                    node: target,
                    millis: timeout_ms,
                }),
            }
        })
    }
}

//! What the simulation watches while it runs: every entry any state machine applies (wrapped in
//! [`Observed`]), every leader seen in the nodes' metrics, and every write a client had
//! acknowledged. It checks Raft's safety properties as the events happen, so a violation is
//! caught even if a later crash erases its trace:
//! - state machine safety: an index applied anywhere is applied with the same entry everywhere,
//!   in every life of every node;
//! - election safety: at most one leader per term;
//! - an acknowledged write is the entry applied at the index it was acknowledged at.
//!
//! It records violations instead of panicking inside openraft's tasks; the run fails at its end.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{Entry, EntryPayload, LogId, SnapshotMeta, StorageError, StoredMembership};

use super::rng::mix;
use crate::types::{BatchData, NodeId, PeerNode};
use crate::wire::CairnRaftConfig;

/// An applied entry as the checker sees it: its log id and its payload (`None` for entries
/// without application data: a leader's no-op, a membership change).
pub type AppliedEntry = (LogId<NodeId>, Option<Bytes>);

#[derive(Default)]
struct ObserverState {
    /// The entry first applied at each index, by any node.
    applied_at: BTreeMap<u64, AppliedEntry>,
    /// What each node applied in its current life, in order.
    applied_by: BTreeMap<NodeId, Vec<AppliedEntry>>,
    /// Each node's current life.
    life_of: BTreeMap<NodeId, u64>,
    /// The leader seen for each term.
    leader_of_term: BTreeMap<u64, NodeId>,
    /// Acknowledged writes: index -> (log id, payload).
    acked: BTreeMap<u64, AppliedEntry>,
    violations: Vec<String>,
}

/// The shared record of a run; cheap to clone.
#[derive(Clone, Default)]
pub struct Observer {
    state: Arc<Mutex<ObserverState>>,
}

fn payload_of<C: CairnRaftConfig>(entry: &Entry<C>) -> Option<Bytes> {
    match &entry.payload {
        EntryPayload::Normal(BatchData(bytes)) => Some(bytes.clone()),
        EntryPayload::Blank | EntryPayload::Membership(_) => None,
    }
}

/// An entry for a violation message: its log id and the printable tail of its payload (the
/// record value, for the one-record batches the simulations write).
pub fn describe((log_id, payload): &AppliedEntry) -> String {
    let Some(bytes) = payload else {
        return format!("{log_id} (no data)");
    };
    let text: String = bytes
        .iter()
        .map(|b| char::from(*b))
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .collect();
    let tail: String = text
        .chars()
        .rev()
        .take(32)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{log_id} {tail:?}")
}

impl Observer {
    fn lock(&self) -> std::sync::MutexGuard<'_, ObserverState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Node `node` starts life number `life` with an empty state machine.
    pub fn new_life(&self, node: NodeId, life: u64) {
        let mut state = self.lock();
        state.applied_by.insert(node, Vec::new());
        state.life_of.insert(node, life);
    }

    fn applied(&self, (node, life): (NodeId, u64), entry: AppliedEntry) {
        let mut state = self.lock();
        let index = entry.0.index;
        // An earlier life still stopping may apply a last entry: it counts for the agreement
        // check below, not for the current life's list.
        if state.life_of.get(&node) == Some(&life) {
            let mine = state.applied_by.entry(node).or_default();
            let prev = mine.last().map(|(log_id, _)| log_id.index);
            mine.push(entry.clone());
            if let Some(prev) = prev.filter(|p| p + 1 != index) {
                let msg = format!("node {node} applied index {index} after {prev}");
                state.violations.push(msg);
            }
        }
        match state.applied_at.get(&index) {
            Some(first) if *first != entry => {
                let msg = format!(
                    "node {node} applied {} at index {index}, where {} was applied before",
                    describe(&entry),
                    describe(first)
                );
                state.violations.push(msg);
            }
            Some(_) => {}
            None => {
                state.applied_at.insert(index, entry);
            }
        }
    }

    /// Node `node` was seen leading `term`.
    pub fn leader(&self, term: u64, node: NodeId) {
        let mut state = self.lock();
        let first = *state.leader_of_term.entry(term).or_insert(node);
        if first != node {
            let msg = format!("term {term} has two leaders: node {first} and node {node}");
            state.violations.push(msg);
        }
    }

    /// A client's write of `payload` was acknowledged at `log_id`.
    pub fn acked(&self, log_id: LogId<NodeId>, payload: Bytes) {
        let mut state = self.lock();
        let entry = (log_id, Some(payload));
        if let Some(before) = state.acked.insert(log_id.index, entry.clone()) {
            let msg = format!(
                "index {} acknowledged twice: {} and {}",
                log_id.index,
                describe(&before),
                describe(&entry)
            );
            state.violations.push(msg);
        }
        if let Some(applied) = state.applied_at.get(&log_id.index)
            && *applied != entry
        {
            let msg = format!(
                "write {} acknowledged, but {} was applied there",
                describe(&entry),
                describe(applied)
            );
            state.violations.push(msg);
        }
    }

    /// Records a violation found outside the observer (a final check).
    pub fn violation(&self, msg: String) {
        self.lock().violations.push(msg);
    }

    /// The violations so far.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// What `node` applied in its current life.
    pub fn applied_by(&self, node: NodeId) -> Vec<AppliedEntry> {
        self.lock()
            .applied_by
            .get(&node)
            .cloned()
            .unwrap_or_default()
    }

    /// Every acknowledged write, by index.
    pub fn acked_writes(&self) -> BTreeMap<u64, AppliedEntry> {
        self.lock().acked.clone()
    }

    /// How many terms had a leader.
    pub fn terms_led(&self) -> usize {
        self.lock().leader_of_term.len()
    }

    /// A fingerprint of the run's outcome: each term's leader and each acknowledged write (its
    /// log id and a CRC of its payload). Two runs of one seed that behaved alike share it.
    pub fn fingerprint(&self) -> u64 {
        let state = self.lock();
        let leaders = state
            .leader_of_term
            .iter()
            .fold(0, |h, (term, node)| mix(mix(h, *term), *node));
        state.acked.values().fold(leaders, |h, (log_id, payload)| {
            let crc = payload.as_ref().map_or(0, |p| crc32c::crc32c(p));
            mix(
                mix(mix(h, log_id.leader_id.term), log_id.index),
                u64::from(crc),
            )
        })
    }
}

/// A state machine wrapped so that the [`Observer`] sees every entry it applies. Snapshots pass
/// through untouched (the simulations run without them).
pub struct Observed<S> {
    inner: S,
    node: NodeId,
    life: u64,
    observer: Observer,
}

impl<S> Observed<S> {
    /// Wraps `inner`, the state machine of `node` in life number `life`.
    pub fn new(inner: S, (node, life): (NodeId, u64), observer: Observer) -> Observed<S> {
        Observed {
            inner,
            node,
            life,
            observer,
        }
    }
}

impl<C, S> RaftStateMachine<C> for Observed<S>
where
    C: CairnRaftConfig,
    S: RaftStateMachine<C>,
{
    type SnapshotBuilder = S::SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, PeerNode>), StorageError<NodeId>>
    {
        self.inner.applied_state().await
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<C::R>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<C>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry<C>> = entries.into_iter().collect();
        for entry in &entries {
            self.observer
                .applied((self.node, self.life), (entry.log_id, payload_of(entry)));
        }
        self.inner.apply(entries).await
    }

    async fn get_snapshot_builder(&mut self) -> S::SnapshotBuilder {
        self.inner.get_snapshot_builder().await
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<C::SnapshotData>, StorageError<NodeId>> {
        self.inner.begin_receiving_snapshot().await
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, PeerNode>,
        snapshot: Box<C::SnapshotData>,
    ) -> Result<(), StorageError<NodeId>> {
        self.observer.violation(format!(
            "node {} installed a snapshot; the simulation keeps every log entry",
            self.node
        ));
        self.inner.install_snapshot(meta, snapshot).await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<C>>, StorageError<NodeId>> {
        self.inner.get_current_snapshot().await
    }
}

//! The healer of one Raft-replicated partition copy: when a read, the scrub or the leader's
//! replication meets a damaged batch, it finds every damaged span in the committed range of
//! this copy's log, stops the copy from standing for leader, hands the leadership over if this
//! copy leads, fetches the damaged entries from a healthy peer and rewrites them in place
//! (`cairn_log::Log::repair_entries`), then lets the copy stand again and clears its damage.
//!
//! Why this order: a leader must be able to ship every entry it holds, so a copy that cannot
//! stays out of elections (`runtime_config().elect(false)`, handover campaigns refused through
//! [`Standing`], and out of the liveness loop's steered elections) until it can. Stepping down
//! comes before healing because openraft gives a leader no way to get an entry back from its
//! followers; as a follower it may ask any of them.
//!
//! What it deliberately does not do: touch uncommitted entries (Raft itself replaces or keeps
//! those, and a peer's uncommitted entry at the same index may be another entry), truncate
//! anything (the log never goes backwards under Raft), or retry forever in a tight loop (it
//! backs off up to [`HEAL_RETRY_MAX`] and heals as soon as a peer answers with good copies).
//!
//! The invariant: the copy stands for leader again only after a scan of its committed range
//! finds no damage.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use cairn_log::{DamagedEntries, EntryIndex, LogReader};
use cairn_raft::{
    GroupId, HandoverOutcome, NodeId, PartitionRaft, PeerTransport, RaftLog, Standing,
};
use openraft::{Raft, ServerState};
use tokio::sync::Mutex as AsyncMutex;

use super::heal_span::{SpanError, SpanRepair};
use super::health::{Damage, DamageRecord};
use super::replicated::ProposalState;

/// The first wait before a heal that failed (no peer answered with good copies) is tried
/// again; it doubles up to [`HEAL_RETRY_MAX`].
pub(crate) const HEAL_RETRY_MIN: Duration = Duration::from_millis(200);

/// The longest wait between heal attempts.
pub(crate) const HEAL_RETRY_MAX: Duration = Duration::from_secs(10);

/// How long a damaged leader tries to hand its leadership over before it tries again.
const HANDOVER_WAIT: Duration = Duration::from_secs(5);

/// How long a damaged leader waits for a proposal already on its way into the group.
const PROPOSAL_LOCK_WAIT: Duration = Duration::from_secs(5);

/// What one heal attempt came to.
#[derive(Debug)]
enum Attempt {
    /// No damage in the committed range (healed now, or never there).
    Clean,
    /// Not healed yet; try again later, for the reason given.
    Retry(String),
    /// The group or the log stopped: nothing more to do on this copy.
    Stopped(String),
}

/// One replica's healer and everything it works with.
pub(super) struct Healer {
    pub(super) topic: Arc<str>,
    pub(super) index: u32,
    pub(super) group: GroupId,
    pub(super) me: NodeId,
    pub(super) raft: Raft<PartitionRaft>,
    pub(super) raft_log: RaftLog,
    pub(super) transport: Arc<dyn PeerTransport>,
    pub(super) standing: Standing,
    pub(super) held: crate::cluster::liveness::HeldGroups,
    pub(super) damage: Arc<DamageRecord>,
    pub(super) proposals: Arc<AsyncMutex<ProposalState>>,
    /// Spans healed on this node, for `cairn_cluster_heals_total`.
    pub(super) heals: Arc<AtomicU64>,
}

impl Healer {
    /// Runs the healer until the task is aborted (the replica closes): each damage report
    /// starts a heal, retried with backoff until the committed range is clean or the group
    /// stops.
    pub(super) fn spawn(self) -> tokio::task::JoinHandle<()> {
        // Subscribed before the task runs, so a report made meanwhile is not missed.
        let mut reports = self.raft_log.subscribe_damage();
        tokio::spawn(async move {
            while reports.changed().await.is_ok() {
                self.heal().await;
                // A leader's replication reports the same damage every few milliseconds until
                // it has handed over; one scan per report would read the log in a loop.
                tokio::time::sleep(HEAL_RETRY_MIN).await;
                reports.mark_unchanged();
            }
        })
    }

    /// Heals until an attempt finds the committed range clean, or the group stops.
    async fn heal(&self) {
        let mut wait = HEAL_RETRY_MIN;
        loop {
            match self.attempt().await {
                Attempt::Clean => return,
                Attempt::Stopped(reason) => {
                    tracing::error!(topic = %self.topic, partition = self.index, %reason, "not healing: this copy stopped");
                    return;
                }
                Attempt::Retry(reason) => {
                    tracing::warn!(topic = %self.topic, partition = self.index, %reason, retry_in_ms = wait.as_millis() as u64, "damaged copy not healed yet");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(HEAL_RETRY_MAX);
                }
            }
        }
    }

    /// One attempt: find the damage, withdraw, step down, heal each span, stand again.
    async fn attempt(&self) -> Attempt {
        if let Err(fatal) = &self.raft.metrics().borrow().running_state {
            return Attempt::Stopped(fatal.to_string());
        }
        let leading = self.raft.metrics().borrow().state == ServerState::Leader;
        let spans = match self.committed_damage().await {
            Ok(spans) => spans,
            Err(reason) => return Attempt::Retry(reason),
        };
        // A leader also steps down for damage among its uncommitted entries, which it can
        // never ship; Raft replaces or commits them under the next leader.
        if spans.is_empty() && !(leading && self.tail_damaged()) {
            self.stand_again(&[]);
            return Attempt::Clean;
        }
        self.withdraw(spans.first());
        if leading && let Err(reason) = self.step_down().await {
            return Attempt::Retry(reason);
        }
        let repair = SpanRepair {
            topic: &self.topic,
            index: self.index,
            group: self.group,
            transport: self.transport.as_ref(),
            raft_log: &self.raft_log,
            heals: &self.heals,
        };
        let peers = self.peers();
        for span in &spans {
            match repair.heal(&peers, span).await {
                Ok(_) => {}
                Err(SpanError::Stopped(reason)) => return Attempt::Stopped(reason),
                Err(SpanError::Retry(reason)) => return Attempt::Retry(reason),
            }
        }
        match self.committed_damage().await {
            Ok(left) if left.is_empty() => {
                self.stand_again(&spans);
                Attempt::Clean
            }
            Ok(left) => Attempt::Retry(format!("{} damaged spans left after healing", left.len())),
            Err(reason) => Attempt::Retry(reason),
        }
    }

    /// The damaged spans among the entries this copy has applied (so knows committed). A full
    /// read of the log, off the async runtime.
    async fn committed_damage(&self) -> Result<Vec<DamagedEntries>, String> {
        let applied = self.raft.metrics().borrow().last_applied.map(|l| l.index);
        let Some(applied) = applied else {
            return Ok(Vec::new());
        };
        let reader: LogReader = self.raft_log.reader().clone();
        tokio::task::spawn_blocking(move || {
            reader.damaged_entries(EntryIndex(applied.saturating_add(1)))
        })
        .await
        .map_err(|e| format!("damage scan failed: {e}"))
    }

    /// Whether an entry past the applied ones reads damaged (a walk of the uncommitted tail,
    /// which is short).
    fn tail_damaged(&self) -> bool {
        let applied = self.raft.metrics().borrow().last_applied.map(|l| l.index);
        let from = applied.map_or(0, |a| a.saturating_add(1));
        self.raft_log
            .reader()
            .entry_headers(EntryIndex(from), usize::MAX)
            .is_err()
    }

    /// Stops this copy from standing for leader, and records `first` as its damage.
    fn withdraw(&self, first: Option<&DamagedEntries>) {
        if self.standing.may_stand() {
            tracing::error!(topic = %self.topic, partition = self.index, "damaged committed entries: this copy stops standing for leader until it has healed them from a peer");
        }
        self.standing.set(false);
        self.raft.runtime_config().elect(false);
        self.held
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.group);
        if let Some(span) = first {
            self.damage.note_found(Damage {
                location: format!("{}@{}", span.path.display(), span.position.0),
                offset: span.base_offset.0,
                reason: span.reason.clone(),
            });
        }
    }

    /// Lets this copy stand again, after `healed` (possibly none) were rewritten.
    fn stand_again(&self, healed: &[DamagedEntries]) {
        let was_withdrawn = !self.standing.may_stand();
        self.damage.clear();
        self.standing.set(true);
        self.raft.runtime_config().elect(true);
        self.held
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(self.group, self.raft.clone());
        if was_withdrawn || !healed.is_empty() {
            tracing::info!(topic = %self.topic, partition = self.index, healed_spans = healed.len(), "copy healed: no damaged committed entries left; standing for leader again");
        }
    }

    /// Hands this copy's leadership to a follower (it can no longer ship every entry), having
    /// stopped its proposals first: [`Standing`] refuses new ones, and the proposal lock waits
    /// out one already on its way.
    async fn step_down(&self) -> Result<(), String> {
        let mut state = tokio::time::timeout(PROPOSAL_LOCK_WAIT, self.proposals.lock())
            .await
            .map_err(|_| "a proposal held the lock too long".to_string())?;
        state.term = None;
        let deadline = tokio::time::Instant::now() + HANDOVER_WAIT;
        let outcome =
            cairn_raft::hand_over(&self.raft, self.group, self.transport.as_ref(), deadline).await;
        drop(state);
        match outcome {
            HandoverOutcome::Moved { to } => {
                tracing::warn!(topic = %self.topic, partition = self.index, to, "damaged leader handed its leadership over");
                Ok(())
            }
            HandoverOutcome::NotLeading => Ok(()),
            other => Err(format!("handover did not complete: {other:?}")),
        }
    }

    /// The group's other voters, the known leader first.
    fn peers(&self) -> Vec<NodeId> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let mut peers: Vec<NodeId> = m
            .membership_config
            .membership()
            .voter_ids()
            .filter(|id| *id != self.me)
            .collect();
        peers.sort_by_key(|id| Some(*id) != m.current_leader);
        peers
    }
}

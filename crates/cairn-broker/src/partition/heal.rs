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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cairn_log::{DamagedEntries, EntryIndex, LogError, LogReader};
use cairn_raft::wire::FetchRequest;
use cairn_raft::{
    GroupId, HandoverOutcome, NodeId, PartitionRaft, PeerTransport, RaftLog, RaftStorageError,
    Standing,
};
use openraft::{Raft, ServerState};
use tokio::sync::Mutex as AsyncMutex;

use super::health::{Damage, DamageRecord};
use super::replicated::ProposalState;

/// The first wait before a heal that failed (no peer answered with good copies) is tried
/// again; it doubles up to [`HEAL_RETRY_MAX`].
pub(crate) const HEAL_RETRY_MIN: Duration = Duration::from_millis(200);

/// The longest wait between heal attempts.
pub(crate) const HEAL_RETRY_MAX: Duration = Duration::from_secs(10);

/// How long one fetch from a peer may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

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
        tokio::spawn(async move {
            let mut reports = self.raft_log.subscribe_damage();
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
        if spans.is_empty() && !leading {
            self.stand_again(&[]);
            return Attempt::Clean;
        }
        self.withdraw(spans.first());
        if leading && let Err(reason) = self.step_down().await {
            return Attempt::Retry(reason);
        }
        for span in &spans {
            match self.heal_span(span).await {
                Ok(()) => {}
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

    /// Fetches good copies of `span`'s entries from a peer and rewrites them in place. Peers
    /// are tried in turn, the known leader first.
    async fn heal_span(&self, span: &DamagedEntries) -> Result<(), SpanError> {
        let mut last_reason = "no peer to fetch from".to_string();
        for peer in self.peers() {
            let batches = match self.fetch_span(peer, span).await {
                Ok(batches) => batches,
                Err(reason) => {
                    last_reason = format!("node {peer}: {reason}");
                    continue;
                }
            };
            match self.raft_log.repair(span.clone(), batches).await {
                Ok(()) => {
                    self.heals.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        topic = %self.topic, partition = self.index, from_node = peer,
                        segment = %span.path.display(), position = span.position.0,
                        first_entry = span.first_entry.0, entries = span.entry_count,
                        base_offset = span.base_offset.0,
                        next_offset = span.next_offset.map(|o| o.0),
                        "healed damaged committed entries in place with copies from a peer"
                    );
                    return Ok(());
                }
                Err(RaftStorageError::Log(LogError::RepairRefused { reason, .. })) => {
                    last_reason = format!("node {peer}'s copies refused: {reason}");
                }
                Err(other) => return Err(SpanError::Stopped(other.to_string())),
            }
        }
        Err(SpanError::Retry(last_reason))
    }

    /// Every entry of `span`, from `peer`, in as many fetches as its size needs.
    async fn fetch_span(&self, peer: NodeId, span: &DamagedEntries) -> Result<Vec<Bytes>, String> {
        let mut batches: Vec<Bytes> = Vec::new();
        let mut fetched_bytes = 0u64;
        while (batches.len() as u64) < span.entry_count {
            let wanted = span.entry_count - batches.len() as u64;
            let bytes_left = span.len_bytes().saturating_sub(fetched_bytes).max(1);
            let req = FetchRequest {
                from: span.first_entry.0 + batches.len() as u64,
                max_entries: u32::try_from(wanted).unwrap_or(u32::MAX),
                max_bytes: u32::try_from(bytes_left).unwrap_or(u32::MAX),
            };
            let timeout_ms = FETCH_TIMEOUT.as_millis() as u64;
            let got = cairn_raft::fetch_entries(
                self.transport.as_ref(),
                peer,
                self.group,
                req,
                timeout_ms,
            )
            .await
            .map_err(|e| e.to_string())?;
            if got.is_empty() {
                return Err(format!("has not applied entry {} yet", req.from));
            }
            fetched_bytes += got.iter().map(|b| b.len() as u64).sum::<u64>();
            batches.extend(got);
        }
        Ok(batches)
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

/// Why one span was not healed.
enum SpanError {
    /// No peer gave good copies yet.
    Retry(String),
    /// The log stopped (the rewrite's write or fsync failed).
    Stopped(String),
}

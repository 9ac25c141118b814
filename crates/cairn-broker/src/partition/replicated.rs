//! [`ReplicatedReplica`]: this node's copy of a partition replicated by its own Raft group
//! (openraft over the partition's segment log, `cairn-raft`). Only the leader takes appends and
//! serves reads; a follower answers [`BrokerError::NotLeader`] naming the leader it knows.
//!
//! How an append goes: an idempotent producer's batch waits its turn behind its predecessor
//! (the [`Sequencer`], as on a single node), then, under the leader's proposal lock, is checked
//! against the producer state, given the offsets it will get, and handed to openraft
//! (`client_write_ff`), which stamps the term and appends it to the log, replicates it, and
//! applies it once a majority has it; applying moves the high watermark. `acks=all` answers
//! then; `acks=leader` once this node's own log has it under the flush policy.
//!
//! Offsets are known before the write: the leader's log grows only by its own proposals, in
//! proposal order, and each takes as many offsets as it spans (a leader's no-op takes none). So
//! the proposal lock keeps a *predicted* log end, and the producer state records each accepted
//! batch at its predicted offsets at once, which is what lets a retry that arrives while the
//! original is still in flight be recognised as a duplicate. A duplicate is answered with the
//! original's offsets only once those are committed. The prediction and producer state belong
//! to one term: when this node wins an election it waits until everything in its log is
//! applied (its no-op commits), then rebuilds both from the log, the producer state from what
//! every copy keeps of its committed log in the background (`producer_tracker.rs`) plus the
//! rest. Losing leadership throws them away; nothing acknowledged depends on them. Once this
//! node knows a newer term, its appends still waiting for their commit are answered outcome
//! unknown at once. That append path lives in `replicated/propose.rs`; the watch on the group's
//! metrics that tells it of a newer term, and tells the cluster of a won one, in
//! `replicated/metrics_watch.rs`.
//!
//! A copy that holds damaged committed entries proposes nothing and stands for no election
//! until its healer (`heal.rs`) has rewritten them from a peer; peers' calls reach the group
//! through `cairn_raft::PartitionGroup`, which serves their entry fetches from this log and
//! refuses handover campaigns meanwhile.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_codec::batch::Batch;
use cairn_codec::{LeaderEpoch, Offset};
use cairn_log::{Clock, LogConfig, LogError, LogReader, ReadResult};
use cairn_raft::{
    BatchData, CairnLogStorage, CommitBound, GroupId, GroupNetwork, GroupRegistry, NodeId,
    PartitionGroup, PartitionRaft, PartitionStateMachine, PeerNode, PeerTransport, RaftLog,
    Standing,
};
use openraft::error::ClientWriteError;
use openraft::{Config, Raft, RaftMetrics, ServerState};
use tokio::sync::Mutex as AsyncMutex;

use super::follower_lag::{follower_lag_entries, follower_lag_ms, is_in_sync};
use super::heal::Healer;
use super::heal_span::{SpanRepair, heal_before_start};

mod metrics_watch;
mod propose;
use super::health::DamageRecord;
use super::leader_end_history::LeaderEndHistory;
use super::leadership::{LeaderHint, Leadership};
use super::likely_leader::likely_leader;
use super::producer_tracker::{ProducerTracker, SharedTracker, spawn_producer_tracking};
use super::wait_for_high_watermark;
use crate::cluster::replication_status::{FollowerLag, ReplicationStatus};
use crate::error::BrokerError;
use crate::produce::AckLevel;
use crate::producer_filter::SequenceError;
use crate::producer_state::{ProducerBatch, ProducerStates, SequenceCheck};
use crate::sequencer::Sequencer;
pub(crate) use metrics_watch::LeaderReport;
use metrics_watch::spawn_metrics_watch;

/// Longest a new leader waits for its log to be applied before it takes appends; past it the
/// append is refused as retriable (the client retries, by then the leader is ready).
const LEADER_READY_WAIT: Duration = Duration::from_secs(5);

/// Longest a copy whose damaged entries keep its group from starting tries to heal them from a
/// peer before it gives up and reports the partition stopped (peers may be starting too).
const HEAL_BEFORE_START_BUDGET: Duration = Duration::from_secs(15);

/// What a group needs from the node to start: who it is, how to reach peers, where peers'
/// calls arrive, and the Raft timings.
#[derive(Clone)]
pub(crate) struct GroupContext {
    /// This node.
    pub(crate) me: NodeId,
    /// The shared node-to-node transport.
    pub(crate) transport: Arc<dyn PeerTransport>,
    /// Where this node's groups are registered for peers' calls.
    pub(crate) registry: Arc<GroupRegistry>,
    /// The openraft configuration every partition group uses.
    pub(crate) config: Arc<Config>,
    /// Where a group says that this node became its leader, for the controller's metadata.
    pub(crate) leader_reports: tokio::sync::mpsc::UnboundedSender<LeaderReport>,
    /// The partition groups held here, for the node-level liveness to steer their elections.
    pub(crate) held: crate::cluster::liveness::HeldGroups,
    /// How often each replica lets Raft purge what retention wants gone.
    pub(crate) retention_purge_interval: std::time::Duration,
    /// Which peers the node-level liveness probes cannot reach: a follower there is not in
    /// sync.
    pub(crate) reachability: crate::cluster::liveness::PeerReachability,
    /// Times a group on this node became leader (each term won counts once), for
    /// `cairn_cluster_elections_total`.
    pub(crate) elections: Arc<AtomicU64>,
    /// The cluster metadata, for the address a `NOT_LEADER` hint gives clients (a node's
    /// advertised address, which the Raft membership's peer address may not be).
    pub(crate) directory: Arc<crate::cluster::directory::MetadataDirectory>,
    /// Set once this node begins handing its leaderships over before it stops
    /// (`cluster::handover`): from then on its replicas propose nothing.
    pub(crate) leaving: Arc<AtomicBool>,
    /// Damaged spans this node's copies healed from a peer, for `cairn_cluster_heals_total`.
    pub(crate) heals: Arc<AtomicU64>,
    /// How long a copy remembers an idempotent producer after its last write.
    pub(crate) producer_expiration: crate::producer_state::ProducerExpiration,
}

/// The leader's proposal state, valid for one term.
#[derive(Debug, Default)]
pub(super) struct ProposalState {
    /// The term it was built for; `None` until built (or after leadership was lost).
    pub(super) term: Option<u64>,
    /// The offset the next proposal gets.
    next_offset: u64,
    /// Producer states including every accepted proposal, at its predicted offsets.
    producers: ProducerStates,
}

/// This node's copy of a Raft-replicated partition.
pub(crate) struct ReplicatedReplica {
    topic: Arc<str>,
    index: u32,
    group: GroupId,
    /// The replicas the group was started with: reported while this copy's group holds no
    /// membership yet (a new partition's copy that no election or leader has reached).
    assigned: Vec<i32>,
    raft: Raft<PartitionRaft>,
    raft_log: RaftLog,
    registry: Arc<GroupRegistry>,
    held: crate::cluster::liveness::HeldGroups,
    reachability: crate::cluster::liveness::PeerReachability,
    directory: Arc<crate::cluster::directory::MetadataDirectory>,
    sequencer: Sequencer,
    /// Shared with the healer, which takes it to stop proposals before a damaged leader hands
    /// its leadership over.
    proposals: Arc<AsyncMutex<ProposalState>>,
    /// Cleared while this copy holds damaged committed entries: it then proposes nothing and
    /// stands for no election (see `heal`).
    standing: Standing,
    /// The healer's task, aborted when the copy closes.
    healer: tokio::task::JoinHandle<()>,
    /// The producer states of the committed log, kept current in the background so that a
    /// new leadership reads only the log's last moments (`producer_tracker.rs`).
    producer_tracker: SharedTracker,
    /// How many producers `producer_tracker` remembers (`ProducerTracker::remembered`).
    producer_ids: Arc<AtomicUsize>,
    /// The task that keeps `producer_tracker` current, aborted when the copy closes.
    producer_tracking: tokio::task::JoinHandle<()>,
    /// The newest Raft term this copy knows: once it passes the term a proposal was made in,
    /// this node no longer leads that term and says so to the proposal's client at once.
    known_term: tokio::sync::watch::Receiver<u64>,
    /// When the leader's log grew past each end this term, for followers' lag in seconds.
    lag_history: Arc<Mutex<LeaderEndHistory>>,
    /// The broker's clock; its monotonic reading times follower lag, its wall clock the
    /// producers' writes (for their expiration).
    clock: Arc<dyn Clock>,
    /// How long an idempotent producer is remembered after its last write.
    producer_expiration: crate::producer_state::ProducerExpiration,
    /// The node is leaving: checked under the proposal lock (see [`GroupContext::leaving`]).
    leaving: Arc<AtomicBool>,
    /// The topic's `max.message.bytes`, checked before a batch is proposed: a replica's log
    /// stores every entry its group decided whatever its size, so the leader is where the
    /// limit holds. Kept current by [`ReplicatedReplica::set_max_message_bytes`].
    max_message_bytes: AtomicU32,
}

impl std::fmt::Debug for ReplicatedReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicatedReplica")
            .field("topic", &self.topic)
            .field("index", &self.index)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

fn node_i32(node: NodeId) -> i32 {
    i32::try_from(node).unwrap_or(i32::MAX)
}

impl ReplicatedReplica {
    /// Opens the partition's log in `dir` as a Raft replica, starts its group and registers it
    /// for peers' calls. On a group's first start (an empty log), the replica that is
    /// `preferred` (the first of the partition's replicas) initializes it and calls the first
    /// election at once; the others initialize it themselves only if no election reached them
    /// within the shortest election timeout (`first_election.rs`).
    ///
    /// # Errors
    /// The log's open errors; openraft's start errors as [`BrokerError::Internal`]-like
    /// storage errors.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn start(
        topic: Arc<str>,
        index: u32,
        dir: &Path,
        cfg: LogConfig,
        clock: Arc<dyn Clock>,
        group: GroupId,
        members: BTreeMap<NodeId, PeerNode>,
        preferred: bool,
        ctx: &GroupContext,
        damage: Arc<DamageRecord>,
    ) -> Result<ReplicatedReplica, BrokerError> {
        let open_dir = dir.to_path_buf();
        let open_clock = Arc::clone(&clock);
        let max_message_bytes = AtomicU32::new(cfg.max_message_bytes);
        let raft_log =
            tokio::task::spawn_blocking(move || RaftLog::open(&open_dir, cfg, open_clock))
                .await
                .map_err(|e| raft_failure(&topic, index, format!("opening the log: {e}")))?
                .map_err(|e| raft_failure(&topic, index, e.to_string()))?;
        let raft = match start_raft(ctx, group, &raft_log).await {
            Ok(raft) => raft,
            Err(first) => {
                // openraft reads the log at start-up and will not start over a damaged entry:
                // heal the damaged entries from a peer first, then try once more.
                let peers: Vec<NodeId> =
                    members.keys().copied().filter(|id| *id != ctx.me).collect();
                let repair = SpanRepair {
                    topic: &topic,
                    index,
                    group,
                    transport: ctx.transport.as_ref(),
                    raft_log: &raft_log,
                    heals: &ctx.heals,
                };
                if !heal_before_start(&repair, &peers, HEAL_BEFORE_START_BUDGET).await {
                    return Err(raft_failure(&topic, index, first.to_string()));
                }
                start_raft(ctx, group, &raft_log)
                    .await
                    .map_err(|e| raft_failure(&topic, index, e.to_string()))?
            }
        };
        let standing = Standing::default();
        ctx.registry.insert(
            group,
            Arc::new(PartitionGroup::new(
                raft.clone(),
                raft_log.clone(),
                standing.clone(),
            )),
        );
        ctx.held
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(group, raft.clone());
        let lag_history = Arc::new(Mutex::new(LeaderEndHistory::default()));
        let (known_term_sender, known_term) = tokio::sync::watch::channel(0);
        spawn_metrics_watch(
            &raft,
            group,
            ctx,
            Arc::clone(&lag_history),
            Arc::clone(&clock),
            known_term_sender,
        );
        super::retention_purge::spawn_retention_purges(
            raft.clone(),
            raft_log.clone(),
            ctx.retention_purge_interval,
            &*topic == crate::topic_name::CONSUMER_OFFSETS_TOPIC,
        );
        let assigned: Vec<i32> = members.keys().copied().map(node_i32).collect();
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| raft_failure(&topic, index, e.to_string()))?;
        if !initialized {
            let election_timeout = Duration::from_millis(ctx.config.election_timeout_min);
            if preferred {
                super::first_election::initialize_and_elect(
                    raft.clone(),
                    members,
                    Arc::clone(&topic),
                    index,
                    election_timeout,
                )
                .await;
            } else {
                super::first_election::initialize_unless_reached(
                    raft.clone(),
                    members,
                    Arc::clone(&topic),
                    index,
                    election_timeout,
                );
            }
        }
        let proposals = Arc::new(AsyncMutex::new(ProposalState::default()));
        let healer = Healer {
            topic: Arc::clone(&topic),
            index,
            group,
            me: ctx.me,
            raft: raft.clone(),
            raft_log: raft_log.clone(),
            transport: Arc::clone(&ctx.transport),
            standing: standing.clone(),
            held: Arc::clone(&ctx.held),
            damage,
            proposals: Arc::clone(&proposals),
            heals: Arc::clone(&ctx.heals),
        }
        .spawn();
        let tracker = ProducerTracker::new(ctx.producer_expiration);
        let producer_ids = tracker.remembered();
        let producer_tracker = SharedTracker::new(Mutex::new(tracker));
        let producer_tracking = spawn_producer_tracking(
            Arc::clone(&producer_tracker),
            Arc::clone(&clock),
            raft_log.reader().clone(),
            Arc::clone(&topic),
            index,
        );
        Ok(ReplicatedReplica {
            topic,
            index,
            group,
            assigned,
            raft,
            raft_log,
            registry: Arc::clone(&ctx.registry),
            held: Arc::clone(&ctx.held),
            reachability: ctx.reachability.clone(),
            directory: Arc::clone(&ctx.directory),
            sequencer: Sequencer::default(),
            proposals,
            standing,
            healer,
            producer_tracker,
            producer_ids,
            producer_tracking,
            known_term,
            lag_history,
            clock,
            producer_expiration: ctx.producer_expiration,
            leaving: Arc::clone(&ctx.leaving),
            max_message_bytes,
        })
    }

    /// The topic's `max.message.bytes` changed: batches proposed from now on are checked
    /// against `bytes`.
    pub(super) fn set_max_message_bytes(&self, bytes: u32) {
        self.max_message_bytes.store(bytes, Ordering::Relaxed);
    }

    /// The limit a batch must keep to before it is proposed.
    pub(super) fn max_message_bytes(&self) -> usize {
        self.max_message_bytes.load(Ordering::Relaxed) as usize
    }

    /// Idempotent producers this copy's background tracker remembers, as of its last pass
    /// (see `producer_tracker.rs`).
    pub(super) fn producer_ids(&self) -> usize {
        self.producer_ids.load(Ordering::Relaxed)
    }

    /// The log's reader. Reads by offset see only committed (applied) data.
    pub(super) fn reader(&self) -> &LogReader {
        self.raft_log.reader()
    }

    /// The log's writer.
    pub(super) fn writer(&self) -> &cairn_log::LogWriter {
        self.raft_log.writer()
    }

    fn metrics(&self) -> RaftMetrics<NodeId, PeerNode> {
        self.raft.metrics().borrow().clone()
    }

    /// The refusal a non-leader gives, naming the leader when known, or else the candidate
    /// this node voted for in the current term (see [`likely_leader`]).
    fn not_leader(&self, metrics: &RaftMetrics<NodeId, PeerNode>) -> BrokerError {
        let leader = likely_leader(metrics).map(|id| LeaderHint {
            node_id: node_i32(id),
            address: self
                .directory
                .current()
                .node(id)
                .map(|n| n.client_address().to_string())
                .or_else(|| {
                    let membership = metrics.membership_config.membership();
                    membership.get_node(&id).map(|n| n.addr.clone())
                }),
        });
        BrokerError::NotLeader {
            topic: self.topic.to_string(),
            partition: self.index,
            leader,
        }
    }

    /// Why this copy's openraft core quit, if it did: a storage failure (a full disk, a failed
    /// write) is fatal to it, and only a restart of the node brings the copy back, so health
    /// and metrics report the partition stopped here while the other copies keep its majority.
    pub(super) fn stopped(&self) -> Option<String> {
        match &self.raft.metrics().borrow().running_state {
            Ok(()) => None,
            Err(fatal) => Some(format!("its Raft group stopped: {fatal}")),
        }
    }

    /// Refuses unless this node leads the group now.
    pub(super) fn check_leader(&self) -> Result<u64, BrokerError> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        if metrics.state == ServerState::Leader {
            Ok(metrics.current_term)
        } else {
            Err(self.not_leader(&metrics))
        }
    }

    /// Reads committed batches; only the leader serves reads.
    ///
    /// # Errors
    /// [`BrokerError::NotLeader`]; the log's read errors.
    pub(super) fn read(&self, from: i64, max_bytes: i64) -> Result<ReadResult, BrokerError> {
        self.check_leader()?;
        Ok(self.reader().read_up_to_log_end(from, max_bytes)?)
    }

    /// The leader, term and members as this copy's Raft group knows them. In-sync replicas are
    /// the leader's view (followers within
    /// [`IN_SYNC_MAX_ENTRIES_BEHIND`](super::follower_lag::IN_SYNC_MAX_ENTRIES_BEHIND) of its log,
    /// and reachable); a follower, which cannot see them, gives the set its leader last
    /// reported to the cluster metadata (as any Kafka broker gives the controller's ISR), and
    /// every member only while the metadata has none.
    pub(super) fn leadership(&self) -> Leadership {
        let m = self.metrics();
        let mut replicas: Vec<i32> = m
            .membership_config
            .membership()
            .voter_ids()
            .map(node_i32)
            .collect();
        if replicas.is_empty() {
            replicas.clone_from(&self.assigned);
        }
        let leader = m.current_leader.map(node_i32);
        if let Some(l) = leader
            && let Some(pos) = replicas.iter().position(|r| *r == l)
        {
            replicas.swap(0, pos);
        }
        let in_sync_replicas = match &m.replication {
            Some(_) => {
                let mut isr: Vec<i32> = replicas
                    .iter()
                    .copied()
                    .filter(|r| {
                        u64::try_from(*r)
                            .ok()
                            .is_some_and(|id| is_in_sync(&m, id, &self.reachability))
                    })
                    .collect();
                isr.sort_by_key(|r| (Some(*r) != leader, *r));
                isr
            }
            None => {
                use super::LeaderDirectory as _;
                self.directory
                    .leadership(self.group)
                    .map(|recorded| recorded.in_sync_replicas)
                    .filter(|isr| !isr.is_empty())
                    .unwrap_or_else(|| replicas.clone())
            }
        };
        Leadership {
            leader,
            leader_epoch: LeaderEpoch(i32::try_from(m.current_term).unwrap_or(i32::MAX)),
            replicas,
            in_sync_replicas,
        }
    }

    /// Adds this copy to `status`: whether it leads, whether any leader is known, and, where
    /// it leads, whether a replica is out of sync and how far behind each follower is, in
    /// entries and in time. Reads the group's metrics once, and feeds them to the lag history
    /// first, so the figures are as of now.
    pub(super) fn add_replication(&self, status: &mut ReplicationStatus) {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let mut history = self.lag_history.lock().unwrap_or_else(|e| e.into_inner());
        // Read under the lock, as the metrics watcher does, so the history's times ascend.
        let now_ms = self.clock.monotonic_ms();
        super::follower_lag::observe(&mut history, &m, now_ms);
        if m.current_leader.is_none() {
            status.offline_count += 1;
        }
        if m.state != ServerState::Leader {
            return;
        }
        status.leader_count += 1;
        let mut out_of_sync = false;
        for node in m.membership_config.membership().voter_ids() {
            if !is_in_sync(&m, node, &self.reachability) {
                out_of_sync = true;
            }
            if node == m.id {
                continue;
            }
            if let (Some(lag_entries), Some(lag_ms)) = (
                follower_lag_entries(&m, node),
                follower_lag_ms(&history, &m, node, now_ms),
            ) {
                status.follower_lags.push(FollowerLag {
                    topic: Arc::clone(&self.topic),
                    partition: self.index,
                    follower: node_i32(node),
                    lag_entries,
                    lag_ms,
                });
            }
        }
        if out_of_sync {
            status.under_replicated_count += 1;
        }
    }

    /// Once the node is leaving ([`GroupContext::leaving`] set), waits until no proposal is on
    /// its way into the group (each is submitted under the proposal lock, which checks the
    /// flag), up to `deadline`; answers the group to hand over when this node leads it.
    pub(super) async fn stop_proposing(
        &self,
        deadline: tokio::time::Instant,
    ) -> Option<(GroupId, Raft<PartitionRaft>)> {
        debug_assert!(
            self.leaving.load(Ordering::SeqCst),
            "stop proposing before leaving"
        );
        // A new leader may hold the lock while its log applies (up to LEADER_READY_WAIT); past
        // the deadline its group is left to its followers' elections.
        drop(
            tokio::time::timeout_at(deadline, self.proposals.lock())
                .await
                .ok()?,
        );
        self.check_leader()
            .ok()
            .map(|_| (self.group, self.raft.clone()))
    }

    /// The group's id.
    pub(super) fn group(&self) -> GroupId {
        self.group
    }

    /// Where this copy stands for balancing towards `preferred`
    /// (see [`super::preferred_leader::preferred_leader_state`]).
    pub(super) fn preferred_leader_state(
        &self,
        preferred: NodeId,
    ) -> super::preferred_leader::PreferredLeaderState {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        super::preferred_leader::preferred_leader_state(&m, preferred, &self.reachability)
    }

    /// Hands the leadership to `successor` (`cairn_raft::hand_over_to`), up to `deadline`,
    /// and answers the node that leads after the move.
    ///
    /// The proposal lock is the gate, as for a leaving node's handover: it is held for the
    /// whole move, so once it is taken no proposal is on its way into the log and none starts
    /// until the move is over, and the successor is asked to stand against a log that no
    /// longer grows. Appends wait on the lock rather than being refused: after a move they find
    /// this node a follower and answer `NotLeader` naming the new leader; after a failed move
    /// they go on here as if nothing happened, with the proposal state still valid (this node
    /// still leads in the same term and its log only ever grows by its own proposals). A move
    /// whose election changed the term leaves the state for `ready` to rebuild, as any new term
    /// does.
    ///
    /// # Errors
    /// `NotMovedReason::NotLeading`, `NodeLeaving`, `HandoverTimedOut` or `GroupStopped`
    /// (`cluster::leader_balance`).
    pub(super) async fn move_leadership_to(
        &self,
        successor: NodeId,
        transport: &dyn PeerTransport,
        deadline: tokio::time::Instant,
    ) -> Result<NodeId, crate::cluster::leader_balance::NotMovedReason> {
        use crate::cluster::leader_balance::NotMovedReason;
        // A new leader may hold the lock while its log applies (up to LEADER_READY_WAIT).
        let Ok(gate) = tokio::time::timeout_at(deadline, self.proposals.lock()).await else {
            return Err(NotMovedReason::HandoverTimedOut);
        };
        // A leaving node's own handover owns its leaderships from the moment it began.
        if self.leaving.load(Ordering::SeqCst) {
            return Err(NotMovedReason::NodeLeaving);
        }
        if self.check_leader().is_err() {
            return Err(NotMovedReason::NotLeading);
        }
        let outcome =
            cairn_raft::hand_over_to(&self.raft, self.group, successor, transport, deadline).await;
        drop(gate);
        match outcome {
            cairn_raft::HandoverOutcome::Moved { to } => Ok(to),
            cairn_raft::HandoverOutcome::NotLeading => Err(NotMovedReason::NotLeading),
            cairn_raft::HandoverOutcome::TimedOut => Err(NotMovedReason::HandoverTimedOut),
            cairn_raft::HandoverOutcome::Stopped => Err(NotMovedReason::GroupStopped),
        }
    }

    /// Says that a read here met a damaged batch: the healer looks for damage in the committed
    /// range and heals it from a peer.
    pub(super) fn note_damage(&self) {
        self.raft_log.note_damage();
    }

    /// Stops the group (it answers peers no more) and closes the log cleanly.
    ///
    /// # Errors
    /// The close's I/O error.
    pub(super) async fn close(&self) -> Result<(), BrokerError> {
        self.healer.abort();
        self.producer_tracking.abort();
        self.registry.remove(self.group);
        self.held
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.group);
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "raft group did not stop cleanly");
        }
        self.raft_log.writer().close().await?;
        Ok(())
    }

    /// Like [`ReplicatedReplica::close`], for blocking threads: the group's tasks stop when
    /// the runtime does; the log closes here.
    ///
    /// # Errors
    /// The close's I/O error.
    pub(super) fn close_blocking(&self) -> Result<(), BrokerError> {
        self.healer.abort();
        self.producer_tracking.abort();
        self.registry.remove(self.group);
        self.held
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.group);
        self.raft_log.writer().close_blocking()?;
        Ok(())
    }
}

/// Starts the group's openraft instance over `raft_log`.
async fn start_raft(
    ctx: &GroupContext,
    group: GroupId,
    raft_log: &RaftLog,
) -> Result<Raft<PartitionRaft>, openraft::error::Fatal<NodeId>> {
    Raft::new(
        ctx.me,
        Arc::clone(&ctx.config),
        // The leader ships entries while its fsync runs; the network's bound and the state
        // machine's wait for durability keep every commit's effects behind a durable majority
        // (see `CairnLogStorage::shipping_before_flush`).
        GroupNetwork::new(Arc::clone(&ctx.transport), group)
            .bounding_commit(CommitBound::new(raft_log.clone())),
        CairnLogStorage::<PartitionRaft>::new(raft_log.clone())
            .on_node(ctx.me)
            .shipping_before_flush(),
        PartitionStateMachine::new(raft_log.clone()),
    )
    .await
}

/// A failure of the group's machinery (openraft stopped, a task panicked): retriable for the
/// client, logged for the operator.
fn raft_failure(topic: &str, index: u32, reason: String) -> BrokerError {
    tracing::error!(topic, partition = index, %reason, "replicated partition failure");
    BrokerError::PartitionStopped {
        topic: topic.to_string(),
        partition: index,
        reason,
    }
}

//! Preferred-leader balancing (Kafka's `auto.leader.rebalance.enable` and
//! `kafka-leader-election --election-type preferred`). A partition's preferred leader is the
//! first replica of its entry in the cluster metadata, and placement spreads those evenly over
//! the nodes. A node that stops hands its leaderships to others (`cluster::handover`) or loses
//! them to elections, and when it returns it leads nothing: the survivors keep them. Balancing
//! moves each back, with the same handover a clean stop uses, to the one named replica
//! (`cairn_raft::hand_over_to`).
//!
//! Who drives it: every node, for the groups it leads itself, on its own timer
//! ([`LeaderBalanceSettings`]: every 10 s by default). It needs no controller command and no
//! node-to-node call beyond the handover's own, and each leader judges from first-hand facts
//! (its followers' matched logs, its own probes of their nodes). A leadership moves when its
//! preferred replica is a voter of the group, on a node this node's probes reach, and in sync
//! (`partition::preferred_leader`). An automatic pass further waits until the preferred node has
//! answered probes for the settle time (so a node that keeps dropping out does not bounce
//! leaders), backs off from a partition whose last move failed (each failed move holds that
//! partition's appends for up to two election timeouts), and moves at most
//! `moves_per_pass_max` leaderships, [`MOVES_IN_FLIGHT`] at a time, so a node preferred by a
//! thousand partitions takes them back over a few passes, not in one storm of elections.
//! A pass asked for ([`Broker::balance_leaders`]) skips the settle time and the back-off: the
//! operator asked for it now.
//!
//! Rejected: Kafka's `leader.imbalance.per.broker.percentage` threshold. It spares Kafka's
//! controller many small moves; a move here costs one vote round trip for one partition,
//! started by its own leader, so there is nothing to batch up for.
//!
//! The invariant, for every move: the partition proposes nothing while it runs (its proposal
//! lock is held throughout, see `ReplicatedReplica::move_leadership_to`), so nothing
//! acknowledged depends on it, exactly as for a clean stop; a move that fails leaves the old
//! leader leading (and its waiting appends proceeding) unless the election it started is
//! still being decided, which Raft settles as any election.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use cairn_controller::{ClusterMetadata, GroupId as MetaGroupId};
use cairn_raft::{GroupId, NodeId};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::handover::HANDOVER_TIMEOUT_ELECTIONS;
use super::runtime::ClusterRuntime;
use crate::LeaderBalanceSettings;
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::partition::{Partition, PreferredLeaderState};

/// Moves one pass runs at once. Each waits on a vote round trip, not on CPU, but each also
/// holds its partition's appends; a handful at a time keeps a pass short without a burst of
/// elections on every node the moved leaderships go to.
pub const MOVES_IN_FLIGHT: usize = 8;

/// Longest back-off of a partition whose moves keep failing, in intervals (doubling from one).
const BACKOFF_INTERVALS_MAX: u32 = 64;

/// Why a leadership led here by another replica than its preferred one did not move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotMovedReason {
    /// The preferred replica is not a voter of the partition's Raft group (a change of
    /// replicas is under way).
    PreferredNotAVoter,
    /// This node's liveness probes do not reach the preferred replica's node.
    PreferredUnreachable,
    /// The preferred replica's node has not answered probes for the settle time yet
    /// (automatic passes only).
    PreferredSettling {
        /// How long it has answered, in milliseconds.
        reachable_ms: u64,
    },
    /// The preferred replica is not in sync with this leader.
    PreferredNotInSync {
        /// Raft entries it lacks, when known.
        lag_entries: Option<u64>,
    },
    /// This node no longer leads the partition (another election got there first).
    NotLeading,
    /// This node is stopping; its own handover moves its leaderships.
    NodeLeaving,
    /// The preferred replica did not take over before the move's deadline.
    HandoverTimedOut,
    /// The partition's Raft group stopped on this node.
    GroupStopped,
    /// Past this pass's bound on moves; a later pass moves it.
    Deferred,
    /// A recent move of this partition failed; an automatic pass tries again after a
    /// back-off.
    BackingOff,
}

impl std::fmt::Display for NotMovedReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotMovedReason::PreferredNotAVoter => write!(
                f,
                "the preferred replica is not a voter of the partition's Raft group (its replicas are changing)"
            ),
            NotMovedReason::PreferredUnreachable => {
                write!(f, "the preferred replica's node does not answer probes")
            }
            NotMovedReason::PreferredSettling { reachable_ms } => write!(
                f,
                "the preferred replica's node has answered probes for only {reachable_ms} ms"
            ),
            NotMovedReason::PreferredNotInSync {
                lag_entries: Some(lag),
            } => write!(f, "the preferred replica is {lag} entries behind"),
            NotMovedReason::PreferredNotInSync { lag_entries: None } => {
                write!(f, "the preferred replica is not in sync")
            }
            NotMovedReason::NotLeading => write!(f, "this node no longer leads the partition"),
            NotMovedReason::NodeLeaving => write!(f, "this node is stopping"),
            NotMovedReason::HandoverTimedOut => write!(
                f,
                "the preferred replica did not take over in time; the leader keeps leading"
            ),
            NotMovedReason::GroupStopped => write!(f, "the partition's Raft group stopped"),
            NotMovedReason::Deferred => write!(f, "past this pass's bound on moves"),
            NotMovedReason::BackingOff => write!(f, "backing off after a failed move"),
        }
    }
}

/// A leadership a pass moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderMove {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The node that led it (the one that ran the pass).
    pub from: i32,
    /// The node that leads it now (its preferred replica).
    pub to: i32,
}

/// A leadership a pass found off its preferred replica and did not move.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderNotMoved {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The node that leads it (the one that ran the pass).
    pub leader: i32,
    /// Its preferred replica.
    pub preferred: i32,
    /// Why it stayed.
    pub reason: NotMovedReason,
}

/// What one balancing pass on one node did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderBalanceReport {
    /// The node that ran the pass.
    pub node_id: i32,
    /// Leaderships moved to their preferred replicas.
    pub moved: Vec<LeaderMove>,
    /// Leaderships led here off their preferred replicas that stayed.
    pub not_moved: Vec<LeaderNotMoved>,
}

/// Balancing figures of this node for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaderBalanceStatus {
    /// Partitions this node leads whose preferred replica is another node. Summed over the
    /// nodes, the cluster's partitions led off their preferred replicas.
    pub imbalance_count: u64,
    /// Leaderships this node moved to their preferred replicas since it started.
    pub moves_total: u64,
    /// Moves this node started that failed (timed out, lost the leadership, group stopped).
    pub failed_moves_total: u64,
}

/// A partition whose last move failed: automatic passes leave it alone until `until`.
#[derive(Clone, Copy, Debug)]
struct Backoff {
    failures: u32,
    until: Instant,
}

/// This node's balancing state: counters for `/metrics` and the back-off of failed moves.
/// Passes take turns (the back-off map is their lock), so an asked-for pass and an automatic
/// one never move the same partition at once.
#[derive(Debug, Default)]
pub(crate) struct LeaderBalancer {
    moves_total: AtomicU64,
    failed_moves_total: AtomicU64,
    backoff: tokio::sync::Mutex<HashMap<GroupId, Backoff>>,
}

/// Which kind of pass runs: an automatic one waits for the preferred node to settle and backs
/// off from failed moves; one asked for does neither.
#[derive(Clone, Copy, Debug)]
enum PassKind {
    Automatic {
        settle: Duration,
        interval: Duration,
    },
    Asked,
}

/// A partition led here, off its preferred replica, that a pass is about to move.
struct Candidate {
    topic: String,
    partition: Arc<Partition>,
    group: GroupId,
    preferred: NodeId,
}

fn node_i32(node: NodeId) -> i32 {
    i32::try_from(node).unwrap_or(i32::MAX)
}

/// Runs automatic passes on `broker` every interval of its settings, until the broker goes
/// away. Does nothing when automatic balancing is off.
pub(crate) async fn run(broker: Weak<Broker>, settings: LeaderBalanceSettings) {
    let Some(interval) = settings.interval else {
        tracing::info!("automatic leader balancing is off");
        return;
    };
    let kind = PassKind::Automatic {
        settle: settings.settle,
        interval,
    };
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(broker) = broker.upgrade() else {
            return;
        };
        let Some(runtime) = broker.runtime().cloned() else {
            return;
        };
        let moves_max = usize::try_from(settings.moves_per_pass_max).unwrap_or(usize::MAX);
        let report = broker.balance_pass(&runtime, kind, None, moves_max).await;
        if !report.moved.is_empty() {
            tracing::info!(
                moved = report.moved.len(),
                not_moved = report.not_moved.len(),
                "moved leaderships back to their preferred replicas"
            );
        }
    }
}

impl Broker {
    /// Runs a balancing pass now (`cairn cluster balance-leaders`): moves up to `moves_max`
    /// (0: the node's per-pass bound) of the leaderships this node holds whose preferred
    /// replica is another node, alive and in sync, to that replica, and reports what moved and
    /// why the rest did not. `topic` limits the pass to one topic. Unlike an automatic pass it
    /// does not wait for a returning node to settle nor back off from failed moves. Each node
    /// moves only what it leads; ask every node to balance the whole cluster. A cluster of one
    /// is always balanced.
    ///
    /// # Errors
    /// [`BrokerError::InvalidRequest`] for a negative `moves_max`;
    /// [`BrokerError::UnknownTopic`] for a `topic` this node does not know.
    pub async fn balance_leaders(
        &self,
        topic: Option<&str>,
        moves_max: i64,
    ) -> Result<LeaderBalanceReport, BrokerError> {
        let moves_max = match usize::try_from(moves_max) {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(_) => {
                return Err(BrokerError::InvalidRequest(format!(
                    "max_moves {moves_max}: expected 0 (the node's per-pass bound) or more"
                )));
            }
        };
        if let Some(name) = topic {
            self.topic(name)?;
        }
        let Some(runtime) = self.runtime().cloned() else {
            return Ok(LeaderBalanceReport {
                node_id: self.node_id(),
                ..LeaderBalanceReport::default()
            });
        };
        let bound =
            usize::try_from(runtime.spec.leader_balance().moves_per_pass_max).unwrap_or(usize::MAX);
        let report = self
            .balance_pass(&runtime, PassKind::Asked, topic, moves_max.unwrap_or(bound))
            .await;
        tracing::info!(
            moved = report.moved.len(),
            not_moved = report.not_moved.len(),
            "leader balancing asked for"
        );
        Ok(report)
    }

    /// This node's balancing figures now; `None` on a single node.
    pub fn leader_balance_status(&self) -> Option<LeaderBalanceStatus> {
        let runtime = self.runtime()?;
        let metadata = runtime.directory.current();
        let imbalance_count = self
            .partitions_with_preferred(&metadata, None)
            .iter()
            .filter(|(_, partition, _, preferred)| {
                matches!(
                    partition.preferred_leader_state(*preferred),
                    PreferredLeaderState::Movable | PreferredLeaderState::Blocked(_)
                )
            })
            .count();
        let balancer = &self.leader_balancer;
        Some(LeaderBalanceStatus {
            imbalance_count: u64::try_from(imbalance_count).unwrap_or(u64::MAX),
            moves_total: balancer.moves_total.load(Ordering::Relaxed),
            failed_moves_total: balancer.failed_moves_total.load(Ordering::Relaxed),
        })
    }

    /// Every partition this node holds a Raft copy of (of `topic` only, when given), with its
    /// topic's name, its group and its preferred replica by `metadata`.
    fn partitions_with_preferred(
        &self,
        metadata: &ClusterMetadata,
        topic: Option<&str>,
    ) -> Vec<(String, Arc<Partition>, GroupId, NodeId)> {
        let mut found = Vec::new();
        for held in self.topics_snapshot() {
            if topic.is_some_and(|name| name != held.name) {
                continue;
            }
            for partition in held.partitions_now() {
                let Some(group) = partition.replicated_group() else {
                    continue;
                };
                let Some(preferred) = metadata
                    .partition_of_group(MetaGroupId(group.0))
                    .and_then(|p| p.meta.replicas.first().copied())
                else {
                    continue;
                };
                found.push((held.name.clone(), partition, group, preferred));
            }
        }
        found
    }

    /// One pass (see the module docs): finds the leaderships held here off their preferred
    /// replicas, moves up to `moves_max` of those that can move, and reports.
    async fn balance_pass(
        &self,
        runtime: &Arc<ClusterRuntime>,
        kind: PassKind,
        topic: Option<&str>,
        moves_max: usize,
    ) -> LeaderBalanceReport {
        let me = node_i32(runtime.spec.node_id());
        let mut report = LeaderBalanceReport {
            node_id: me,
            ..LeaderBalanceReport::default()
        };
        let mut backoff = self.leader_balancer.backoff.lock().await;
        let metadata = runtime.directory.current();
        let now = Instant::now();
        let mut candidates = Vec::new();
        for (topic, partition, group, preferred) in self.partitions_with_preferred(&metadata, topic)
        {
            let mut stay = |reason| {
                report.not_moved.push(LeaderNotMoved {
                    topic: topic.clone(),
                    partition: partition.index(),
                    leader: me,
                    preferred: node_i32(preferred),
                    reason,
                });
            };
            match partition.preferred_leader_state(preferred) {
                PreferredLeaderState::NotLedHere | PreferredLeaderState::Preferred => {}
                PreferredLeaderState::Blocked(reason) => stay(reason),
                PreferredLeaderState::Movable => {
                    if let PassKind::Automatic { settle, .. } = kind {
                        let reachable = runtime
                            .ctx
                            .reachability
                            .reachable_for(preferred, now)
                            .unwrap_or_default();
                        if reachable < settle {
                            let reachable_ms =
                                u64::try_from(reachable.as_millis()).unwrap_or(u64::MAX);
                            stay(NotMovedReason::PreferredSettling { reachable_ms });
                            continue;
                        }
                        if backoff.get(&group).is_some_and(|b| b.until > now) {
                            stay(NotMovedReason::BackingOff);
                            continue;
                        }
                    }
                    if candidates.len() >= moves_max {
                        stay(NotMovedReason::Deferred);
                        continue;
                    }
                    candidates.push(Candidate {
                        topic,
                        partition,
                        group,
                        preferred,
                    });
                }
            }
        }
        self.run_moves(runtime, candidates, kind, &mut backoff, &mut report)
            .await;
        report
    }

    /// Runs `candidates`' moves, [`MOVES_IN_FLIGHT`] at a time, recording each outcome in
    /// `report`, the counters and `backoff`.
    async fn run_moves(
        &self,
        runtime: &Arc<ClusterRuntime>,
        candidates: Vec<Candidate>,
        kind: PassKind,
        backoff: &mut HashMap<GroupId, Backoff>,
        report: &mut LeaderBalanceReport,
    ) {
        let me = report.node_id;
        let move_time = Duration::from_millis(runtime.spec.timings().election_timeout_max_ms())
            .saturating_mul(HANDOVER_TIMEOUT_ELECTIONS);
        let mut waiting = candidates.into_iter();
        let mut moves = JoinSet::new();
        loop {
            while moves.len() < MOVES_IN_FLIGHT {
                let Some(candidate) = waiting.next() else {
                    break;
                };
                let transport = Arc::clone(&runtime.ctx.transport);
                moves.spawn(async move {
                    let deadline = Instant::now() + move_time;
                    let outcome = candidate
                        .partition
                        .move_leadership_to(candidate.preferred, transport.as_ref(), deadline)
                        .await;
                    (candidate, outcome)
                });
            }
            let Some(done) = moves.join_next().await else {
                break;
            };
            let (candidate, outcome) = match done {
                Ok(done) => done,
                Err(e) => {
                    tracing::warn!(error = %e, "a leadership move task failed");
                    continue;
                }
            };
            match outcome {
                Ok(to) => {
                    self.leader_balancer
                        .moves_total
                        .fetch_add(1, Ordering::Relaxed);
                    backoff.remove(&candidate.group);
                    report.moved.push(LeaderMove {
                        topic: candidate.topic,
                        partition: candidate.partition.index(),
                        from: me,
                        to: node_i32(to),
                    });
                }
                Err(reason) => {
                    self.leader_balancer
                        .failed_moves_total
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        topic = %candidate.topic,
                        partition = candidate.partition.index(),
                        preferred = candidate.preferred,
                        %reason,
                        "leadership not moved to its preferred replica"
                    );
                    if let PassKind::Automatic { interval, .. } = kind {
                        note_failure(backoff, candidate.group, interval);
                    }
                    report.not_moved.push(LeaderNotMoved {
                        topic: candidate.topic,
                        partition: candidate.partition.index(),
                        leader: me,
                        preferred: node_i32(candidate.preferred),
                        reason,
                    });
                }
            }
        }
    }
}

/// Records a failed move of `group`: automatic passes leave it alone for one interval after
/// the first failure, doubling with each further one up to [`BACKOFF_INTERVALS_MAX`].
fn note_failure(backoff: &mut HashMap<GroupId, Backoff>, group: GroupId, interval: Duration) {
    let failures = backoff
        .get(&group)
        .map_or(0, |b| b.failures)
        .saturating_add(1);
    let intervals = 1u32
        .checked_shl(failures.saturating_sub(1))
        .unwrap_or(BACKOFF_INTERVALS_MAX)
        .min(BACKOFF_INTERVALS_MAX);
    backoff.insert(
        group,
        Backoff {
            failures,
            until: Instant::now() + interval.saturating_mul(intervals),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failed_moves_back_off_longer_each_time_up_to_a_bound() {
        let mut backoff = HashMap::new();
        let group = GroupId(7);
        let interval = Duration::from_secs(10);
        let mut waits = Vec::new();
        for _ in 0..9 {
            note_failure(&mut backoff, group, interval);
            let until = backoff.get(&group).expect("noted").until;
            waits.push(until.saturating_duration_since(Instant::now()).as_secs());
        }
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 640, 640]);
    }
}

//! A clean stop of a cluster node (SIGTERM) hands its leaderships over first: the controller
//! group's and every partition group's it leads, each to a caught-up follower, all at once
//! (`cairn_raft::handover` says how and why that is sound with openraft 0.9). A partition then
//! refuses writes for about one vote round trip and its new leader's first commit, instead of
//! the leader lease plus an election timeout a crash costs (the figures are in BENCHMARKS.md).
//!
//! What it does not do: move leaderships back when the node returns (preferred-leader
//! balancing does that, `cluster::leader_balance`, with the same primitive aimed at one named
//! replica), or hold the stop up for long. It is bounded by [`HANDOVER_TIMEOUT_ELECTIONS`]
//! election timeouts: a group still led here then is left to its followers' elections, exactly
//! as a stop without handover would.
//!
//! The invariant: nothing acknowledged depends on it. From the moment the node is leaving its
//! partitions propose nothing (they answer `NotLeader`, which clients retry), so each successor
//! is chosen against a log that no longer grows; entries proposed before and not yet committed
//! are in the successor's log and commit in its term, where a retried idempotent batch is
//! recognised as a duplicate.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cairn_raft::HandoverOutcome;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::broker::Broker;

/// How long a node spends handing its leaderships over, in election timeouts (their upper
/// end). One is enough for the slow case (a leader younger than its lease: its successor's
/// first election fails and its second, an election timeout later, wins); past two something
/// else is wrong (no follower caught up or reachable) and waiting only delays the stop.
pub const HANDOVER_TIMEOUT_ELECTIONS: u32 = 2;

/// What handing the leaderships over came to, for the shutdown log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandoverReport {
    /// Whether this node led the controller group and another node leads it now.
    pub controller_moved: bool,
    /// Partition groups this node led when the handover began.
    pub partitions_led: usize,
    /// Of those, the ones another node leads now.
    pub partitions_moved: usize,
    /// How long it took.
    pub elapsed: Duration,
}

impl Broker {
    /// Before a clean stop of a node in a cluster: stops proposing (appends answer `NotLeader`
    /// from now on), hands the controller's leadership and every partition group's this node
    /// leads to caught-up followers, and waits until other nodes lead them or
    /// [`HANDOVER_TIMEOUT_ELECTIONS`] election timeouts have passed. The node keeps serving
    /// peers and clients meanwhile (its successors need its vote and its acknowledgements);
    /// call [`Broker::shutdown`] afterwards. A cluster of one does nothing.
    pub async fn hand_over_leaderships(&self) -> HandoverReport {
        let Some(runtime) = self.runtime() else {
            return HandoverReport::default();
        };
        let started = Instant::now();
        let election_timeout_max_ms = runtime.spec.timings().election_timeout_max_ms();
        let deadline = started
            + Duration::from_millis(election_timeout_max_ms)
                .saturating_mul(HANDOVER_TIMEOUT_ELECTIONS);
        runtime.ctx.leaving.store(true, Ordering::SeqCst);
        // The controller's handover runs beside the partitions': their writes are refused
        // from now until each has a new leader, and must not wait on the controller's (the
        // successors' leader reports to the controller are retried until it has a leader).
        let controller = {
            let runtime = Arc::clone(runtime);
            tokio::spawn(async move { runtime.controller.hand_over(deadline).await })
        };
        // Every partition at once: each waits on its proposal lock and then on a vote round
        // trip, not on CPU, and one slow partition (a new leader still applying its log holds
        // the lock) must not hold up the others.
        let mut handovers = JoinSet::new();
        for topic in self.topics_snapshot() {
            for partition in topic.partitions_now() {
                let transport = Arc::clone(&runtime.ctx.transport);
                handovers.spawn(async move {
                    let (group, raft) = partition.stop_proposing(deadline).await?;
                    let outcome =
                        cairn_raft::hand_over(&raft, group, transport.as_ref(), deadline).await;
                    Some((group, outcome))
                });
            }
        }
        let (mut partitions_led, mut partitions_moved) = (0, 0);
        while let Some(handed) = handovers.join_next().await {
            match handed {
                Ok(None) => {}
                Ok(Some((_, HandoverOutcome::Moved { .. }))) => {
                    partitions_led += 1;
                    partitions_moved += 1;
                }
                Ok(Some((group, outcome))) => {
                    partitions_led += 1;
                    tracing::info!(%group, ?outcome, "partition leadership not handed over");
                }
                Err(e) => tracing::warn!(error = %e, "a handover task failed"),
            }
        }
        let controller = controller.await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the controller's handover task failed");
            HandoverOutcome::Stopped
        });
        let report = HandoverReport {
            controller_moved: matches!(controller, HandoverOutcome::Moved { .. }),
            partitions_led,
            partitions_moved,
            elapsed: started.elapsed(),
        };
        log_report(&report, controller);
        report
    }
}

fn log_report(report: &HandoverReport, controller: HandoverOutcome) {
    let elapsed_ms = u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX);
    let controller = match controller {
        HandoverOutcome::NotLeading => "not led here",
        HandoverOutcome::Moved { .. } => "handed over",
        HandoverOutcome::TimedOut => "still led here (timed out)",
        HandoverOutcome::Stopped => "group stopped",
    };
    if report.partitions_moved < report.partitions_led {
        tracing::warn!(
            controller,
            partitions_led = report.partitions_led,
            partitions_moved = report.partitions_moved,
            elapsed_ms,
            "some leaderships were not handed over in time; their followers elect a leader once this node is gone"
        );
    } else {
        tracing::info!(
            controller,
            partitions_led = report.partitions_led,
            partitions_moved = report.partitions_moved,
            elapsed_ms,
            "leaderships handed over"
        );
    }
}

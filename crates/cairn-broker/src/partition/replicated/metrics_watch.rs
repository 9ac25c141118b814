//! The watch on a replicated partition's Raft metrics: the newest term this node knows (which
//! proposals in flight wait on), a [`LeaderReport`] for each term this node wins and for each
//! change of its in-sync replicas while it leads (so the cluster metadata, which every node
//! answers describes from, follows elections and a follower falling behind or dropping out
//! without produce traffic), and every change fed to the follower-lag history. One task per
//! group, ending with the group.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use cairn_log::Clock;
use cairn_raft::{GroupId, NodeId, PartitionRaft};
use openraft::{Raft, ServerState};

use super::GroupContext;
use crate::partition::leader_end_history::LeaderEndHistory;

/// "This node leads group `group` in term `term`, with these replicas in sync", sent when it
/// happens so the cluster metadata (what every node tells clients) follows elections and the
/// in-sync set without any produce traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LeaderReport {
    /// The group.
    pub(crate) group: GroupId,
    /// This node.
    pub(crate) leader: NodeId,
    /// The term it leads in.
    pub(crate) term: u64,
    /// The replicas in sync with the leader, the leader included: every voter when it has
    /// just won, then as it sees them.
    pub(crate) members: Vec<NodeId>,
}

/// Watches a group's metrics: publishes the newest term this node knows in `known_term`
/// (proposals in flight watch it, and it changes only with the term), reports each term this
/// node wins to `ctx.leader_reports`, counting it in `ctx.elections`, and feeds every change to
/// `lag_history` at `clock`'s monotonic time, so a follower's lag in seconds is as fine as the
/// metrics' own updates, not as coarse as the scrapes. Ends when the group stops.
pub(super) fn spawn_metrics_watch(
    raft: &Raft<PartitionRaft>,
    group: GroupId,
    ctx: &GroupContext,
    lag_history: Arc<Mutex<LeaderEndHistory>>,
    clock: Arc<dyn Clock>,
    known_term: tokio::sync::watch::Sender<u64>,
) {
    let (me, reports, elections, reachability) = (
        ctx.me,
        ctx.leader_reports.clone(),
        Arc::clone(&ctx.elections),
        ctx.reachability.clone(),
    );
    let mut metrics = raft.metrics();
    tokio::spawn(async move {
        // The term of the last report, and the in-sync set it gave.
        let mut reported: Option<(u64, Vec<NodeId>)> = None;
        // A follower that stops answering changes no metric of the leader's while nothing is
        // written: look again now and then, as the liveness probes mark it unreachable.
        let mut tick = tokio::time::interval(ISR_RECHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticked = false;
        loop {
            let report = {
                let m = metrics.borrow_and_update();
                {
                    let mut history = lag_history.lock().unwrap_or_else(|e| e.into_inner());
                    // Read under the lock, as a scrape does, so the history's times ascend.
                    crate::partition::follower_lag::observe(&mut history, &m, clock.monotonic_ms());
                }
                known_term.send_if_modified(|known| {
                    let newer = m.current_term > *known;
                    if newer {
                        *known = m.current_term;
                    }
                    newer
                });
                let leading = m.state == ServerState::Leader;
                let won = leading
                    && reported
                        .as_ref()
                        .is_none_or(|(term, _)| *term != m.current_term);
                let voters = m.membership_config.membership().voter_ids();
                if won {
                    Some((true, voters.collect()))
                } else if leading && ticked {
                    // The in-sync set is looked at on the ticks only: a follower near the lag
                    // bound under load would otherwise make a controller proposal per flap.
                    let isr: Vec<NodeId> = voters
                        .filter(|node| {
                            crate::partition::follower_lag::is_in_sync(&m, *node, &reachability)
                        })
                        .collect();
                    let changed = reported.as_ref().is_some_and(|(_, held)| *held != isr);
                    changed.then_some((false, isr))
                } else {
                    None
                }
                .map(|(won, members)| {
                    (
                        won,
                        LeaderReport {
                            group,
                            leader: me,
                            term: m.current_term,
                            members,
                        },
                    )
                })
            };
            if let Some((won, report)) = report {
                if won {
                    tracing::debug!(group = group.0, term = report.term, "won the election");
                    elections.fetch_add(1, Ordering::Relaxed);
                } else {
                    tracing::info!(group = group.0, term = report.term, isr = ?report.members, "in-sync replicas changed");
                }
                reported = Some((report.term, report.members.clone()));
                if reports.send(report).is_err() {
                    return;
                }
            }
            ticked = tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return } else { false },
                _ = tick.tick() => true,
            };
        }
    });
}

/// How often a leader looks at its in-sync replicas again without a metrics change.
const ISR_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

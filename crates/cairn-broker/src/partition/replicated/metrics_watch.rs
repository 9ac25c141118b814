//! The watch on a replicated partition's Raft metrics: the newest term this node knows (which
//! proposals in flight wait on), a [`LeaderReport`] for each term this node wins (so the
//! cluster metadata follows elections without produce traffic), and every change fed to the
//! follower-lag history. One task per group, ending with the group.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use cairn_log::Clock;
use cairn_raft::{GroupId, NodeId, PartitionRaft};
use openraft::{Raft, ServerState};

use super::GroupContext;
use crate::partition::leader_end_history::LeaderEndHistory;

/// "This node leads group `group` in term `term`", sent when it happens so the cluster
/// metadata (what every node tells clients) follows elections without any produce traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LeaderReport {
    /// The group.
    pub(crate) group: GroupId,
    /// This node.
    pub(crate) leader: NodeId,
    /// The term it leads in.
    pub(crate) term: u64,
    /// The group's voters.
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
    let (me, reports, elections) = (
        ctx.me,
        ctx.leader_reports.clone(),
        Arc::clone(&ctx.elections),
    );
    let mut metrics = raft.metrics();
    tokio::spawn(async move {
        let mut reported = None;
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
                (m.state == ServerState::Leader && reported != Some(m.current_term)).then(|| {
                    LeaderReport {
                        group,
                        leader: me,
                        term: m.current_term,
                        members: m.membership_config.membership().voter_ids().collect(),
                    }
                })
            };
            if let Some(report) = report {
                tracing::debug!(group = group.0, term = report.term, "won the election");
                reported = Some(report.term);
                elections.fetch_add(1, Ordering::Relaxed);
                if reports.send(report).is_err() {
                    return;
                }
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    });
}

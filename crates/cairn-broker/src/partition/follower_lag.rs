//! How far the followers of a partition led here are behind, read from the leader's openraft
//! metrics: in entries (the leader's log end minus each follower's matched end), in time (the
//! [`LeaderEndHistory`] those same metrics feed), and whether that makes a follower in sync.
//!
//! Both figures come from one metrics snapshot, so they agree: a follower 0 entries behind is
//! 0 ms behind. Time is the caller's monotonic clock reading; nothing here reads a clock.

use cairn_raft::{NodeId, PeerNode};
use openraft::{RaftMetrics, ServerState};

use super::leader_end_history::LeaderEndHistory;

/// A follower is in sync while its copy is at most this many entries behind the leader's log.
pub(super) const IN_SYNC_MAX_ENTRIES_BEHIND: u64 = 1_000;

/// The end of the leader's log in `m`: the next index it will write.
fn leader_end(m: &RaftMetrics<NodeId, PeerNode>) -> u64 {
    m.last_log_index.map_or(0, |last| last.saturating_add(1))
}

/// The end of follower `node`'s copy as the leader whose metrics are `m` knows it (its matched
/// index plus one, 0 when nothing is matched); `None` when `m` is not a leader's or `node` is
/// not replicated to.
pub(crate) fn follower_end(m: &RaftMetrics<NodeId, PeerNode>, node: NodeId) -> Option<u64> {
    let matched = m.replication.as_ref()?.get(&node)?;
    Some(matched.as_ref().map_or(0, |l| l.index.saturating_add(1)))
}

/// Feeds `history` with the group's metrics `m` read at `now_ms`: the leader's log end and
/// every follower's, while `m` is a leader's; a follower forgets the history.
pub(super) fn observe(
    history: &mut LeaderEndHistory,
    m: &RaftMetrics<NodeId, PeerNode>,
    now_ms: u64,
) {
    if m.state != ServerState::Leader {
        history.step_down();
        return;
    }
    let followers = m
        .replication
        .iter()
        .flat_map(|replication| replication.iter())
        .filter(|(node, _)| **node != m.id)
        .map(|(_, matched)| matched.as_ref().map_or(0, |l| l.index.saturating_add(1)));
    history.observe(now_ms, m.current_term, leader_end(m), followers);
}

/// Milliseconds follower `node` has been behind the leader whose metrics are `m` at `now_ms`,
/// by `history` (see [`LeaderEndHistory::lag_ms`]); `None` where
/// [`follower_lag_entries`] is.
pub(super) fn follower_lag_ms(
    history: &LeaderEndHistory,
    m: &RaftMetrics<NodeId, PeerNode>,
    node: NodeId,
    now_ms: u64,
) -> Option<u64> {
    follower_end(m, node).map(|end| history.lag_ms(end, now_ms))
}

/// Whether replica `node` is in sync as the leader whose metrics are `m` sees it: the leader
/// itself, or a follower whose node the liveness probes reach and whose copy is at most
/// [`IN_SYNC_MAX_ENTRIES_BEHIND`] entries behind the leader's log. Without the reachability
/// check a dead follower would stay in sync for as long as nothing is written (its matched
/// index stops where it was), which Kafka's time-based rule would not allow.
pub(super) fn is_in_sync(
    m: &RaftMetrics<NodeId, PeerNode>,
    node: NodeId,
    reachability: &crate::cluster::liveness::PeerReachability,
) -> bool {
    if node == m.id {
        return true;
    }
    !reachability.is_unreachable(node)
        && follower_lag_entries(m, node).is_some_and(|lag| lag <= IN_SYNC_MAX_ENTRIES_BEHIND)
}

/// Entries of the leader's log (whose metrics are `m`) that follower `node` does not hold yet:
/// the leader's last log index minus the follower's matched index, counting every entry when
/// nothing is matched. `None` when `m` is not a leader's or `node` is not replicated to.
pub(super) fn follower_lag_entries(m: &RaftMetrics<NodeId, PeerNode>, node: NodeId) -> Option<u64> {
    let at = follower_end(m, node)?;
    Some(leader_end(m).saturating_sub(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A leader's metrics (node 1) with `last` as its last log index and these followers'
    /// matched indexes.
    fn leader_metrics(
        last: Option<u64>,
        matched: &[(NodeId, Option<u64>)],
    ) -> RaftMetrics<NodeId, PeerNode> {
        let mut m = RaftMetrics::new_initial(1);
        m.state = ServerState::Leader;
        m.last_log_index = last;
        m.replication = Some(
            matched
                .iter()
                .map(|(node, index)| (*node, index.map(|i| cairn_raft::wire::log_id(1, i))))
                .collect(),
        );
        m
    }

    #[test]
    fn follower_lag_is_the_leaders_last_index_minus_the_followers_matched_one() {
        let m = leader_metrics(Some(10), &[(1, Some(10)), (2, Some(7)), (3, None)]);
        assert_eq!(follower_lag_entries(&m, 1), Some(0));
        assert_eq!(follower_lag_entries(&m, 2), Some(3));
        // Nothing matched yet: every entry, index 0 included, is missing.
        assert_eq!(follower_lag_entries(&m, 3), Some(11));
        assert_eq!(follower_lag_entries(&m, 4), None, "not replicated to");
    }

    #[test]
    fn a_follower_is_in_sync_while_reachable_and_close_behind() {
        use crate::cluster::liveness::PeerReachability;
        let behind = IN_SYNC_MAX_ENTRIES_BEHIND;
        let m = leader_metrics(
            Some(2 * behind),
            &[(2, Some(behind)), (3, Some(behind - 1))],
        );
        let reachability = PeerReachability::default();
        assert!(is_in_sync(&m, 1, &reachability), "the leader itself");
        assert!(is_in_sync(&m, 2, &reachability), "exactly the limit behind");
        assert!(!is_in_sync(&m, 3, &reachability), "one past the limit");
        // Node 2 stops answering probes: its matched index has not moved, yet it is out.
        reachability.publish(&[(2, true), (3, false)].into_iter().collect());
        assert!(!is_in_sync(&m, 2, &reachability), "unreachable");
        assert!(
            is_in_sync(&m, 1, &reachability),
            "the leader is never unreachable to itself"
        );
    }

    #[test]
    fn lag_in_time_follows_the_metrics_fed_to_the_history() {
        let mut history = LeaderEndHistory::default();
        observe(
            &mut history,
            &leader_metrics(Some(9), &[(2, Some(9)), (3, Some(9))]),
            1_000,
        );
        // Node 3 stops copying: from 2 s the leader is past its end.
        let m = leader_metrics(Some(14), &[(2, Some(14)), (3, Some(9))]);
        observe(&mut history, &m, 2_000);
        assert_eq!(follower_lag_ms(&history, &m, 2, 6_500), Some(0));
        assert_eq!(follower_lag_ms(&history, &m, 3, 6_500), Some(4_500));
        assert_eq!(follower_lag_entries(&m, 3), Some(5));
        assert_eq!(
            follower_lag_ms(&history, &m, 4, 6_500),
            None,
            "not replicated to"
        );
        // Leadership lost: the history goes with it.
        let mut lost = m.clone();
        lost.state = ServerState::Follower;
        observe(&mut history, &lost, 7_000);
        assert_eq!(history.lag_ms(10, 7_000), 0);
    }

    #[test]
    fn a_follower_has_no_lag_figures() {
        let mut m = leader_metrics(Some(10), &[]);
        m.state = ServerState::Follower;
        m.replication = None;
        assert_eq!(follower_lag_entries(&m, 2), None);
    }
}

//! Whom a node that does not lead a group names in its `NOT_LEADER` answer: the leader when it
//! knows one, and otherwise the candidate its vote names in the current term.
//!
//! Between a leader stepping down and its successor's first append, the nodes the successor has
//! not reached yet know no leader, and a client told so backs off (100 ms by default) to wait
//! out the election. But a candidate this node voted for holds, with its own vote, a majority of
//! three, so it wins unless it fails first, and with more replicas it is still the likeliest
//! winner. On a leadership move the old leader votes for its successor within a round trip of
//! handing over, so naming that candidate sends the client's retry straight to the new leader.
//! Measured at 20,000 records/s, 10 moves: the records in flight were held 49 - 126 ms, against
//! 133 - 243 ms when the old leader named no one (and about 535 ms in 4 of the 10 moves, for
//! a cause fixed in the same change: see the sequencer's docs).
//!
//! The guess can be wrong: openraft also takes on a higher vote it merely hears of (a leader
//! that steps down on a follower's reply, say), so the candidate named may be one this node never
//! voted for, and one whose log is too short to win. That costs the client one retry, after
//! which it backs off as before: it skips the backoff only for the first leader named in a row,
//! and a candidate never names itself.

use cairn_raft::{NodeId, PeerNode};
use openraft::RaftMetrics;

/// The node a client should try next for a group this node does not lead: the leader, when
/// known, or else the candidate this node's vote names in the current term, unless that is
/// itself (a candidate does not know yet whether it wins). The vote's term is checked because
/// openraft publishes the saved vote apart from the term, and the two can differ for a while
/// (a snapshot being installed holds the saving back).
pub(super) fn likely_leader(metrics: &RaftMetrics<NodeId, PeerNode>) -> Option<NodeId> {
    metrics.current_leader.or_else(|| {
        let vote = &metrics.vote;
        let candidate = vote.leader_id().voted_for()?;
        (!vote.is_committed()
            && vote.leader_id().get_term() == metrics.current_term
            && candidate != metrics.id)
            .then_some(candidate)
    })
}

#[cfg(test)]
mod tests {
    use openraft::Vote;

    use super::*;

    fn metrics(
        me: NodeId,
        leader: Option<NodeId>,
        vote: Vote<NodeId>,
    ) -> RaftMetrics<NodeId, PeerNode> {
        let mut m = RaftMetrics::new_initial(me);
        m.current_leader = leader;
        m.current_term = vote.leader_id().get_term();
        m.vote = vote;
        m
    }

    #[test]
    fn the_known_leader_is_named() {
        let m = metrics(1, Some(3), Vote::new_committed(4, 3));
        assert_eq!(likely_leader(&m), Some(3));
    }

    #[test]
    fn with_no_leader_known_the_candidate_voted_for_is_named() {
        let m = metrics(1, None, Vote::new(5, 2));
        assert_eq!(likely_leader(&m), Some(2));
    }

    #[test]
    fn a_vote_of_another_term_names_no_one() {
        let mut m = metrics(1, None, Vote::new(5, 2));
        m.current_term = 6;
        assert_eq!(likely_leader(&m), None);
    }

    #[test]
    fn a_candidate_does_not_name_itself() {
        let m = metrics(2, None, Vote::new(5, 2));
        assert_eq!(likely_leader(&m), None);
    }

    #[test]
    fn no_vote_no_leader_names_no_one() {
        let m = metrics(1, None, Vote::default());
        assert_eq!(likely_leader(&m), None);
    }
}

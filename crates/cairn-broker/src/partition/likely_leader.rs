//! Whom a node that does not lead a group names in its `NOT_LEADER` answer: the leader when it
//! knows one, and otherwise the candidate it voted for in the current term.
//!
//! Between a leader stepping down and its successor's first append, every node but the
//! candidate knows no leader, and a client told so backs off (100 ms by default) to wait out
//! the election. But a candidate holding this node's vote holds a majority of three with its
//! own, so it wins unless it fails first (and with more replicas it is still the likeliest
//! winner). On a leadership move the old leader votes for its successor within a round trip of
//! handing over, so naming that candidate sends the client's retry straight to the new leader.
//! Measured at 20,000 records/s, 10 moves: the records in flight were held 49 - 126 ms, against
//! 133 - 243 ms when the old leader named no one (and about 535 ms in 4 of the 10 moves, for
//! a cause fixed in the same change: see the sequencer's docs). A wrong guess costs the client
//! one retry, after which it backs off as before: it skips the backoff only for the first
//! leader named in a row.

use cairn_raft::{NodeId, PeerNode};
use openraft::RaftMetrics;

/// The node a client should try next for a group this node does not lead: the leader, when
/// known, or else the candidate this node voted for in the current term, unless that is itself
/// (a candidate does not know yet whether it wins).
pub(super) fn likely_leader(metrics: &RaftMetrics<NodeId, PeerNode>) -> Option<NodeId> {
    metrics.current_leader.or_else(|| {
        let vote = &metrics.vote;
        let candidate = vote.leader_id().voted_for()?;
        (!vote.is_committed() && candidate != metrics.id).then_some(candidate)
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

//! Where one partition stands for preferred-leader balancing (`cluster::leader_balance`), as
//! its leader sees it: not led here, led by its preferred replica, movable to it, or not
//! movable yet and why. The decision is [`preferred_leader_state`], a pure function of the
//! group's openraft metrics and the node's reachability view, so it is tested without
//! sockets; the move itself is `ReplicatedReplica::move_leadership_to`.
//!
//! The invariant: a partition is movable only while its preferred replica is a voter of the
//! group, on a node the liveness probes reach, and in sync (the rule that makes a replica
//! eligible to lead in Kafka, and here the one that makes the handover's wait for a full
//! catch-up short). Settle time and back-off are the balancer's, which knows the clock.

use cairn_raft::{GroupId, NodeId, PeerNode, PeerTransport};
use openraft::{RaftMetrics, ServerState};

use super::follower_lag::{follower_lag_entries, is_in_sync};
use super::{Partition, Replica, State};
use crate::cluster::leader_balance::NotMovedReason;
use crate::cluster::liveness::PeerReachability;

/// One partition's standing for balancing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PreferredLeaderState {
    /// This node does not lead the group (or holds no Raft copy): nothing to do here.
    NotLedHere,
    /// This node leads the group and is its preferred replica.
    Preferred,
    /// This node leads, and the preferred replica can take over now.
    Movable,
    /// This node leads, the preferred replica is another node, and it cannot take over yet.
    Blocked(NotMovedReason),
}

/// The standing of the group whose metrics are `m`, on this node, for `preferred` (the first
/// replica of the partition in the cluster metadata), with `reachability` this node's view.
pub(crate) fn preferred_leader_state(
    m: &RaftMetrics<NodeId, PeerNode>,
    preferred: NodeId,
    reachability: &PeerReachability,
) -> PreferredLeaderState {
    if m.state != ServerState::Leader {
        return PreferredLeaderState::NotLedHere;
    }
    if preferred == m.id {
        return PreferredLeaderState::Preferred;
    }
    let is_voter = m
        .membership_config
        .membership()
        .voter_ids()
        .any(|voter| voter == preferred);
    let blocked = if !is_voter {
        NotMovedReason::PreferredNotAVoter
    } else if reachability.is_unreachable(preferred) {
        NotMovedReason::PreferredUnreachable
    } else if !is_in_sync(m, preferred, reachability) {
        NotMovedReason::PreferredNotInSync {
            lag_entries: follower_lag_entries(m, preferred),
        }
    } else {
        return PreferredLeaderState::Movable;
    };
    PreferredLeaderState::Blocked(blocked)
}

impl Partition {
    /// The partition's Raft group, when this node holds a Raft copy of it.
    pub(crate) fn replicated_group(&self) -> Option<GroupId> {
        match &self.state {
            State::Serving(Replica::Replicated(replicated)) => Some(replicated.group()),
            _ => None,
        }
    }

    /// Where the partition stands for balancing towards `preferred` (see
    /// [`preferred_leader_state`]); [`PreferredLeaderState::NotLedHere`] unless this node
    /// holds a Raft copy and leads it.
    pub(crate) fn preferred_leader_state(&self, preferred: NodeId) -> PreferredLeaderState {
        match &self.state {
            State::Serving(Replica::Replicated(replicated)) => {
                replicated.preferred_leader_state(preferred)
            }
            _ => PreferredLeaderState::NotLedHere,
        }
    }

    /// Hands the partition's leadership to `successor` (its preferred replica), holding its
    /// proposals for the move, and answers the node that leads it after the move.
    ///
    /// # Errors
    /// Why it did not move (this node does not lead, the node is leaving, the handover timed
    /// out or the group stopped); this node then leads as before, unless an election the
    /// move started is still deciding.
    pub(crate) async fn move_leadership_to(
        &self,
        successor: NodeId,
        transport: &dyn PeerTransport,
        deadline: tokio::time::Instant,
    ) -> Result<NodeId, NotMovedReason> {
        match &self.state {
            State::Serving(Replica::Replicated(replicated)) => {
                replicated
                    .move_leadership_to(successor, transport, deadline)
                    .await
            }
            _ => Err(NotMovedReason::NotLeading),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    use openraft::{Membership, StoredMembership};

    use super::*;

    /// Metrics of node 1 leading nodes 1 to 3 with `last` as its last index and these matched
    /// indexes.
    fn leader(last: u64, matched: &[(NodeId, Option<u64>)]) -> RaftMetrics<NodeId, PeerNode> {
        let nodes: BTreeMap<NodeId, PeerNode> =
            (1..=3).map(|id| (id, PeerNode::default())).collect();
        let voters: BTreeSet<NodeId> = nodes.keys().copied().collect();
        let mut m = RaftMetrics::new_initial(1);
        m.state = ServerState::Leader;
        m.last_log_index = Some(last);
        m.membership_config = Arc::new(StoredMembership::new(
            None,
            Membership::new(vec![voters], nodes),
        ));
        m.replication = Some(
            matched
                .iter()
                .map(|(node, index)| (*node, index.map(|i| cairn_raft::wire::log_id(2, i))))
                .collect(),
        );
        m
    }

    fn unreachable(nodes: &[NodeId]) -> PeerReachability {
        let reachability = PeerReachability::default();
        let dead: BTreeMap<NodeId, bool> = (2..=4).map(|n| (n, nodes.contains(&n))).collect();
        reachability.publish(&dead);
        reachability
    }

    #[test]
    fn a_caught_up_reachable_preferred_replica_is_movable() {
        let m = leader(
            5_000,
            &[(1, Some(5_000)), (2, Some(4_990)), (3, Some(5_000))],
        );
        let all_up = unreachable(&[]);
        assert_eq!(
            preferred_leader_state(&m, 2, &all_up),
            PreferredLeaderState::Movable
        );
        assert_eq!(
            preferred_leader_state(&m, 1, &all_up),
            PreferredLeaderState::Preferred
        );
    }

    #[test]
    fn a_preferred_replica_away_behind_or_outside_the_group_blocks_the_move() {
        let m = leader(
            5_000,
            &[(1, Some(5_000)), (2, Some(3_000)), (3, Some(5_000))],
        );
        assert_eq!(
            preferred_leader_state(&m, 3, &unreachable(&[3])),
            PreferredLeaderState::Blocked(NotMovedReason::PreferredUnreachable)
        );
        assert_eq!(
            preferred_leader_state(&m, 2, &unreachable(&[])),
            PreferredLeaderState::Blocked(NotMovedReason::PreferredNotInSync {
                lag_entries: Some(2_000)
            })
        );
        assert_eq!(
            preferred_leader_state(&m, 4, &unreachable(&[])),
            PreferredLeaderState::Blocked(NotMovedReason::PreferredNotAVoter)
        );
    }

    #[test]
    fn a_follower_has_nothing_to_move() {
        let mut m = leader(10, &[]);
        m.state = ServerState::Follower;
        m.replication = None;
        assert_eq!(
            preferred_leader_state(&m, 2, &unreachable(&[])),
            PreferredLeaderState::NotLedHere
        );
    }
}

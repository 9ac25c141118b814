//! Leadership handover, for a node about to stop: each group it leads goes to a caught-up
//! follower before the node leaves (or, for preferred-leader balancing, to one named follower:
//! [`hand_over_to`]), so a planned restart costs a group about one vote round trip
//! instead of a leader lease plus an election timeout. It moves leadership only; it never
//! decides what is committed, and it does not stop proposals (the caller must, first: see
//! [`hand_over`]).
//!
//! openraft 0.9 has no leader transfer (0.10 adds one), but what it has makes one sound:
//! - any replica may call an election at any time (`trigger().elect()`): Raft's safety never
//!   rests on who stands, only on who votes for whom;
//! - a voter refuses a candidate whose log is behind its own, and a follower refuses every
//!   candidate while its leader lease runs (`election_timeout_max` since the leader last spoke);
//! - the leader itself holds its own vote to the same lease counted from its election, which
//!   nothing renews: a leader elected more than a lease ago grants its vote to a candidate whose
//!   log is at least its own, and stops leading on doing so.
//!
//! So the leaving leader, once it proposes nothing more, finds a follower whose copy matches its
//! whole log and asks it to stand ([`RpcKind::Campaign`]). That follower's vote and the leader's
//! make a majority of three; the new leader's first entry commits with them, and the remaining
//! follower joins at the new leader's first append (appends are not held back by the lease).
//! Rejected alternatives: shutting the group down and letting the followers elect costs a lease
//! plus an election timeout (the crash path, about 2 to 3 s with the default timings); asking
//! the followers to call an election on their own lease timers is the same thing.
//!
//! Where it takes longer, it is still bounded and still safe. A leader elected less than a lease
//! ago refuses the candidate; the candidate's higher term still makes it step down at its next
//! heartbeat, and the candidate's next election, one election timeout later, wins (the old
//! leader's vote is then no longer a leader's, so no lease applies). With five replicas the
//! candidate needs a follower's vote too, which comes once that follower's lease has run out.
//!
//! The invariant: a follower stands only while it follows the asking leader in the term named
//! by the request and holds the log index the request names ([`should_campaign`]), so a delayed
//! or repeated request can never unseat a later leader.

use std::time::Duration;

use bytes::Bytes;
use openraft::{Raft, RaftMetrics, ServerState, Vote};
use tokio::time::Instant;

use crate::transport::{PeerTransport, RpcKind};
use crate::types::{GroupId, NodeId, PeerNode};
use crate::wire::{self, CairnRaftConfig, CampaignRequest};

/// How often a handover with no caught-up follower yet looks again, besides every change of the
/// group's metrics (which is when a follower's progress shows).
const NO_SUCCESSOR_POLL: Duration = Duration::from_millis(20);

/// How often a leader that asked a follower to stand, and still leads, sends a heartbeat to
/// learn the candidate's term (see [`hand_over`]).
const NUDGE_EVERY: Duration = Duration::from_millis(20);

/// What a handover came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoverOutcome {
    /// This node did not lead the group when the handover began: nothing to hand over.
    NotLeading,
    /// Node `to` leads the group now.
    Moved {
        /// The new leader.
        to: NodeId,
    },
    /// The deadline passed before another node led the group (no follower caught up or
    /// answered, or the election it started is still running). The group's own election
    /// timers take over once this node is gone.
    TimedOut,
    /// The group's Raft stopped on this node.
    Stopped,
}

/// Whether replica `me`, in `state`, holding `vote` and a log ending at `last_log_index`,
/// should stand for election as `req` asks. Two cases, both needing at least the asker's log:
/// - it follows the asking leader, in the term the request names (the first request);
/// - it is the candidate the asker now votes for, in the asker's term, not yet elected (a
///   second request: the asker, elected less than a lease ago, refused the first election by
///   its lease, then stepped down on seeing the candidate's term; its vote is no longer a
///   leader's, so it grants the next election at once).
///
/// Anything else means the request is stale (a later term began, another leader won) or the
/// election would fail on the log check.
pub fn should_campaign(
    req: &CampaignRequest,
    me: NodeId,
    state: ServerState,
    vote: &Vote<NodeId>,
    last_log_index: Option<u64>,
) -> bool {
    let follows_asker = state == ServerState::Follower
        && vote.committed
        && req.vote.committed
        && vote.leader_id == req.vote.leader_id;
    let asker_backs_my_candidacy = matches!(state, ServerState::Candidate | ServerState::Follower)
        && !vote.committed
        && *vote == req.vote
        && vote.leader_id.voted_for == Some(me);
    (follows_asker || asker_backs_my_candidacy) && last_log_index >= req.last_log_index
}

/// The follower a leader whose metrics are `m` should ask to stand: one of the group's voters
/// other than itself whose matched log reaches the leader's last index, the `turn`-th of them by
/// id (wrapping). Passing the group id as the first turn spreads one node's groups over the
/// remaining nodes; adding one per refusal moves on to the next follower. `None` when `m` is
/// not a leader's or no follower is caught up.
pub fn pick_successor(m: &RaftMetrics<NodeId, PeerNode>, turn: u64) -> Option<NodeId> {
    let caught_up: Vec<NodeId> = m
        .membership_config
        .membership()
        .voter_ids()
        .filter(|voter| is_caught_up(m, *voter))
        .collect();
    let count = u64::try_from(caught_up.len()).ok().filter(|n| *n > 0)?;
    let idx = usize::try_from(turn % count).ok()?;
    caught_up.get(idx).copied()
}

/// Hands the leadership of `group` (led here through `raft`) to a caught-up follower, reached
/// through `transport`, and waits until another node leads it or `deadline` passes.
///
/// The caller must have stopped proposing to `raft` before calling: a follower matches a log
/// that still grows only by luck, and an election by a follower that lacks the leader's last
/// entry fails on the log check (the group then waits an election timeout). Proposals submitted
/// before the call are waited for (a request queued behind them in openraft's core).
///
/// Nothing is acknowledged or lost by a handover: entries this leader proposed and has not
/// committed are in the successor's log (it matched the whole log) and commit in its term.
pub async fn hand_over<C: CairnRaftConfig>(
    raft: &Raft<C>,
    group: GroupId,
    transport: &dyn PeerTransport,
    deadline: Instant,
) -> HandoverOutcome {
    hand_over_inner(raft, group, None, transport, deadline).await
}

/// As [`hand_over`], to one named follower only: `successor` is asked to stand once its copy
/// matches the leader's whole log, and no other follower is asked, even if `successor` refuses
/// or never catches up (then the outcome is [`HandoverOutcome::TimedOut`] and, unless the
/// asked election raised the term meanwhile, this node still leads in the same term). What
/// preferred-leader balancing uses: it moves a leadership to one particular replica, and a
/// move to any other would only need moving again.
///
/// The caller's duty is [`hand_over`]'s: stop proposing first. `successor` must be a voter
/// of the group other than this node; anything else is never caught up and times out.
pub async fn hand_over_to<C: CairnRaftConfig>(
    raft: &Raft<C>,
    group: GroupId,
    successor: NodeId,
    transport: &dyn PeerTransport,
    deadline: Instant,
) -> HandoverOutcome {
    hand_over_inner(raft, group, Some(successor), transport, deadline).await
}

/// The follower a handover asks next: the named one once it is caught up, or by
/// [`pick_successor`]'s turn when none is named.
fn next_successor(
    m: &RaftMetrics<NodeId, PeerNode>,
    named: Option<NodeId>,
    turn: u64,
) -> Option<NodeId> {
    match named {
        None => pick_successor(m, turn),
        Some(successor) => is_caught_up(m, successor).then_some(successor),
    }
}

/// Whether voter `node` (not the leader itself) holds the whole log of the leader whose
/// metrics are `m`.
fn is_caught_up(m: &RaftMetrics<NodeId, PeerNode>, node: NodeId) -> bool {
    node != m.id
        && m.membership_config
            .membership()
            .voter_ids()
            .any(|v| v == node)
        && m.replication.as_ref().is_some_and(|matched| {
            matched
                .get(&node)
                .is_some_and(|log_id| log_id.map(|l| l.index) >= m.last_log_index)
        })
}

async fn hand_over_inner<C: CairnRaftConfig>(
    raft: &Raft<C>,
    group: GroupId,
    named: Option<NodeId>,
    transport: &dyn PeerTransport,
    deadline: Instant,
) -> HandoverOutcome {
    // openraft's core handles requests in order, so once it answers this one every proposal
    // submitted before it is in the leader's log (its metrics follow at the core's next turn).
    if raft.with_raft_state(|_| ()).await.is_err() {
        return HandoverOutcome::Stopped;
    }
    let retry = Duration::from_millis(raft.config().heartbeat_interval.saturating_mul(2).max(1));
    let mut metrics = raft.metrics();
    let mut turn = group.0;
    let mut asked: Option<NodeId> = None;
    let mut seconded: Option<Vote<NodeId>> = None;
    let mut next_ask = Instant::now();
    let mut next_nudge = next_ask;
    loop {
        let m = metrics.borrow_and_update().clone();
        if m.running_state.is_err() {
            return HandoverOutcome::Stopped;
        }
        if let Some(leader) = m.current_leader.filter(|l| *l != m.id) {
            return HandoverOutcome::Moved { to: leader };
        }
        let leading = m.state == ServerState::Leader;
        let now = Instant::now();
        let wake = if leading {
            if now >= next_ask {
                match next_successor(&m, named, turn) {
                    Some(successor) => {
                        asked = Some(successor);
                        if !ask_to_campaign(&m, group, successor, transport, retry).await {
                            turn = turn.wrapping_add(1);
                        }
                        next_ask = Instant::now() + retry;
                    }
                    // No (or not the named) follower has the whole log yet: look again when one
                    // reports progress.
                    None => next_ask = now + NO_SUCCESSOR_POLL,
                }
                next_ask
            } else if asked.is_some() {
                // Still leading after asking: the candidate may have met this leader's lease
                // (it was elected less than a lease ago). A heartbeat now, rather than at the
                // next interval, brings back the candidate's higher term, on which this node
                // steps down; the candidate is then seconded below. Paced: every heartbeat's
                // answers change the metrics this loop wakes on.
                if now >= next_nudge {
                    if raft.trigger().heartbeat().await.is_err() {
                        return HandoverOutcome::Stopped;
                    }
                    next_nudge = now + NUDGE_EVERY;
                }
                next_ask.min(next_nudge)
            } else {
                next_ask
            }
        } else if let Some(successor) = asked {
            // Leaderless: an election runs. If it is the asked follower's, and this node's vote
            // is already its (uncommitted), ask it once more: no lease holds that vote back.
            if !m.vote.committed
                && m.vote.leader_id.voted_for == Some(successor)
                && seconded.as_ref() != Some(&m.vote)
            {
                seconded = Some(m.vote);
                ask_to_campaign(&m, group, successor, transport, retry).await;
            }
            deadline
        } else {
            return HandoverOutcome::NotLeading;
        };
        if Instant::now() >= deadline {
            return HandoverOutcome::TimedOut;
        }
        if let Ok(Err(_)) = tokio::time::timeout_at(wake.min(deadline), metrics.changed()).await {
            return HandoverOutcome::Stopped;
        }
    }
}

/// Asks `successor` to stand for election in `group`, as the node whose metrics are `m` (with
/// its vote and last log index); answers whether it started one (a refusal or no answer is
/// `false`).
async fn ask_to_campaign(
    m: &RaftMetrics<NodeId, PeerNode>,
    group: GroupId,
    successor: NodeId,
    transport: &dyn PeerTransport,
    timeout: Duration,
) -> bool {
    let req = CampaignRequest {
        vote: m.vote,
        last_log_index: m.last_log_index,
    };
    let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    let answer = transport
        .call(
            successor,
            group,
            RpcKind::Campaign,
            wire::encode_campaign(&req),
            timeout_ms,
        )
        .await;
    let started = match answer {
        Ok(bytes) => wire::decode_campaign_answer(bytes).unwrap_or(false),
        Err(e) => {
            tracing::debug!(%group, successor, error = %e, "handover: campaign request not answered");
            false
        }
    };
    tracing::debug!(%group, successor, started, term = m.current_term, "handover: asked a follower to stand");
    started
}

/// Answers a peer's [`RpcKind::Campaign`] for the group run by `raft`: stands for election when
/// [`should_campaign`] says so, and answers whether it did.
///
/// # Errors
/// A payload that does not decode; openraft stopped.
pub async fn answer_campaign<C: CairnRaftConfig>(
    raft: &Raft<C>,
    payload: Bytes,
) -> Result<Bytes, String> {
    let req = wire::decode_campaign(payload).map_err(|e| e.to_string())?;
    let stand = {
        let metrics = raft.metrics();
        let m = metrics.borrow();
        should_campaign(&req, m.id, m.state, &m.vote, m.last_log_index)
    };
    if stand {
        raft.trigger().elect().await.map_err(|e| e.to_string())?;
    }
    Ok(wire::encode_campaign_answer(stand))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    use openraft::{LeaderId, Membership, StoredMembership};

    use super::*;
    use crate::wire::log_id;

    fn vote(term: u64, node: u64, committed: bool) -> Vote<NodeId> {
        Vote {
            leader_id: LeaderId {
                term,
                voted_for: Some(node),
            },
            committed,
        }
    }

    fn request(term: u64, leader: u64, last: Option<u64>) -> CampaignRequest {
        CampaignRequest {
            vote: vote(term, leader, true),
            last_log_index: last,
        }
    }

    /// The asked follower's id in these tests.
    const ME: NodeId = 2;

    #[test]
    fn a_follower_of_the_asking_leader_with_its_log_stands() {
        let req = request(4, 1, Some(20));
        let following = vote(4, 1, true);
        let f = ServerState::Follower;
        assert!(should_campaign(&req, ME, f, &following, Some(20)));
        assert!(should_campaign(&req, ME, f, &following, Some(21)));
    }

    #[test]
    fn a_stale_or_hopeless_request_is_refused() {
        let req = request(4, 1, Some(20));
        let f = ServerState::Follower;
        let refused =
            |state, vote: Vote<NodeId>, last| !should_campaign(&req, ME, state, &vote, last);
        assert!(refused(f, vote(4, 1, true), Some(19)), "log behind");
        assert!(refused(f, vote(5, 3, true), Some(30)), "a later term");
        assert!(refused(f, vote(5, 3, false), Some(30)), "voted later");
        assert!(refused(f, vote(4, 3, true), Some(30)), "another leader");
        assert!(refused(ServerState::Leader, vote(4, 1, true), Some(20)));
        assert!(
            refused(ServerState::Candidate, vote(5, ME, false), Some(20)),
            "already standing"
        );
        let uncommitted = CampaignRequest {
            vote: vote(4, 1, false),
            last_log_index: Some(20),
        };
        assert!(!should_campaign(
            &uncommitted,
            ME,
            f,
            &vote(4, 1, true),
            Some(20)
        ));
    }

    #[test]
    fn a_candidate_the_asker_now_votes_for_stands_again() {
        // The asker stepped down on this candidate's term 5 and votes for it.
        let seconded = CampaignRequest {
            vote: vote(5, ME, false),
            last_log_index: Some(20),
        };
        let candidate = ServerState::Candidate;
        assert!(should_campaign(
            &seconded,
            ME,
            candidate,
            &vote(5, ME, false),
            Some(20)
        ));
        assert!(
            !should_campaign(&seconded, 3, candidate, &vote(5, ME, false), Some(20)),
            "a vote for another node"
        );
        assert!(
            !should_campaign(&seconded, ME, candidate, &vote(6, ME, false), Some(20)),
            "already standing again"
        );
        assert!(
            !should_campaign(
                &seconded,
                ME,
                ServerState::Leader,
                &vote(5, ME, true),
                Some(20)
            ),
            "elected meanwhile"
        );
        assert!(
            !should_campaign(&seconded, ME, candidate, &vote(5, ME, false), Some(19)),
            "log behind"
        );
    }

    /// Metrics of node 1 leading nodes 1 to 3 with `last` as its last index and these matched
    /// indexes.
    fn leader(
        last: Option<u64>,
        matched: &[(NodeId, Option<u64>)],
    ) -> RaftMetrics<NodeId, PeerNode> {
        let nodes: BTreeMap<NodeId, PeerNode> =
            (1..=3).map(|id| (id, PeerNode::default())).collect();
        let voters: BTreeSet<NodeId> = nodes.keys().copied().collect();
        let mut m = RaftMetrics::new_initial(1);
        m.state = ServerState::Leader;
        m.last_log_index = last;
        m.membership_config = Arc::new(StoredMembership::new(
            None,
            Membership::new(vec![voters], nodes),
        ));
        m.replication = Some(
            matched
                .iter()
                .map(|(node, index)| (*node, index.map(|i| log_id(2, i))))
                .collect(),
        );
        m
    }

    #[test]
    fn only_a_caught_up_follower_is_picked() {
        let m = leader(Some(9), &[(1, Some(9)), (2, Some(8)), (3, Some(9))]);
        for turn in 0..4 {
            assert_eq!(pick_successor(&m, turn), Some(3), "turn {turn}");
        }
        let m = leader(Some(9), &[(1, Some(9)), (2, Some(8)), (3, None)]);
        assert_eq!(pick_successor(&m, 0), None);
    }

    #[test]
    fn turns_spread_over_the_caught_up_followers() {
        let m = leader(Some(9), &[(1, Some(9)), (2, Some(9)), (3, Some(9))]);
        assert_eq!(pick_successor(&m, 0), Some(2));
        assert_eq!(pick_successor(&m, 1), Some(3));
        assert_eq!(pick_successor(&m, 2), Some(2));
        let empty = leader(None, &[(2, None), (3, None)]);
        assert_eq!(
            pick_successor(&empty, 1),
            Some(3),
            "an empty log is matched by anyone"
        );
    }

    #[test]
    fn a_named_successor_is_asked_only_once_caught_up() {
        let m = leader(Some(9), &[(1, Some(9)), (2, Some(8)), (3, Some(9))]);
        assert_eq!(next_successor(&m, Some(2), 0), None, "node 2 lacks entry 9");
        assert_eq!(next_successor(&m, Some(3), 0), Some(3));
        assert_eq!(next_successor(&m, Some(1), 0), None, "the leader itself");
        assert_eq!(next_successor(&m, Some(4), 0), None, "not a voter");
        assert_eq!(
            next_successor(&m, None, 0),
            Some(3),
            "unnamed: any caught up"
        );
    }

    #[test]
    fn a_follower_picks_no_one() {
        let mut m = leader(Some(9), &[(2, Some(9))]);
        m.state = ServerState::Follower;
        m.replication = None;
        assert_eq!(pick_successor(&m, 0), None);
    }
}

//! Moving a group to a new set of voters, as its leader: every new member first joins as a
//! learner and is caught up, then one membership change (openraft's joint consensus: a joint
//! config, then the new one) makes the set the voters, and members left out are removed.
//!
//! Why learners first: a voter that starts empty counts toward the majority at once, so adding
//! one to a group of three behind by a whole log would stall commits until it caught up (and
//! with two such, lose availability). A learner copies the log without counting; it is promoted
//! only once its copy reaches the leader's log end, less a small slack for what arrives
//! meanwhile.
//!
//! It is idempotent, so a new leader can repeat what a failed or deposed one began: learners
//! already added are not added again, and a group already at the set changes nothing (from a
//! joint config left by a leader that died between the two steps, the change completes it).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, Raft, RaftTypeConfig, ServerState};
use tokio::time::Instant;

use crate::entry_codec::CairnRaftConfig;
use crate::types::{NodeId, PeerNode};

/// Entries a learner may trail the leader's log end by and still be promoted: a busy
/// partition's log moves on while the learner catches up, and the joint config's commits
/// wait for the rest anyway.
pub const CATCH_UP_SLACK_ENTRIES: u64 = 64;

/// Why a group's voters were not moved.
#[derive(Debug, thiserror::Error)]
pub enum MembershipChangeError {
    /// This node does not lead the group (any more).
    #[error("this node does not lead the group")]
    NotLeader,
    /// A new member did not catch up in time (it may be down or slow); nothing changed but
    /// the learners added, which the next attempt keeps.
    #[error(
        "node {node} did not catch up within {waited_ms} ms (at entry {matched:?}, the log ends at {log_end})"
    )]
    CatchUpTimedOut {
        /// The learner.
        node: NodeId,
        /// How long it was given.
        waited_ms: u64,
        /// The last entry it holds as the leader knows it.
        matched: Option<u64>,
        /// The leader's last entry.
        log_end: u64,
    },
    /// openraft refused or failed the change.
    #[error("membership change: {0}")]
    Raft(String),
}

/// Makes `voters` (id to address) the group's voters, as described in the module doc. Waits up
/// to `catch_up` for new members to catch up; returns once the new membership is committed.
///
/// # Errors
/// [`MembershipChangeError`].
pub async fn move_voters<C>(
    raft: &Raft<C>,
    voters: &BTreeMap<NodeId, PeerNode>,
    catch_up: Duration,
) -> Result<(), MembershipChangeError>
where
    C: CairnRaftConfig + RaftTypeConfig<Responder = openraft::raft::responder::OneshotResponder<C>>,
{
    let wanted: BTreeSet<NodeId> = voters.keys().copied().collect();
    let state = {
        let m = raft.metrics().borrow().clone();
        if m.state != ServerState::Leader {
            return Err(MembershipChangeError::NotLeader);
        }
        let membership = m.membership_config.membership();
        let current: BTreeSet<NodeId> = membership.voter_ids().collect();
        let learners: BTreeSet<NodeId> = membership.learner_ids().collect();
        (current, learners, membership.get_joint_config().len() == 1)
    };
    let (current, learners, uniform) = state;
    // A joint config lists several configs; the group is there only with one.
    if current == wanted && uniform {
        return drop_stale_learners(raft, &learners, &wanted).await;
    }
    let joining: Vec<NodeId> = wanted.difference(&current).copied().collect();
    for node in &joining {
        if learners.contains(node) {
            continue;
        }
        let Some(peer) = voters.get(node) else {
            continue;
        };
        raft.add_learner(*node, peer.clone(), false)
            .await
            .map_err(raft_error::<C>)?;
    }
    for node in &joining {
        wait_caught_up(raft, *node, catch_up).await?;
    }
    raft.change_membership(ChangeMembers::ReplaceAllVoters(wanted.clone()), false)
        .await
        .map_err(raft_error::<C>)?;
    drop_stale_learners(raft, &learners, &wanted).await
}

/// Removes learners that are not wanted as voters: one added for a move that was replaced or
/// a node that left before it caught up. Left in, the leader would keep calling it.
async fn drop_stale_learners<C>(
    raft: &Raft<C>,
    learners: &BTreeSet<NodeId>,
    wanted: &BTreeSet<NodeId>,
) -> Result<(), MembershipChangeError>
where
    C: CairnRaftConfig + RaftTypeConfig<Responder = openraft::raft::responder::OneshotResponder<C>>,
{
    let stale: BTreeSet<NodeId> = learners.difference(wanted).copied().collect();
    if stale.is_empty() {
        return Ok(());
    }
    raft.change_membership(ChangeMembers::RemoveNodes(stale), false)
        .await
        .map_err(raft_error::<C>)?;
    Ok(())
}

/// Waits until the leader's replication to `node` reaches its log end, less
/// [`CATCH_UP_SLACK_ENTRIES`].
async fn wait_caught_up<C: CairnRaftConfig>(
    raft: &Raft<C>,
    node: NodeId,
    catch_up: Duration,
) -> Result<(), MembershipChangeError> {
    let deadline = Instant::now() + catch_up;
    let mut metrics = raft.metrics();
    loop {
        let (matched, log_end) = {
            let m = metrics.borrow_and_update();
            if m.state != ServerState::Leader {
                return Err(MembershipChangeError::NotLeader);
            }
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&node).cloned().flatten())
                .map(|id| id.index);
            (matched, m.last_log_index.unwrap_or(0))
        };
        if matched.is_some_and(|at| at.saturating_add(CATCH_UP_SLACK_ENTRIES) >= log_end) {
            return Ok(());
        }
        if tokio::time::timeout_at(deadline, metrics.changed())
            .await
            .map_or(true, |changed| changed.is_err())
        {
            return Err(MembershipChangeError::CatchUpTimedOut {
                node,
                waited_ms: u64::try_from(catch_up.as_millis()).unwrap_or(u64::MAX),
                matched,
                log_end,
            });
        }
    }
}

fn raft_error<C: RaftTypeConfig>(
    e: RaftError<C::NodeId, ClientWriteError<C::NodeId, C::Node>>,
) -> MembershipChangeError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
            MembershipChangeError::NotLeader
        }
        other => MembershipChangeError::Raft(other.to_string()),
    }
}

//! The controller group's own membership, kept by its leader in line with the registered
//! nodes: a node added with `cairn cluster add-node` joins as a learner, catches up on the
//! metadata, and becomes a voter; a node being removed leaves the voters once it hosts no
//! replica, and is then forgotten (`ForgetNode`), which ends its calls from every node.
//!
//! Every node runs this; only the controller leader acts, and since the move is idempotent
//! (`cairn_raft::move_voters`) a new leader completes what a previous one began.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_controller::{ClusterMetadata, Command, NodeState};
use cairn_raft::{MembershipChangeError, NodeId, PeerNode, move_voters};

use crate::partition::follower_lag::follower_end;
use openraft::ServerState;

use super::runtime::{ADMIN_TIMEOUT, ClusterRuntime};

/// How often the controller leader looks again without a metadata change.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// How long a new node gets to catch up on the metadata log before the attempt is retried.
const CATCH_UP: Duration = Duration::from_secs(30);

/// How long the leader waits for a node being removed to hold the entry that emptied it, before
/// it drops the node from the voters anyway ([`leavers_hold_their_removal`]).
const LEAVER_CATCH_UP: Duration = Duration::from_secs(5);

/// Keeps the controller group's voters in line with the metadata's nodes until the controller
/// goes away.
pub(super) async fn run(runtime: Arc<ClusterRuntime>) {
    let mut metadata = runtime.controller.subscribe();
    let mut tick = tokio::time::interval(RETRY_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = metadata.changed() => if changed.is_err() { return },
        }
        let raft = runtime.controller.raft();
        if raft.metrics().borrow().state != ServerState::Leader
            || runtime
                .ctx
                .leaving
                .load(std::sync::atomic::Ordering::Acquire)
        {
            continue;
        }
        let current = Arc::clone(&metadata.borrow_and_update());
        if !current.is_bootstrapped() {
            continue;
        }
        let voters = wanted_voters(&current);
        if voters.is_empty() {
            continue;
        }
        if !voters.contains_key(&runtime.ctx.me) {
            // This leader is the one being dropped. It hands the leadership over first, to a
            // node that stays, and lets that leader drop it, as the Raft thesis advises: a
            // leader that commits its own removal steps down and then applies `ForgetNode` of
            // itself, after which its metadata no longer names it at all, and it cannot tell
            // that it has left. Handing over to any voter instead could ping-pong between two
            // nodes removed together. It takes no more proposals (it hosts nothing).
            let Some(successor) = most_caught_up(raft, &voters, runtime.ctx.me) else {
                continue;
            };
            let deadline = tokio::time::Instant::now() + ADMIN_TIMEOUT;
            match runtime.controller.hand_over_to(successor, deadline).await {
                cairn_raft::HandoverOutcome::Moved { to } => {
                    tracing::info!(
                        to,
                        "controller leadership handed over before this node leaves the cluster"
                    );
                }
                outcome => tracing::warn!(
                    successor,
                    ?outcome,
                    "controller leadership not handed over before this node leaves the cluster; retrying"
                ),
            }
            continue;
        }
        for (node, peer) in &voters {
            if *node != runtime.ctx.me {
                runtime.ctx.transport.set_peer_address(*node, &peer.addr);
            }
        }
        leavers_hold_their_removal(raft, &voters).await;
        match move_voters(raft, &voters, CATCH_UP).await {
            Ok(()) => {}
            Err(MembershipChangeError::NotLeader) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "controller membership not changed yet; retrying");
                continue;
            }
        }
        for node in removable(&current) {
            if voters.contains_key(&node) {
                continue;
            }
            match runtime
                .controller
                .propose(&Command::ForgetNode { node }, ADMIN_TIMEOUT)
                .await
            {
                Ok(_) => tracing::info!(node, "node removed from the cluster"),
                Err(e) => {
                    tracing::warn!(node, error = %e, "removed node not forgotten yet; retrying")
                }
            }
        }
    }
}

/// Waits, up to [`LEAVER_CATCH_UP`], until each voter that `voters` drops holds every entry this
/// leader has applied, the one that emptied it included. Joint consensus commits the change
/// without the leaving node, and after it the node hears nothing more: without this wait it
/// could be cut off before it learns that it has left, and keep answering as a member (health
/// SERVING, itself as controller) from its last view. A node that is down does not hold the
/// removal up past the bound: removing a dead node is what `remove-node` is for.
async fn leavers_hold_their_removal(
    raft: &openraft::Raft<super::controller_sm::ControllerRaft>,
    voters: &BTreeMap<NodeId, PeerNode>,
) {
    let (leaving, applied_end) = {
        let metrics = raft.metrics().borrow().clone();
        let leaving: Vec<NodeId> = metrics
            .membership_config
            .membership()
            .voter_ids()
            .filter(|node| !voters.contains_key(node))
            .collect();
        (leaving, metrics.last_applied.map_or(0, |id| id.index + 1))
    };
    if leaving.is_empty() {
        return;
    }
    let held = raft
        .wait(Some(LEAVER_CATCH_UP))
        .metrics(
            |m| {
                // A leader that lost its leadership meanwhile stops waiting: the next one
                // decides afresh.
                m.state != ServerState::Leader
                    || leaving
                        .iter()
                        .all(|node| follower_end(m, *node).unwrap_or(0) >= applied_end)
            },
            "leaving voters hold their removal",
        )
        .await;
    let still_leading = raft.metrics().borrow().state == ServerState::Leader;
    if held.is_err() && still_leading {
        tracing::warn!(
            nodes = ?leaving,
            index = applied_end.saturating_sub(1),
            "a node being removed has not caught up on its removal; it leaves the controller group anyway, and if it still runs it answers from its last view until stopped"
        );
    }
}

/// The voter in `voters` other than `me` that holds the most of this leader's log, if any.
fn most_caught_up(
    raft: &openraft::Raft<super::controller_sm::ControllerRaft>,
    voters: &BTreeMap<NodeId, PeerNode>,
    me: NodeId,
) -> Option<NodeId> {
    let metrics = raft.metrics().borrow().clone();
    voters
        .keys()
        .filter(|node| **node != me)
        .max_by_key(|node| (follower_end(&metrics, **node), std::cmp::Reverse(**node)))
        .copied()
}

/// The controller group's voters the metadata asks for: every registered node but those being
/// removed that host no replica any more (they leave the voters, then the metadata).
fn wanted_voters(metadata: &ClusterMetadata) -> BTreeMap<NodeId, PeerNode> {
    let removable = removable(metadata);
    metadata
        .nodes()
        .iter()
        .filter(|(node, _)| !removable.contains(node))
        .map(|(node, meta)| {
            (
                *node,
                PeerNode {
                    addr: meta.addr.clone(),
                },
            )
        })
        .collect()
}

/// Nodes being removed whose replicas have all moved away.
pub(super) fn removable(metadata: &ClusterMetadata) -> Vec<NodeId> {
    metadata
        .nodes()
        .iter()
        .filter(|(node, meta)| {
            meta.state == NodeState::Leaving
                && !metadata
                    .topics()
                    .values()
                    .flat_map(|t| &t.partitions)
                    .any(|p| p.is_hosted_on(**node))
        })
        .map(|(node, _)| *node)
        .collect()
}

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
use openraft::ServerState;

use super::runtime::{ADMIN_TIMEOUT, ClusterRuntime};

/// How often the controller leader looks again without a metadata change.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// How long a new node gets to catch up on the metadata log before the attempt is retried.
const CATCH_UP: Duration = Duration::from_secs(30);

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
        for (node, peer) in &voters {
            if *node != runtime.ctx.me {
                runtime.ctx.transport.set_peer_address(*node, &peer.addr);
            }
        }
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
fn removable(metadata: &ClusterMetadata) -> Vec<NodeId> {
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

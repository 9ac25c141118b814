//! Carrying out reassignments: for each partition whose metadata has a `target`, the node that
//! leads its group moves the group's voters there (`cairn_raft::move_voters`: new members join
//! as learners and catch up, then one joint-consensus change) and then records the move done
//! with `CompleteReassignment`, after which the nodes left out release their copies.
//!
//! Level-triggered and idempotent: it runs on every metadata change and once a second, so a
//! move that failed (a learner down, an election) is taken up again, by whichever node leads
//! the group then. A group already at its target only needs the completion recorded, which is
//! how a leader that died between the membership change and the record is covered.
//!
//! The invariant kept: the metadata's replica set is never a membership the group has not
//! committed; copies are released only after the completion commits, so a node never deletes a
//! copy its group still counts on.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_controller::{Command, GroupId as MetaGroupId};
use cairn_raft::{GroupId, MembershipChangeError, NodeId, PeerNode, move_voters};
use openraft::ServerState;

use super::controller::ClusterError;
use super::runtime::{ADMIN_TIMEOUT, ClusterRuntime};

/// How often pending reassignments are looked at again without a metadata change.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// How long a new member gets to catch up before the attempt is given up (and retried): a
/// copy of a large partition takes a while to send.
const CATCH_UP: Duration = Duration::from_secs(120);

/// Drives the reassignments of the groups this node leads until the controller goes away.
pub(super) async fn run(runtime: Arc<ClusterRuntime>) {
    let mut metadata = runtime.controller.subscribe();
    let driving: Arc<Mutex<BTreeSet<GroupId>>> = Arc::default();
    let mut tick = tokio::time::interval(RETRY_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = metadata.changed() => if changed.is_err() { return },
        }
        if runtime
            .ctx
            .leaving
            .load(std::sync::atomic::Ordering::Acquire)
        {
            continue;
        }
        let current = Arc::clone(&metadata.borrow_and_update());
        for topic in current.topics().values() {
            for partition in &topic.partitions {
                let Some(target) = &partition.target else {
                    continue;
                };
                let group = GroupId(partition.group.0);
                let raft = runtime
                    .ctx
                    .held
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&group)
                    .cloned();
                let Some(raft) = raft else { continue };
                if raft.metrics().borrow().state != ServerState::Leader {
                    continue;
                }
                if !driving
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(group)
                {
                    continue;
                }
                let voters = super::replica_set::group_members(&current, target);
                let target = target.clone();
                let runtime = Arc::clone(&runtime);
                let driving = Arc::clone(&driving);
                tokio::spawn(async move {
                    move_group(&runtime, &raft, group, &voters, target).await;
                    driving
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&group);
                });
            }
        }
    }
}

/// One attempt at moving `group` to `target` and recording it.
async fn move_group(
    runtime: &ClusterRuntime,
    raft: &openraft::Raft<cairn_raft::PartitionRaft>,
    group: GroupId,
    voters: &BTreeMap<NodeId, PeerNode>,
    target: Vec<NodeId>,
) {
    for (node, peer) in voters {
        if *node != runtime.ctx.me {
            runtime.ctx.transport.set_peer_address(*node, &peer.addr);
        }
    }
    match move_voters(raft, voters, CATCH_UP).await {
        Ok(()) => {}
        Err(MembershipChangeError::NotLeader) => return,
        Err(e) => {
            tracing::warn!(group = group.0, error = %e, "reassignment not done yet; retrying");
            return;
        }
    }
    let command = Command::CompleteReassignment {
        group: MetaGroupId(group.0),
        replicas: target.clone(),
    };
    match runtime.controller.propose(&command, ADMIN_TIMEOUT).await {
        Ok(_) => {
            tracing::info!(group = group.0, replicas = ?target, "reassignment done");
        }
        // Recorded already (a retry, or another leader of the group did).
        Err(ClusterError::Refused(cairn_controller::ControllerError::NoSuchReassignment {
            ..
        })) => {}
        Err(e) => {
            tracing::warn!(group = group.0, error = %e, "reassignment done but not recorded yet; retrying");
        }
    }
}

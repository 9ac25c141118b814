//! `ReportLeader`: a partition group's leader records who leads and who is in sync. Reports can
//! arrive late or twice (a leader retries its proposal; an old leader's report commits after a
//! new one's), so a report older than the epoch held is ignored rather than refused.

use std::collections::BTreeSet;

use crate::error::ControllerError;
use crate::ids::{GroupId, NodeId};
use crate::metadata::ClusterMetadata;
use crate::reply::{Outcome, Reply};

impl ClusterMetadata {
    pub(super) fn report_leader(
        &mut self,
        group: GroupId,
        leader: NodeId,
        epoch: u64,
        isr: Vec<NodeId>,
    ) -> Result<Reply, ControllerError> {
        let found = self
            .partition_of_group(group)
            .ok_or(ControllerError::UnknownGroup { group })?;
        let (topic, partition, held) = (found.topic.to_string(), found.partition, found.meta);
        check_report(group, &held.hosts(), leader, &isr)?;
        if epoch < held.leader_epoch {
            return Ok(Reply::bare(Outcome::StaleLeaderReport {
                held_epoch: held.leader_epoch,
            }));
        }
        if epoch == held.leader_epoch
            && let Some(held_leader) = held.leader.filter(|held| *held != leader)
        {
            return Err(ControllerError::ConflictingLeader {
                group,
                epoch,
                held_leader,
                reported_leader: leader,
            });
        }

        let meta = self
            .topics
            .get_mut(&topic)
            .and_then(|t| t.partitions.get_mut(partition as usize))
            .ok_or(ControllerError::UnknownGroup { group })?;
        meta.leader = Some(leader);
        meta.leader_epoch = epoch;
        meta.isr = isr;
        Ok(Reply::bare(Outcome::LeaderRecorded))
    }
}

/// The leader and every in-sync replica must be replicas of the group (a reassignment's new
/// members count: one may lead before the move is recorded complete), the in-sync set must hold
/// the leader (a leader is always in sync with itself) and name no node twice.
fn check_report(
    group: GroupId,
    replicas: &[NodeId],
    leader: NodeId,
    isr: &[NodeId],
) -> Result<(), ControllerError> {
    if let Some(node) = std::iter::once(&leader)
        .chain(isr)
        .find(|node| !replicas.contains(node))
    {
        return Err(ControllerError::NotAReplica { group, node: *node });
    }
    let mut seen = BTreeSet::new();
    if let Some(node) = isr.iter().find(|node| !seen.insert(**node)) {
        return Err(ControllerError::DuplicateIsrMember { group, node: *node });
    }
    if !isr.contains(&leader) {
        return Err(ControllerError::LeaderNotInIsr { group, leader });
    }
    Ok(())
}

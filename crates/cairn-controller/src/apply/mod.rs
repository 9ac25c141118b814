//! [`ClusterMetadata::apply`]: one committed command in, a [`Reply`] (outcome and actions) out.
//!
//! Every handler first checks everything that can refuse the command, reading only, and then
//! changes the state in steps that cannot fail, so a refused command leaves the metadata exactly
//! as it was (a property test compares the snapshot bytes). Nothing here reads a clock, a random
//! number generator or a hash map's order: every node applying the same log gets the same state
//! and the same actions.

mod leaders;
mod membership;
mod nodes;
mod producer_ids;
mod reassign;
mod security;

pub use producer_ids::{MAX_PRODUCER_ID, MAX_PRODUCER_ID_BLOCK_LEN};
mod topics;

use crate::command::Command;
use crate::error::ControllerError;
use crate::metadata::ClusterMetadata;
use crate::reply::Reply;

impl ClusterMetadata {
    /// Applies one committed command.
    ///
    /// On `Ok`, the metadata holds the command's effect and the reply lists what nodes must do.
    ///
    /// # Errors
    /// A [`ControllerError`] naming why the command was refused; the metadata is then unchanged.
    /// Every command but `Bootstrap` is refused with [`ControllerError::NotBootstrapped`] before
    /// the cluster is bootstrapped.
    pub fn apply(&mut self, command: Command) -> Result<Reply, ControllerError> {
        if !self.is_bootstrapped() && !matches!(command, Command::Bootstrap { .. }) {
            return Err(ControllerError::NotBootstrapped);
        }
        match command {
            Command::Bootstrap {
                cluster_id,
                peers,
                at_ms,
            } => self.bootstrap(cluster_id, peers, at_ms),
            Command::RegisterNode { node, addr, at_ms } => self.register_node(node, addr, at_ms),
            Command::AdvertiseNode { node, client_addr } => self.advertise_node(node, client_addr),
            Command::SetNodeState { node, state, at_ms } => self.set_node_state(node, state, at_ms),
            Command::CreateTopic {
                name,
                partition_count,
                replication_factor,
                configs,
            } => self.create_topic(name, partition_count, replication_factor, configs),
            Command::DeleteTopic { name } => self.delete_topic(&name),
            Command::AlterTopicConfigs { name, set, delete } => {
                self.alter_topic_configs(&name, set, &delete)
            }
            Command::AddPartitions {
                name,
                partition_count,
            } => self.add_partitions(&name, partition_count),
            Command::ReportLeader {
                group,
                leader,
                epoch,
                isr,
            } => self.report_leader(group, leader, epoch, isr),
            Command::AddNode { node, addr, at_ms } => self.add_node(node, addr, at_ms),
            Command::RemoveNode { node, at_ms } => self.remove_node(node, at_ms),
            Command::ForgetNode { node } => self.forget_node(node),
            Command::ReassignPartitions { moves } => self.reassign_partitions(moves),
            Command::CompleteReassignment { group, replicas } => {
                self.complete_reassignment(group, replicas)
            }
            Command::AllocateProducerIds { node, block_len } => {
                self.allocate_producer_ids(node, block_len)
            }
            Command::UpsertUser { name, credential } => self.upsert_user(name, credential),
            Command::DeleteUser { name } => self.delete_user(&name),
            Command::CreateAcls { acls } => self.create_acls(acls),
            Command::DeleteAcls { acls } => Ok(self.delete_acls(&acls)),
            Command::SetQuota { entity, limits } => self.set_quota(entity, limits),
            Command::RemoveQuota { entity } => self.remove_quota(&entity),
            Command::RecordTopicCreator {
                topic,
                principal,
                partitions,
            } => self.record_topic_creator(topic, principal, partitions),
            Command::ForgetTopicCreator { topic } => Ok(self.forget_topic_creator(&topic)),
        }
    }
}

#[cfg(test)]
mod tests;

//! One test per command and per refusal, by command family. Every refusal is checked with
//! [`refused`], which also checks that it left the state unchanged.

mod leaders;
mod membership;
mod nodes;
mod producer_ids;
mod queries;
mod security;
mod topics;

use std::collections::BTreeMap;

use crate::action::Action;
use crate::command::{Command, PeerSpec};
use crate::error::ControllerError;
use crate::ids::{GroupId, NodeId};
use crate::metadata::ClusterMetadata;
use crate::reply::Reply;

pub(super) fn bootstrap(node_count: u64) -> Command {
    Command::Bootstrap {
        cluster_id: "c1".into(),
        peers: (1..=node_count)
            .map(|node| PeerSpec {
                node,
                addr: format!("10.0.0.{node}:7070"),
            })
            .collect(),
        at_ms: 1_000,
    }
}

pub(super) fn cluster(node_count: u64) -> ClusterMetadata {
    let mut metadata = ClusterMetadata::new();
    metadata.apply(bootstrap(node_count)).unwrap();
    metadata
}

pub(super) fn create(name: &str, partition_count: u32, replication_factor: u16) -> Command {
    Command::CreateTopic {
        name: name.into(),
        partition_count,
        replication_factor,
        configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
    }
}

/// Applies a command that must be refused, and checks it changed nothing.
pub(super) fn refused(metadata: &mut ClusterMetadata, command: Command) -> ControllerError {
    let before = metadata.to_snapshot();
    let error = metadata.apply(command).unwrap_err();
    assert_eq!(
        metadata.to_snapshot(),
        before,
        "refused with {error} but changed"
    );
    error
}

pub(super) fn hosts(reply: &Reply) -> Vec<(NodeId, GroupId)> {
    reply
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::HostReplica { node, assignment } => Some((*node, assignment.group)),
            _ => None,
        })
        .collect()
}

pub(super) fn report(group: u64, leader: NodeId, epoch: u64, isr: Vec<NodeId>) -> Command {
    Command::ReportLeader {
        group: GroupId(group),
        leader,
        epoch,
        isr,
    }
}

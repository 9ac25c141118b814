//! The operator's membership calls, as the Admin service makes them: add a node, remove one,
//! reassign partitions. Each checks what it can before proposing (ids in range, addresses
//! well-formed), proposes one controller command, and answers the controller's typed refusal
//! when the metadata rules say no; nothing moves on a refusal.

use cairn_controller::{Command, Outcome, PartitionMove};

use super::describe::ClusterDescription;
use super::runtime::{ADMIN_TIMEOUT, ClusterRuntime, cluster_error, now_ms};
use crate::broker::Broker;
use crate::cluster_spec::{MAX_NODE_ID, host_port_problem};
use crate::error::BrokerError;

/// One partition's new replica set as a caller asks for it (API integers, checked here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionPlan {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i64,
    /// The new replicas; the first is the preferred leader.
    pub replicas: Vec<i64>,
}

impl Broker {
    /// Adds node `node_id`, reached at `address`, to the running cluster (see the proto's
    /// `AddNode`), and answers the cluster's description with it.
    ///
    /// # Errors
    /// [`BrokerError::InvalidRequest`] for a bad id or address, a cluster of one, or the
    /// controller's refusal (an id or address in use); [`BrokerError::ControllerUnavailable`].
    pub async fn add_node(
        &self,
        node_id: i64,
        address: &str,
    ) -> Result<ClusterDescription, BrokerError> {
        let runtime = self.membership_runtime("add a node")?;
        let node = check_node_id(node_id)?;
        if let Some(problem) = host_port_problem(address) {
            return Err(BrokerError::InvalidRequest(format!(
                "node address {address:?}: {problem}; expected HOST:PORT of the new node's gRPC listener"
            )));
        }
        runtime
            .controller
            .propose(
                &Command::AddNode {
                    node,
                    addr: address.to_string(),
                    at_ms: now_ms(),
                },
                ADMIN_TIMEOUT,
            )
            .await
            .map_err(cluster_error)?;
        tracing::info!(node, address, "node added to the cluster");
        Ok(self.describe_cluster())
    }

    /// Starts removing node `node_id`; answers how many partitions' copies on it are moving.
    ///
    /// # Errors
    /// [`BrokerError::InvalidRequest`] for a bad id, a cluster of one, or the controller's
    /// refusal (unknown node, the last node, a partition with no node to move to);
    /// [`BrokerError::ControllerUnavailable`].
    pub async fn remove_node(&self, node_id: i64) -> Result<usize, BrokerError> {
        let runtime = self.membership_runtime("remove a node")?;
        let node = check_node_id(node_id)?;
        let reply = runtime
            .controller
            .propose(
                &Command::RemoveNode {
                    node,
                    at_ms: now_ms(),
                },
                ADMIN_TIMEOUT,
            )
            .await
            .map_err(cluster_error)?;
        let moving = match reply.outcome {
            Outcome::NodeRemoving { moving, .. } => moving,
            _ => 0,
        };
        tracing::info!(node, moving, "removing node: its replicas move first");
        Ok(moving)
    }

    /// Starts a reassignment; answers (partitions moving, partitions reordered).
    ///
    /// # Errors
    /// [`BrokerError::InvalidRequest`] for out-of-range numbers, a cluster of one, or the
    /// controller's refusal (unknown topic, partition or node, a count that is not the
    /// replication factor, a node twice, a move already under way);
    /// [`BrokerError::ControllerUnavailable`].
    pub async fn reassign_partitions(
        &self,
        plan: Vec<PartitionPlan>,
    ) -> Result<(usize, usize), BrokerError> {
        let runtime = self.membership_runtime("reassign partitions")?;
        let mut moves = Vec::with_capacity(plan.len());
        for entry in plan {
            let partition = u32::try_from(entry.partition).map_err(|_| {
                BrokerError::InvalidRequest(format!(
                    "{}: partition {} is not a partition number",
                    entry.topic, entry.partition
                ))
            })?;
            let replicas = entry
                .replicas
                .iter()
                .map(|id| check_node_id(*id))
                .collect::<Result<Vec<_>, _>>()?;
            moves.push(PartitionMove {
                topic: entry.topic,
                partition,
                replicas,
            });
        }
        let reply = runtime
            .controller
            .propose(&Command::ReassignPartitions { moves }, ADMIN_TIMEOUT)
            .await
            .map_err(cluster_error)?;
        let started = match reply.outcome {
            Outcome::ReassignmentStarted { moving, reordered } => (moving, reordered),
            _ => (0, 0),
        };
        tracing::info!(
            moving = started.0,
            reordered = started.1,
            "partition reassignment started"
        );
        Ok(started)
    }

    /// For each partition of `topic`, as the cluster metadata assigns it: its replicas in
    /// assignment order (the first is the preferred leader), and the nodes a pending
    /// reassignment adds and removes. Empty on a cluster of one and for a local topic.
    pub(crate) fn assignments(&self, topic: &str) -> Vec<PartitionAssignment> {
        let Some(runtime) = self.runtime() else {
            return Vec::new();
        };
        let metadata = runtime.directory.current();
        let Some(meta) = metadata.topic(topic) else {
            return Vec::new();
        };
        let wire = |n: &u64| i32::try_from(*n).unwrap_or(i32::MAX);
        meta.partitions
            .iter()
            .map(|p| {
                let (adding, removing) = match &p.target {
                    Some(target) => (
                        target
                            .iter()
                            .filter(|n| !p.replicas.contains(n))
                            .map(wire)
                            .collect(),
                        p.replicas
                            .iter()
                            .filter(|n| !target.contains(n))
                            .map(wire)
                            .collect(),
                    ),
                    None => (Vec::new(), Vec::new()),
                };
                PartitionAssignment {
                    replicas: p.replicas.iter().map(wire).collect(),
                    adding,
                    removing,
                }
            })
            .collect()
    }

    fn membership_runtime(&self, what: &str) -> Result<&ClusterRuntime, BrokerError> {
        self.runtime().map(|r| r.as_ref()).ok_or_else(|| {
            BrokerError::InvalidRequest(format!(
                "this node runs as a cluster of one (started without --peers); it can't {what}"
            ))
        })
    }
}

fn check_node_id(node_id: i64) -> Result<u64, BrokerError> {
    u64::try_from(node_id)
        .ok()
        .filter(|id| (1..=MAX_NODE_ID).contains(id))
        .ok_or_else(|| {
            BrokerError::InvalidRequest(format!(
                "node id {node_id} is not a whole number from 1 to {MAX_NODE_ID}"
            ))
        })
}

/// One partition's replicas as the cluster metadata assigns them (see
/// [`Broker::assignments`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct PartitionAssignment {
    /// The replicas in assignment order: the first is the preferred leader.
    pub(crate) replicas: Vec<i32>,
    /// Nodes a pending reassignment adds.
    pub(crate) adding: Vec<i32>,
    /// Nodes a pending reassignment removes.
    pub(crate) removing: Vec<i32>,
}

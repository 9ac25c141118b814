//! This node's member of the controller group: starts it, answers peers through the node's
//! group registry, and proposes admin commands, forwarding them to the controller leader when
//! this node is not it. Every node applies the committed log, so the metadata it publishes is
//! the cluster's, a few milliseconds behind the leader at most.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cairn_controller::{ClusterMetadata, Command, ControllerError, Reply};
use cairn_raft::transport::BoxFuture;
use cairn_raft::{
    BatchData, GroupId, GroupNetwork, GroupRegistry, HandoverOutcome, HostedGroup, NodeId,
    PeerNode, PeerTransport, RpcKind, TransportError,
};
use openraft::error::{ClientWriteError, RaftError};
use openraft::storage::RaftLogStorage;
use openraft::{Config, Raft};
use tokio::sync::{mpsc, watch};

use super::controller_entry::encode_command;
use super::controller_sm::{
    ControllerEvent, ControllerRaft, ControllerResponse, ControllerStateMachine,
};
use super::proposal_gate::ProposalGate;

/// Why a controller operation did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The metadata rules refused the command; nothing changed.
    #[error(transparent)]
    Refused(#[from] ControllerError),
    /// No controller leader answered within the deadline (no majority up, or an election that
    /// did not finish). The command may still commit later.
    #[error("no controller leader answered within {waited_ms} ms{}", last.as_ref().map(|l| format!(" (last: {l})")).unwrap_or_default())]
    NoLeader {
        /// How long it waited.
        waited_ms: u64,
        /// The last reason a try failed.
        last: Option<String>,
    },
    /// The controller group on this node stopped (a storage failure); the node must restart.
    #[error("the controller group stopped: {0}")]
    Stopped(String),
    /// The committed entry could not be read as a command (a version mismatch between nodes).
    #[error("the controller could not read the command: {0}")]
    Unreadable(String),
    /// Starting the group failed.
    #[error("starting the controller group: {0}")]
    Start(String),
}

/// How long a proposal waits between tries while there is no leader to take it.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Why a leaving node takes no controller proposal (the proposer retries at the next leader).
const LEAVING: &str = "this node is handing the controller leadership over before it stops";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The controller group member of this node.
pub struct Controller {
    me: NodeId,
    raft: Raft<ControllerRaft>,
    metadata: watch::Receiver<Arc<ClusterMetadata>>,
    transport: Arc<dyn PeerTransport>,
    /// Every proposal made on this node, its own and those forwarded to it, passes here; a
    /// leaving node closes it before handing the leadership over.
    gate: Arc<ProposalGate>,
}

/// Answers peers' calls for the controller group, forwarded proposals included.
struct ControllerHandler {
    raft: Raft<ControllerRaft>,
    gate: Arc<ProposalGate>,
}

impl HostedGroup for ControllerHandler {
    fn handle(&self, kind: RpcKind, payload: Bytes) -> BoxFuture<'static, Result<Bytes, String>> {
        if kind != RpcKind::Propose {
            return self.raft.handle(kind, payload);
        }
        let (raft, gate) = (self.raft.clone(), Arc::clone(&self.gate));
        Box::pin(async move {
            let Some(_inside) = gate.enter().await else {
                return Err(LEAVING.to_string());
            };
            match raft.client_write(BatchData(payload)).await {
                Ok(written) => serde_json::to_vec(&written.data)
                    .map(Bytes::from)
                    .map_err(|e| format!("encoding the answer: {e}")),
                Err(e) => Err(format!("not taken: {e}")),
            }
        })
    }
}

impl Controller {
    /// Starts this node's member of the controller group over `log` and registers it with
    /// `registry`; the first start of a node initializes the group with every peer as a voter
    /// (none when `peers` is empty: the node joins a running group as a learner)
    /// (every node does, with the same membership, which openraft allows, so the cluster forms
    /// whatever order the nodes start in). Returns the controller and the receiver of the
    /// events the replica manager acts on. `snapshot_dir` keeps the state machine's snapshots
    /// on disk, which lets the log be purged behind them (`None`: in memory, never purged).
    ///
    /// # Errors
    /// [`ClusterError::Start`] if openraft will not start over the storage, or the saved
    /// snapshot is unreadable.
    pub async fn start<LS: RaftLogStorage<ControllerRaft>>(
        me: NodeId,
        peers: &BTreeMap<NodeId, String>,
        config: Arc<Config>,
        transport: Arc<dyn PeerTransport>,
        registry: &GroupRegistry,
        log: LS,
        snapshot_dir: Option<std::path::PathBuf>,
    ) -> Result<(Controller, mpsc::UnboundedReceiver<ControllerEvent>), ClusterError> {
        let (sm, metadata, events) = match snapshot_dir {
            Some(dir) => ControllerStateMachine::open(me, dir).map_err(ClusterError::Start)?,
            None => ControllerStateMachine::new(me),
        };
        let raft = Raft::new(
            me,
            config,
            GroupNetwork::new(Arc::clone(&transport), GroupId::CONTROLLER),
            log,
            sm,
        )
        .await
        .map_err(|e| ClusterError::Start(e.to_string()))?;
        let gate = Arc::new(ProposalGate::default());
        registry.insert(
            GroupId::CONTROLLER,
            Arc::new(ControllerHandler {
                raft: raft.clone(),
                gate: Arc::clone(&gate),
            }),
        );
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| ClusterError::Start(e.to_string()))?;
        // A node joining a running cluster has an empty `peers`: its group's leader brings it
        // in (`cairn cluster add-node`); forming a group of its own would split the cluster.
        if !initialized && !peers.is_empty() {
            let members: BTreeMap<NodeId, PeerNode> = peers
                .iter()
                .map(|(id, addr)| (*id, PeerNode { addr: addr.clone() }))
                .collect();
            // A peer's vote may have reached this node first and made it a member already;
            // openraft then refuses to initialize, which is the outcome wanted anyway.
            if let Err(e) = raft.initialize(members).await {
                tracing::debug!(error = %e, "controller group already initialized");
            }
        }
        Ok((
            Controller {
                me,
                raft,
                metadata,
                transport,
                gate,
            },
            events,
        ))
    }

    /// The metadata as of the last committed command this node applied.
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        Arc::clone(&self.metadata.borrow())
    }

    /// A receiver of every new metadata version.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterMetadata>> {
        self.metadata.clone()
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.me
    }

    /// The controller leader as this node knows it.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// The openraft handle (metrics, shutdown).
    pub fn raft(&self) -> &Raft<ControllerRaft> {
        &self.raft
    }

    /// Proposes `command` and answers its applied result once committed, from whichever node
    /// leads the controller group, retrying while an election runs, for at most `timeout`.
    ///
    /// A proposal that times out may still commit: callers propose commands whose repetition
    /// is harmless or refused by name (a second create of a topic is `TopicExists`).
    ///
    /// # Errors
    /// [`ClusterError`].
    pub async fn propose(
        &self,
        command: &Command,
        timeout: Duration,
    ) -> Result<Reply, ClusterError> {
        let started = Instant::now();
        let entry = encode_command(command, now_ms())
            .map_err(|e| ClusterError::Unreadable(e.to_string()))?;
        let mut last: Option<String> = None;
        loop {
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(ClusterError::NoLeader {
                    waited_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                    last,
                });
            }
            let Some(inside) = self.gate.enter().await else {
                // Leaving: nothing is proposed here any more; the next leader takes it.
                match self.leader() {
                    Some(leader) if leader != self.me => {
                        match self.forward(leader, &entry, left).await {
                            Ok(response) => return answer(response),
                            Err(e) => last = Some(e),
                        }
                    }
                    _ => last = Some(LEAVING.to_string()),
                }
                tokio::time::sleep(RETRY_PAUSE.min(timeout.saturating_sub(started.elapsed())))
                    .await;
                continue;
            };
            let written = tokio::time::timeout(left, self.raft.client_write(entry.clone())).await;
            drop(inside);
            match written {
                Err(_) => continue,
                Ok(Ok(written)) => return answer(written.data),
                Ok(Err(RaftError::Fatal(f))) => return Err(ClusterError::Stopped(f.to_string())),
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                    match f.leader_id {
                        Some(leader) if leader != self.me => {
                            match self.forward(leader, &entry, left).await {
                                Ok(response) => return answer(response),
                                Err(e) => last = Some(e),
                            }
                        }
                        _ => last = Some("no controller leader elected yet".to_string()),
                    }
                }
                Ok(Err(RaftError::APIError(e))) => last = Some(e.to_string()),
            }
            tokio::time::sleep(RETRY_PAUSE.min(timeout.saturating_sub(started.elapsed()))).await;
        }
    }

    /// As [`Self::hand_over`], to `successor` only (see [`cairn_raft::hand_over_to`]): what a
    /// leader being removed uses, so that the leadership goes to a node that stays. The gate
    /// stays closed for the life of the process: a node taken out of the cluster proposes
    /// nothing more, and one forgotten and then added back must be restarted first.
    pub(crate) async fn hand_over_to(
        &self,
        successor: NodeId,
        deadline: tokio::time::Instant,
    ) -> HandoverOutcome {
        if !self.gate.close(deadline).await {
            return HandoverOutcome::TimedOut;
        }
        cairn_raft::hand_over_to(
            &self.raft,
            GroupId::CONTROLLER,
            successor,
            self.transport.as_ref(),
            deadline,
        )
        .await
    }

    /// Stops proposing to the controller group from this node (see [`ProposalGate`]) and, if
    /// this node leads it, hands the leadership to a caught-up follower, waiting up to
    /// `deadline` (see [`cairn_raft::hand_over`]).
    pub(crate) async fn hand_over(&self, deadline: tokio::time::Instant) -> HandoverOutcome {
        if !self.gate.close(deadline).await {
            return HandoverOutcome::TimedOut;
        }
        cairn_raft::hand_over(
            &self.raft,
            GroupId::CONTROLLER,
            self.transport.as_ref(),
            deadline,
        )
        .await
    }

    async fn forward(
        &self,
        leader: NodeId,
        entry: &BatchData,
        left: Duration,
    ) -> Result<ControllerResponse, String> {
        let millis = u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1);
        let bytes = self
            .transport
            .call(
                leader,
                GroupId::CONTROLLER,
                RpcKind::Propose,
                entry.0.clone(),
                millis,
            )
            .await
            .map_err(|e: TransportError| format!("forwarding to node {leader}: {e}"))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("node {leader} answered an unreadable result: {e}"))
    }
}

fn answer(response: ControllerResponse) -> Result<Reply, ClusterError> {
    match response {
        ControllerResponse::Applied(Ok(reply)) => Ok(reply),
        ControllerResponse::Applied(Err(refusal)) => Err(ClusterError::Refused(refusal)),
        ControllerResponse::Unreadable(reason) => Err(ClusterError::Unreadable(reason)),
        ControllerResponse::NoCommand => Err(ClusterError::Unreadable(
            "the entry committed without a command".to_string(),
        )),
    }
}

//! The controller group's state machine: committed commands go through
//! [`cairn_controller::ClusterMetadata::apply`] in log order. After each applied run of entries
//! the new metadata is published (readers hold an `Arc` of a consistent version, never a lock),
//! and the actions meant for this node go to the replica manager. Snapshots are the metadata's
//! own versioned bytes; openraft carries the last log id and membership beside them.
//!
//! The metadata lives in memory, so a snapshot is also written to disk (`cairn_raft::
//! snapshot_file`) before openraft learns of it: openraft purges the log only up to a snapshot,
//! and a restarted node starts from the file and applies only the entries after it. That is
//! what lets the controller's log be compacted instead of growing with every leader report.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use cairn_controller::{Action, ClusterMetadata, ControllerError, Reply};
use cairn_raft::{BatchData, NodeId, PeerNode};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::controller_entry::decode_command;

/// What applying one controller entry answers the proposer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerResponse {
    /// A command, applied or refused by the metadata rules.
    Applied(Result<Reply, ControllerError>),
    /// The entry's batch did not hold a command this node reads (the reason); nothing changed.
    Unreadable(String),
    /// A Raft entry without a command (a leader's no-op, a membership change).
    NoCommand,
}

openraft::declare_raft_types!(
    /// The openraft type configuration of the controller group.
    pub ControllerRaft:
        D = BatchData,
        R = ControllerResponse,
        NodeId = NodeId,
        Node = PeerNode,
        Entry = openraft::Entry<ControllerRaft>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// What the controller tells this node's replica manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControllerEvent {
    /// Act on these, in order (only actions for this node, or for every node).
    Actions(Vec<Action>),
    /// The metadata was replaced wholesale (a snapshot installed): reconcile everything hosted
    /// with [`ClusterMetadata::replicas_of`].
    Reset,
}

#[derive(Debug, Default)]
struct State {
    metadata: ClusterMetadata,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, PeerNode>,
    snapshot: Option<(SnapshotMeta<NodeId, PeerNode>, Vec<u8>)>,
    snapshots_built: u64,
}

/// The controller group's state machine; clones share it (openraft's snapshot builder is one).
#[derive(Clone)]
pub struct ControllerStateMachine {
    me: NodeId,
    state: Arc<Mutex<State>>,
    published: Arc<watch::Sender<Arc<ClusterMetadata>>>,
    events: mpsc::UnboundedSender<ControllerEvent>,
    /// Where snapshots are kept on disk; `None` keeps them in memory only (tests).
    snapshot_dir: Option<Arc<PathBuf>>,
}

impl ControllerStateMachine {
    /// A state machine for node `me`, starting from empty metadata; returns it, the receiver of
    /// every published metadata version, and the receiver of this node's events.
    pub fn new(
        me: NodeId,
    ) -> (
        ControllerStateMachine,
        watch::Receiver<Arc<ClusterMetadata>>,
        mpsc::UnboundedReceiver<ControllerEvent>,
    ) {
        let (published, metadata) = watch::channel(Arc::new(ClusterMetadata::new()));
        let (events, event_receiver) = mpsc::unbounded_channel();
        (
            ControllerStateMachine {
                me,
                state: Arc::new(Mutex::new(State::default())),
                published: Arc::new(published),
                events,
                snapshot_dir: None,
            },
            metadata,
            event_receiver,
        )
    }

    /// A state machine for node `me` that keeps its snapshots in `dir`, starting from the
    /// snapshot saved there, if any (the metadata, applied log id and membership it covers).
    ///
    /// # Errors
    /// A damaged snapshot file or metadata that does not decode: the controller must not start
    /// from nothing when it had a past.
    #[allow(clippy::type_complexity, reason = "the same triple as `new`")]
    pub fn open(
        me: NodeId,
        dir: PathBuf,
    ) -> Result<
        (
            ControllerStateMachine,
            watch::Receiver<Arc<ClusterMetadata>>,
            mpsc::UnboundedReceiver<ControllerEvent>,
        ),
        String,
    > {
        let (mut sm, metadata, events) = ControllerStateMachine::new(me);
        if let Some((meta, data)) =
            cairn_raft::snapshot_file::read_snapshot(&dir).map_err(|e| e.to_string())?
        {
            let restored = ClusterMetadata::from_snapshot(&data)
                .map_err(|e| format!("controller snapshot in {}: {e}", dir.display()))?;
            let mut state = sm.lock();
            state.metadata = restored;
            state.last_applied = meta.last_log_id;
            state.membership = meta.last_membership.clone();
            state.snapshot = Some((meta, data));
            sm.publish(&state.metadata);
            drop(state);
        }
        sm.snapshot_dir = Some(Arc::new(dir));
        Ok((sm, metadata, events))
    }

    /// Saves a snapshot to disk (when this state machine keeps them there) before anyone may
    /// rely on it.
    async fn persist(
        &self,
        meta: &SnapshotMeta<NodeId, PeerNode>,
        data: &[u8],
    ) -> Result<(), StorageError<NodeId>> {
        let Some(dir) = self.snapshot_dir.clone() else {
            return Ok(());
        };
        let (meta, data) = (meta.clone(), data.to_vec());
        let written = tokio::task::spawn_blocking(move || {
            cairn_raft::snapshot_file::write_snapshot(&dir, &meta, &data)
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StorageIOError::write_snapshot(None, &e).into()),
            Err(e) => Err(StorageIOError::write_snapshot(None, &e).into()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Only a panic inside `ClusterMetadata::apply` (a bug) can poison the lock; openraft
        // stops the group then, and the state stays readable for diagnostics.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, metadata: &ClusterMetadata) {
        self.published.send_replace(Arc::new(metadata.clone()));
    }
}

fn io_error(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(&e).into()
}

impl RaftSnapshotBuilder<ControllerRaft> for ControllerStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<ControllerRaft>, StorageError<NodeId>> {
        let (meta, data) = {
            let mut state = self.lock();
            state.snapshots_built += 1;
            let data = state.metadata.to_snapshot();
            let meta = SnapshotMeta {
                last_log_id: state.last_applied,
                last_membership: state.membership.clone(),
                snapshot_id: format!(
                    "{}-{}",
                    state.last_applied.map_or(0, |l| l.index),
                    state.snapshots_built
                ),
            };
            (meta, data)
        };
        // On disk before openraft hears of it: it may purge the log up to it at once.
        self.persist(&meta, &data).await?;
        self.lock().snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<ControllerRaft> for ControllerStateMachine {
    type SnapshotBuilder = ControllerStateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, PeerNode>), StorageError<NodeId>>
    {
        let state = self.lock();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(
        &mut self,
        entries: I,
    ) -> Result<Vec<ControllerResponse>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<ControllerRaft>> + Send,
        I::IntoIter: Send,
    {
        let mut answers = Vec::new();
        let mut mine = Vec::new();
        let mut state = self.lock();
        for entry in entries {
            state.last_applied = Some(entry.log_id);
            let answer = match entry.payload {
                EntryPayload::Blank => ControllerResponse::NoCommand,
                EntryPayload::Membership(m) => {
                    state.membership = StoredMembership::new(Some(entry.log_id), m);
                    ControllerResponse::NoCommand
                }
                EntryPayload::Normal(BatchData(bytes)) => match decode_command(&bytes) {
                    Ok(command) => {
                        let result = state.metadata.apply(command);
                        if let Ok(reply) = &result {
                            mine.extend(
                                reply.actions.iter().filter(|a| a.is_for(self.me)).cloned(),
                            );
                        }
                        ControllerResponse::Applied(result)
                    }
                    Err(e) => {
                        // Every node reads the same bytes the same way, so skipping keeps the
                        // replicas equal; the proposer learns why.
                        tracing::warn!(index = entry.log_id.index, error = %e, "controller entry skipped");
                        ControllerResponse::Unreadable(e.to_string())
                    }
                },
            };
            answers.push(answer);
        }
        self.publish(&state.metadata);
        drop(state);
        if !mine.is_empty() {
            // The receiver goes away only at shutdown; actions then no longer matter.
            let _ = self.events.send(ControllerEvent::Actions(mine));
        }
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> ControllerStateMachine {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, PeerNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let metadata = ClusterMetadata::from_snapshot(&data).map_err(io_error)?;
        self.persist(meta, &data).await?;
        {
            let mut state = self.lock();
            state.metadata = metadata;
            state.last_applied = meta.last_log_id;
            state.membership = meta.last_membership.clone();
            state.snapshot = Some((meta.clone(), data));
            self.publish(&state.metadata);
        }
        let _ = self.events.send(ControllerEvent::Reset);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<ControllerRaft>>, StorageError<NodeId>> {
        Ok(self.lock().snapshot.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(data.clone())),
        }))
    }
}

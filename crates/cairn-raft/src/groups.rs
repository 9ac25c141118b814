//! The Raft groups a node hosts, as the transport's [`InboundCalls`]: a call from a peer is
//! decoded, handed to its group's openraft instance, and the answer encoded. A call for a group
//! this node does not (or no longer, or not yet) host is refused by name, which openraft on the
//! sender treats as a network error and retries.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use openraft::Raft;

use crate::transport::{BoxFuture, InboundCalls, RpcKind};
use crate::types::{GroupId, NodeId};
use crate::wire::{self, CairnRaftConfig};

/// One hosted group, whatever its type configuration.
pub trait HostedGroup: Send + Sync + 'static {
    /// Handles one decoded-from-bytes call and answers bytes.
    fn handle(&self, kind: RpcKind, payload: Bytes) -> BoxFuture<'static, Result<Bytes, String>>;
}

impl<C: CairnRaftConfig> HostedGroup for Raft<C> {
    fn handle(&self, kind: RpcKind, payload: Bytes) -> BoxFuture<'static, Result<Bytes, String>> {
        let raft = self.clone();
        Box::pin(async move {
            // A core that quit on a storage failure would log an error for every call handed
            // to it (a leader sends many a second); refuse them here, once, by name.
            if let Err(fatal) = &raft.metrics().borrow().running_state {
                return Err(format!("this copy of the group stopped: {fatal}"));
            }
            match kind {
                RpcKind::AppendEntries => {
                    let req = wire::decode_append::<C>(payload).map_err(|e| e.to_string())?;
                    let resp = raft.append_entries(req).await.map_err(|e| e.to_string())?;
                    Ok(wire::encode_append_response(&resp))
                }
                RpcKind::Vote => {
                    let req = wire::decode_vote(payload).map_err(|e| e.to_string())?;
                    let resp = raft.vote(req).await.map_err(|e| e.to_string())?;
                    Ok(wire::encode_vote_response(&resp))
                }
                RpcKind::InstallSnapshot => {
                    let req = wire::decode_snapshot::<C>(payload).map_err(|e| e.to_string())?;
                    let resp = raft
                        .install_snapshot(req)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(wire::encode_snapshot_response(&resp))
                }
                // Groups that take forwarded proposals wrap their Raft in a handler of their own.
                RpcKind::Propose => Err("this group takes no forwarded proposals".to_string()),
                RpcKind::Ping => Ok(Bytes::new()),
                RpcKind::Campaign => crate::handover::answer_campaign(&raft, payload).await,
                // Partition groups answer fetches through `PartitionGroup`, which has the log.
                RpcKind::FetchEntries => Err("this group serves no entry fetches".to_string()),
            }
        })
    }
}

/// The groups this node hosts, keyed by id. Cheap to share: the transport holds it as
/// `Arc<dyn InboundCalls>` while the replica manager adds and removes groups.
#[derive(Default)]
pub struct GroupRegistry {
    groups: RwLock<HashMap<GroupId, Arc<dyn HostedGroup>>>,
}

impl GroupRegistry {
    /// An empty registry.
    pub fn new() -> GroupRegistry {
        GroupRegistry::default()
    }

    /// Starts routing calls for `group` to `handler` (replacing any earlier one).
    pub fn insert(&self, group: GroupId, handler: Arc<dyn HostedGroup>) {
        self.write().insert(group, handler);
    }

    /// Stops routing calls for `group`; later calls are refused.
    pub fn remove(&self, group: GroupId) -> Option<Arc<dyn HostedGroup>> {
        self.write().remove(&group)
    }

    /// How many groups are hosted.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no group is hosted.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<GroupId, Arc<dyn HostedGroup>>> {
        // A panic while holding the lock cannot leave a HashMap insert half done in a way that
        // matters here (the map stays valid); keep routing.
        self.groups.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<GroupId, Arc<dyn HostedGroup>>> {
        self.groups.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl InboundCalls for GroupRegistry {
    fn handle(
        &self,
        from: NodeId,
        group: GroupId,
        kind: RpcKind,
        payload: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, String>> {
        if kind == RpcKind::Ping {
            return Box::pin(async { Ok(Bytes::new()) });
        }
        match self.read().get(&group) {
            Some(handler) => handler.handle(kind, payload),
            None => {
                let reason = format!("{group} is not hosted here (call from node {from})");
                Box::pin(async move { Err(reason) })
            }
        }
    }
}
